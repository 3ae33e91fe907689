"""Uncompressed run-length encoding of binary masks, in the layout transformers' SAM pipeline returns.

`{"size": [h, w], "counts": [...]}` with runs over the column-major (Fortran) flattening, starting with a run of
zeros (possibly empty) — what `transformers.models.sam`'s `_mask_to_rle` / `_rle_to_mask` produce. Those helpers
walk masks one at a time (the encoder scans every mask's change list per mask, the decoder fills run by run in
Python); these do one vectorised pass per batch, which matters when thousands of candidate masks are encoded.
pycocotools' RLE is the compressed COCO string, a different format, so it cannot stand in here.
"""

from __future__ import annotations

import numpy as np
import torch


def encode_run_lengths(masks: torch.Tensor) -> list[dict]:
    """(N, H, W) bool masks -> N RLE dicts whose `counts` are int64 numpy arrays (see `run_lengths_as_lists`)."""
    if masks.ndim != 3:
        raise ValueError(f"`masks` must have shape (N, H, W), got {tuple(masks.shape)}")
    count, height, width = masks.shape
    if count == 0:
        return []
    flat = masks.transpose(1, 2).reshape(count, -1)
    changes = (flat[:, 1:] != flat[:, :-1]).nonzero()
    per_mask = torch.bincount(changes[:, 0], minlength=count).tolist()
    positions = (changes[:, 1] + 1).numpy()
    starts_with_one = flat[:, 0].tolist()
    total = height * width
    encoded, offset = [], 0
    for index, changed in enumerate(per_mask):
        boundaries = np.concatenate(([0], positions[offset : offset + changed], [total]))
        offset += changed
        counts = np.diff(boundaries)
        if starts_with_one[index]:
            counts = np.concatenate(([0], counts))
        encoded.append({"size": [height, width], "counts": counts})
    return encoded


def decode_run_lengths(rle: dict) -> np.ndarray:
    """An RLE dict (counts as list or array) -> (H, W) bool mask."""
    height, width = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(width, height).T


def run_lengths_as_lists(rles: list[dict]) -> list[dict]:
    """The same RLEs with `counts` as Python lists (transformers' output type)."""
    return [{"size": list(rle["size"]), "counts": np.asarray(rle["counts"]).tolist()} for rle in rles]
