"""Graph utilities shared by every layer: static shapes, shape inference, value lookups."""
