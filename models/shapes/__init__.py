"""Synthetic-shapes detection and segmentation demos: a seeded dataset generator
(:mod:`models.shapes.data`), a YOLO-style detector and a UNet-style segmenter from the zoo
trained on it (:mod:`models.shapes.train`), shipped as small ONNX files with their test and
calibration splits.

The committed artifacts (``shapes_detector.onnx``, ``shapes_segmenter.onnx``,
``shapes_test.npz``, ``shapes_calib.npz``, ``metrics.json``) live next to this file and need
only onnxruntime and numpy to use; ``train.py`` regenerates them (needs torch).
"""

from __future__ import annotations

from pathlib import Path

ARTIFACT_DIR: Path = Path(__file__).resolve().parent
"""Folder holding the committed ONNX models, npz data and metrics.json."""
