"""Calibration statistics: run the analysed model on calibration data and accumulate, streaming
in float64, per-feature moments and input Gram matrices of every consumer of prunable channels."""

from onnxprune.calibrate.accumulate import FeatureStats
from onnxprune.calibrate.collect import CalibrationStats, collect_statistics
from onnxprune.calibrate.consumers import ConsumerLayer, consumer_layers
from onnxprune.calibrate.data import iter_feeds, sample_count

__all__ = [
    "CalibrationStats",
    "ConsumerLayer",
    "FeatureStats",
    "collect_statistics",
    "consumer_layers",
    "iter_feeds",
    "sample_count",
]
