"""The prediction matrix: where a model's predictions go, class by class, against the gold
model's on the same samples (by default the forget set D_f).

Read from the softmax outputs a run stores (`predictions["MODEL/SET"]`): no model is run. The
diagonal holds the samples on which both predict the same class, so its sum over the number of
samples is the report's `agreement_forget` against that gold seed (method spec §7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .source import probs_at


@dataclass(frozen=True)
class PredictionMatrix:
    """Counts of (reference prediction, model prediction) pairs over `ids`.

    counts[r, c] = number of samples the reference (`row_model`, usually a gold seed) puts in
    class r and `col_model` in class c; shape (K, K), int64, summing to len(ids). `rows` and
    `cols` are each sample's two predicted classes, aligned with `ids`."""

    row_model: str
    col_model: str
    ids: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray

    @property
    def agreement(self) -> float:
        """Fraction of the samples on the diagonal (NaN for no sample)."""
        n = len(self.ids)
        return float(np.trace(self.counts) / n) if n else float("nan")

    def cell(self, row: int, col: int) -> np.ndarray:
        """Pool ids of the samples in cell (row, col), in the order of `ids`."""
        k = len(self.counts)
        if not (0 <= row < k and 0 <= col < k):
            raise ValueError(f"cell ({row}, {col}) is outside the {k}x{k} matrix")
        return self.ids[(self.rows == row) & (self.cols == col)]


def _labels(run) -> np.ndarray:
    labels = getattr(run, "labels", None)
    if labels is not None:
        return np.asarray(labels)
    if getattr(run, "dataset", None) is None:
        raise ValueError("restricting to a class needs the run's labels: load_run(load_data=True)")
    return run.dataset.tensors[1].numpy()


def prediction_matrix(
    run,
    model: str,
    *,
    reference: str = "gold_0",
    ids: np.ndarray | None = None,
    cls: int | None = None,
) -> PredictionMatrix:
    """The K x K matrix of `reference`'s predicted class (rows) against `model`'s (columns).

    run: a `tmu.load_run(...)` LoadedRun or an inspect `RunData` (anything with `.split` and
    `.predictions`). ids: pool ids in any stored role (default: the forget set D_f); cls: keep
    only the samples whose training label is `cls`. Use model="original" for the original vs gold
    matrix."""
    ids = run.split["forget"] if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
    probs_ref = probs_at(run.predictions, run.split, reference, ids)
    k = probs_ref.shape[1]
    if cls is not None:
        if not 0 <= cls < k:
            raise ValueError(f"class {cls} does not exist; classes are 0..{k - 1}")
        keep = _labels(run)[ids] == cls
        ids, probs_ref = ids[keep], probs_ref[keep]
    rows = probs_ref.argmax(1)
    cols = probs_at(run.predictions, run.split, model, ids).argmax(1)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (rows, cols), 1)
    return PredictionMatrix(reference, model, ids, rows, cols, counts)
