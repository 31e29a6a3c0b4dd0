"""A text-line recognizer (CRNN) with random weights, nothing downloaded: the layer pattern the
recurrent channel rule (``onnxprune/analysis/rules/recurrent.py``) exists for, used by
tests/analysis/test_recurrent.py and tools/torch_layers_coverage.py.

:class:`CRNN` — two convs pool the height of a ``[B, 3, HEIGHT, WIDTH]`` image to 1, each
column becomes a time step of a bidirectional ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN``
(sequence-first or batch-first), and a Linear scores ``CLASSES`` characters per step. Output
``[B, steps, CLASSES]`` (batch-first layers) or ``[steps, B, CLASSES]`` (sequence-first).
"""

from __future__ import annotations

import torch
from torch import nn

HEIGHT, WIDTH, FEATURES, HIDDEN, CLASSES = 8, 20, 32, 24, 11
LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class CRNN(nn.Module):
    def __init__(self, kind: str = "lstm", batch_first: bool = False) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.convs = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, FEATURES, 3, padding=1), nn.ReLU(), nn.MaxPool2d((HEIGHT // 2, 1)),
        )  # fmt: skip
        self.rnn = LAYERS[kind](FEATURES, HIDDEN, bidirectional=True, batch_first=batch_first)
        self.head = nn.Linear(2 * HIDDEN, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.convs(x).squeeze(2)  # [B, C, W]
        steps = features.permute(0, 2, 1) if self.batch_first else features.permute(2, 0, 1)
        out, _ = self.rnn(steps)
        return self.head(out)
