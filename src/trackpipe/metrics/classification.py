"""Per-hit classification accuracy for class-based models (e.g. the EncCla track-class classifier)."""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def hit_classification_accuracy(true_class, pred_class, mask=None) -> float:
    """Fraction of real hits whose predicted class equals the true class.

    `true_class`, `pred_class`: integer arrays of the same shape (any batch layout, e.g. events x
    padded hits); `mask`: True for real hits, False for padding (padding is excluded from both the
    numerator and the denominator); None means every entry is a real hit. Array-likes with a
    `.numpy()`-compatible `__array__` (numpy, lists, CPU tensors) are accepted. No real hit: NaN.
    """
    true_class = np.asarray(true_class)
    pred_class = np.asarray(pred_class)
    if true_class.shape != pred_class.shape:
        raise DataError(f"true classes have shape {true_class.shape}, predictions {pred_class.shape}",
                        column="pred_class")
    mask = np.ones(true_class.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != true_class.shape:
        raise DataError(f"mask has shape {mask.shape}, classes {true_class.shape}", column="mask")
    n = int(mask.sum())
    if n == 0:
        return float("nan")
    return float(((true_class == pred_class) & mask).sum() / n)
