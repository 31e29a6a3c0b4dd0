"""Allocation: how many channels every group keeps under a target."""

from onnxprune.allocate.policy import AllocationPolicy, select_removal

__all__ = ["AllocationPolicy", "select_removal"]
