"""Two small digit classifiers (VGG-style and MobileNetV2-style) trained on scikit-learn's
``load_digits`` and shipped as ONNX with their test and calibration data.

The committed artifacts (``digits_vgg.onnx``, ``digits_mbv2.onnx``, ``digits_test.npz``,
``digits_calib.npz``, ``metrics.json``) live next to this file and need only onnxruntime and
numpy to use; ``train.py`` regenerates them (needs torch and scikit-learn).
"""

from __future__ import annotations

from pathlib import Path

ARTIFACT_DIR: Path = Path(__file__).resolve().parent
"""Folder holding the committed ONNX models, npz data and metrics.json."""
