"""COCO (pycocotools) run-length encodings of masks placed in a large image, without the image-sized dense mask.

A mask found in a tile or window is `(h, w)`; in the image it sits at `(x0, y0)`. Its compressed COCO RLE in the
image's frame is built from the tile's run boundaries alone (column-major offsets), so memory stays that of the tile
even for a 20,000² image. Merging, areas, boxes and IoUs then run on compressed RLEs (pycocotools).
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def place_mask(mask: np.ndarray, x0: int, y0: int, height: int, width: int) -> dict:
    """Compressed COCO RLE (`counts` as str) of the (h, w) bool `mask` put at `(x0, y0)` of a (height, width) image.

    Example:
        >>> import numpy as np
        >>> rle = place_mask(np.ones((2, 3), bool), 4, 1, 10, 10)
        >>> int(mask_utils.area(rle)), mask_utils.toBbox(rle).tolist()
        (6, [4.0, 1.0, 3.0, 2.0])
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    if x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise ValueError(f"a {w}x{h} mask at ({x0}, {y0}) does not fit a {width}x{height} image")
    # a zero row under every column keeps runs inside their column in the column-major flattening
    padded = np.zeros((h + 1, w), dtype=bool)
    padded[:h] = mask
    flat = padded.T.reshape(-1)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    if flat[0]:
        changes = np.concatenate(([0], changes))
    column, row = np.divmod(changes, h + 1)
    positions = (x0 + column) * height + y0 + row
    if h == height:  # a run ending at a column's last row and one starting the next column's first row join up
        joined = np.flatnonzero(positions[1:] == positions[:-1])
        positions = np.delete(positions, np.concatenate([joined, joined + 1]))
    positions = positions[positions < height * width]  # a run ending at the image's last pixel ends with the image
    counts = np.diff(np.concatenate(([0], positions, [height * width])))
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return to_json_rle(rle)


def to_json_rle(rle: dict) -> dict:
    """A pycocotools RLE with `counts` as str (JSON- and parquet-friendly)."""
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]], "counts": counts.decode() if isinstance(counts, bytes) else counts}


def from_json_rle(rle: dict) -> dict:
    """Back to what pycocotools' functions take (`counts` as bytes)."""
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode() if isinstance(counts, str) else counts}


def encode_dense(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a dense (H, W) bool mask."""
    return to_json_rle(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))


def union(rles: list[dict]) -> dict:
    """The union of RLEs of one image."""
    return to_json_rle(mask_utils.merge([from_json_rle(r) for r in rles], intersect=False))


def intersect_box(rle: dict, box_xywh: list[float]) -> dict:
    """The part of `rle` inside an `[x, y, w, h]` rectangle."""
    height, width = rle["size"]
    rect = mask_utils.frPyObjects(np.asarray([box_xywh], dtype=np.float64), height, width)[0]
    return to_json_rle(mask_utils.merge([from_json_rle(rle), rect], intersect=True))


def area(rle: dict) -> int:
    return int(mask_utils.area(from_json_rle(rle)))


def bbox(rle: dict) -> list[float]:
    """COCO `[x, y, w, h]` box."""
    return [float(v) for v in mask_utils.toBbox(from_json_rle(rle))]


def iou_matrix(first: list[dict], second: list[dict]) -> np.ndarray:
    """Pairwise mask IoU (len(first), len(second))."""
    if not first or not second:
        return np.zeros((len(first), len(second)))
    return np.asarray(
        mask_utils.iou([from_json_rle(r) for r in first], [from_json_rle(r) for r in second], [0] * len(second))
    )


def decode(rle: dict) -> np.ndarray:
    return mask_utils.decode(from_json_rle(rle)).astype(bool)


__all__ = [
    "area",
    "bbox",
    "decode",
    "encode_dense",
    "from_json_rle",
    "intersect_box",
    "iou_matrix",
    "place_mask",
    "to_json_rle",
    "union",
]
