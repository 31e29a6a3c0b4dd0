"""How much nearest-neighbour agreement isotropic noise of a given cosine leaves (issue 15).

The unpruned all-MiniLM-L6-v2 (dynamo export) embeds the benchmark's 256 evaluation sentences
(masked mean pooling, as in tools/bench_transformer.py). Each pooled embedding e gets Gaussian
noise σ·‖e‖/√d·z (z standard normal, d the width); for each σ the tool prints the mean cosine
of the noisy embeddings to the clean ones and the share of sentences whose nearest neighbour
(cosine, among the evaluation sentences) is unchanged, averaged over 5 draws. A pruned model
with the same cosine but a lower agreement puts its error on the directions that separate
neighbours.

    python tools/probe_retrieval_noise.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.3)


def main() -> int:
    from bench_transformer import CALIBRATION, EVALUATION, LENGTH, _hidden
    from minilm.model import export, tokenize
    from minilm.sentences import split

    from onnxprune.evaluate.embedding import mean_pool, nearest_neighbours

    _, evaluation_text = split(CALIBRATION, EVALUATION, seed=0)
    evaluation = tokenize(evaluation_text, LENGTH)
    with tempfile.TemporaryDirectory(prefix="probe-retrieval-") as folder:
        path = export(Path(folder) / "minilm-dynamo.onnx", "dynamo")
        clean = mean_pool(_hidden(path, evaluation), evaluation["attention_mask"])
    neighbours = nearest_neighbours(clean)
    rng = np.random.default_rng(0)
    norms = np.linalg.norm(clean, axis=1, keepdims=True)
    print("| sigma | mean cosine | NN agreement |\n|---|---|---|")
    for sigma in SIGMAS:
        cosines, agreements = [], []
        for _ in range(5):
            noisy = clean + sigma * norms / np.sqrt(clean.shape[1]) * rng.normal(size=clean.shape)
            cosine = np.sum(noisy * clean, 1) / np.linalg.norm(noisy, axis=1) / norms[:, 0]
            cosines.append(cosine.mean())
            agreements.append(np.mean(nearest_neighbours(noisy) == neighbours))
        print(f"| {sigma} | {np.mean(cosines):.4f} | {100 * np.mean(agreements):.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
