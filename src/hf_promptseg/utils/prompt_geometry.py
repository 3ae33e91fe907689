"""Prompts derived from a ground-truth mask: the single click and the box that SAM evaluations use."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt


def boundary_distance(mask: np.ndarray) -> np.ndarray:
    """Distance of every mask pixel to the nearest pixel outside the mask (the image border counts as outside)."""
    return distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the mask pixel farthest from its boundary: the usual single-click prompt of SAM evaluations."""
    distance = boundary_distance(mask)
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return float(x) + 0.5, float(y) + 0.5


def bounding_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Tight (x0, y0, x1, y1) box of a boolean mask, in pixel-edge coordinates."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


__all__ = ["boundary_distance", "bounding_box", "interior_point"]
