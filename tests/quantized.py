"""Quantized copies of the shipped digits VGG (ONNX Runtime's quantization tool), for the
tests of what onnxprune does with int8 models: counts them, refuses to prune them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIGITS = Path(__file__).resolve().parents[1] / "models" / "digits"


class _Reader:
    def __init__(self, images: np.ndarray) -> None:
        self.batches = iter([{"input": images[i : i + 1]} for i in range(len(images))])

    def get_next(self):
        return next(self.batches, None)


def quantized_vgg(folder: Path, form: str) -> Path:
    """digits_vgg quantized as ``qdq`` (QuantizeLinear/DequantizeLinear pairs, per-channel
    int8 weights), ``qoperator`` (QLinearConv) or ``dynamic`` (ConvInteger/MatMulInteger)."""
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    source = str(DIGITS / "digits_vgg.onnx")
    path = folder / f"digits_vgg_{form}.onnx"
    if form == "dynamic":
        quantize_dynamic(source, str(path))
        return path
    images = np.load(DIGITS / "digits_calib.npz")["input"][:8]
    quant_format = QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator
    quantize_static(source, str(path), _Reader(images), quant_format=quant_format,
                    per_channel=form == "qdq")  # fmt: skip
    return path
