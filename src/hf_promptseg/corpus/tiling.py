"""Automatic mask generation on images larger than the model's input: per tile at native resolution, then merged.

SAM resizes its input to its encoder size (1024² for the released models), so a 4000×3000 drone or microscopy
image loses its small objects. Here the image is cut into `tile_size` tiles overlapping by `tile_overlap` pixels;
each tile runs through the mask-generation pipeline on its own; each mask is placed in the image's frame as a
compressed COCO RLE (no image-sized dense mask, see `hf_promptseg.corpus.rle`); masks cut by a tile border are
joined with their other part from the neighbouring tile (same object where the two tiles overlap: IoU of the two
masks inside the overlap window above `merge_iou`); then a global NMS removes duplicates. Peak memory is the
image, one tile's masks and the RLE results.

Example:

```python
import numpy as np, torch
from transformers import pipeline
from hf_promptseg.assets import DEMO_SAM_MASK_GENERATION_THRESHOLDS, demo_sam_path
from hf_promptseg.corpus.tiling import tiled_mask_generation

generator = pipeline("mask-generation", model=demo_sam_path(), dtype=torch.float32)
image = np.zeros((200, 300, 3), np.uint8)
result = tiled_mask_generation(generator, image, tile_size=128, tile_overlap=32, points_per_crop=4,
                               **DEMO_SAM_MASK_GENERATION_THRESHOLDS)
sorted(result)  # ['bounding_boxes', 'rle_mask', 'scores', 'stability_scores']
```
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from hf_promptseg.corpus import rle as rle_ops
from hf_promptseg.utils.boxes import nms

EDGE_MARGIN = 2  # pixels: a mask whose box comes this close to an inner tile border counts as cut by it


def validate_tiling(tile_size: Any, tile_overlap: Any, prefix: str = "") -> None:
    """Clear errors for tile settings (`prefix="--"` names the command-line flags)."""
    size_name, overlap_name = (
        (f"{prefix}tile-size", f"{prefix}tile-overlap") if prefix else ("tile_size", "tile_overlap")
    )
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 16:
        raise ValueError(f"`{size_name}` must be an integer >= 16 (pixels), got {tile_size!r}")
    if isinstance(tile_overlap, bool) or not isinstance(tile_overlap, int) or tile_overlap < 0:
        raise ValueError(f"`{overlap_name}` must be an integer >= 0 (pixels), got {tile_overlap!r}")
    if tile_overlap >= tile_size:
        raise ValueError(
            f"`{overlap_name}` ({tile_overlap}) must be smaller than `{size_name}` ({tile_size}); tiles would not advance"
        )


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def tile_boxes(height: int, width: int, tile_size: int, tile_overlap: int) -> list[tuple[int, int, int, int]]:
    """XYXY boxes of the tiles covering a (height, width) image, row by row; the last row/column is flush with the
    image's edge (so it may overlap its neighbour by more than `tile_overlap`)."""
    validate_tiling(tile_size, tile_overlap)
    stride = tile_size - tile_overlap
    return [
        (x, y, min(x + tile_size, width), min(y + tile_size, height))
        for y in _starts(height, tile_size, stride)
        for x in _starts(width, tile_size, stride)
    ]


def _inner_edges(tile: tuple[int, int, int, int], box: list[float], height: int, width: int) -> bool:
    """Whether a tile-frame XYXY mask box touches a border of `tile` that is not the image's border."""
    x0, y0, x1, y1 = tile
    bx0, by0, bx1, by1 = box
    return (
        (x0 > 0 and bx0 <= EDGE_MARGIN)
        or (y0 > 0 and by0 <= EDGE_MARGIN)
        or (x1 < width and bx1 >= (x1 - x0) - 1 - EDGE_MARGIN)
        or (y1 < height and by1 >= (y1 - y0) - 1 - EDGE_MARGIN)
    )


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def merge_cut_masks(
    masks: list[dict], tiles: list[tuple[int, int, int, int]], merge_iou: float = 0.5
) -> list[list[int]]:
    """Groups of mask indices that are one object cut by tile borders.

    `masks` are records with `rle` (image frame), `tile` (index into `tiles`) and `cut` (touches an inner border).
    Two masks of different, overlapping tiles join when at least one is cut and their parts inside the two tiles'
    common window have IoU above `merge_iou`.
    """
    parent = list(range(len(masks)))
    boxes = [rle_ops.bbox(m["rle"]) for m in masks]
    cut = [i for i, m in enumerate(masks) if m["cut"]]
    for i in cut:
        for j in range(len(masks)):
            if j == i or masks[j]["tile"] == masks[i]["tile"] or (masks[j]["cut"] and j < i):
                continue
            a, b = tiles[masks[i]["tile"]], tiles[masks[j]["tile"]]
            wx0, wy0, wx1, wy1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
            if wx1 <= wx0 or wy1 <= wy0:
                continue
            (ax, ay, aw, ah), (bx, by, bw, bh) = boxes[i], boxes[j]
            if ax >= bx + bw or bx >= ax + aw or ay >= by + bh or by >= ay + ah:
                continue
            window = [wx0, wy0, wx1 - wx0, wy1 - wy0]
            part_i = rle_ops.intersect_box(masks[i]["rle"], window)
            part_j = rle_ops.intersect_box(masks[j]["rle"], window)
            if rle_ops.area(part_i) == 0 or rle_ops.area(part_j) == 0:
                continue
            if rle_ops.iou_matrix([part_i], [part_j])[0, 0] > merge_iou:
                parent[_find(parent, i)] = _find(parent, j)
    groups: dict[int, list[int]] = {}
    for i in range(len(masks)):
        groups.setdefault(_find(parent, i), []).append(i)
    return sorted(groups.values())


def tiled_mask_generation(
    generator: Any,
    image: Any,
    tile_size: int,
    tile_overlap: int = 64,
    merge_iou: float = 0.5,
    crops_nms_thresh: float = 0.7,
    progress: bool = True,
    **generator_kwargs: Any,
) -> dict[str, Any]:
    """Automatic masks of a large image, tile by tile (see the module docstring).

    Args:
        generator: a `pipeline("mask-generation")`.
        image: PIL image or (H, W, 3) uint8 array.
        tile_size, tile_overlap: tile side and overlap in pixels of the image (`tile_overlap < tile_size`).
        merge_iou: IoU inside the tiles' common window above which two masks are one object.
        crops_nms_thresh: box IoU of the per-tile and of the final global NMS.
        generator_kwargs: the pipeline's mask-generation parameters (`points_per_crop`, thresholds, ...).
            Tile embeddings are not cached unless an `embedding_cache` is passed here (a tiled image's tiles
            would otherwise fill the shared cache, and memory would grow with the image).

    Returns:
        `rle_mask`: COCO compressed RLEs (`counts` str) in the image's frame, best first; `scores` (predicted IoU),
        `stability_scores` (N,) tensors; `bounding_boxes` (N, 4) XYXY.
    """
    validate_tiling(tile_size, tile_overlap)
    if isinstance(image, Image.Image):
        picture = image if image.mode == "RGB" else image.convert("RGB")
        width, height = picture.size
        crop = lambda box: picture.crop(box)  # noqa: E731  (PIL crops copy one tile, never the whole image)
    else:
        array = np.asarray(image)
        if array.ndim != 3:
            raise ValueError(f"`image` must be a PIL image or an (H, W, 3) array, got shape {array.shape}")
        height, width = array.shape[:2]
        crop = lambda box: Image.fromarray(np.ascontiguousarray(array[box[1] : box[3], box[0] : box[2]]))  # noqa: E731
    if height == 0 or width == 0:
        raise ValueError(f"`image` has no pixels ({width}x{height})")
    tiles = tile_boxes(height, width, tile_size, tile_overlap)
    generator_kwargs.setdefault("embedding_cache", False)
    generator_kwargs.setdefault("fast_decoder", True)  # any SAM: it carries the stability scores
    records: list[dict] = []
    for index, (x0, y0, x1, y1) in enumerate(tqdm(tiles, desc="tiles", leave=False, disable=not progress)):
        out = generator(
            crop((x0, y0, x1, y1)),
            output_bboxes_mask=True,
            output_stability_scores=True,
            crops_nms_thresh=crops_nms_thresh,
            **generator_kwargs,
        )
        for mask, score, stability, box in zip(
            out["masks"], out["scores"].tolist(), out["stability_scores"].tolist(), out["bounding_boxes"].tolist()
        ):
            records.append(
                {
                    "rle": rle_ops.place_mask(mask, x0, y0, height, width),
                    "score": score,
                    "stability": stability,
                    "tile": index,
                    "cut": _inner_edges((x0, y0, x1, y1), box, height, width),
                }
            )
        del out
    merged = []
    for group in merge_cut_masks(records, tiles, merge_iou):
        # masks of one tile in a group are alternative extents of the same piece: keep that tile's best one
        best: dict[int, dict] = {}
        for i in group:
            if records[i]["tile"] not in best or records[i]["score"] > best[records[i]["tile"]]["score"]:
                best[records[i]["tile"]] = records[i]
        parts = list(best.values())
        rle = parts[0]["rle"] if len(parts) == 1 else rle_ops.union([p["rle"] for p in parts])
        areas = np.array([rle_ops.area(p["rle"]) for p in parts], dtype=np.float64)
        weights = areas / areas.sum() if areas.sum() else np.full(len(parts), 1 / len(parts))
        merged.append(
            {
                "rle": rle,
                "score": float(np.dot(weights, [p["score"] for p in parts])),
                "stability": float(min(p["stability"] for p in parts)),
            }
        )
    if not merged:
        return {
            "rle_mask": [],
            "scores": torch.zeros(0),
            "stability_scores": torch.zeros(0),
            "bounding_boxes": torch.zeros(0, 4),
        }
    boxes = torch.tensor([rle_ops.bbox(m["rle"]) for m in merged], dtype=torch.float32)
    boxes[:, 2:] += boxes[:, :2]
    scores = torch.tensor([m["score"] for m in merged], dtype=torch.float32)
    keep = nms(boxes, scores, crops_nms_thresh)
    return {
        "rle_mask": [merged[i]["rle"] for i in keep.tolist()],
        "scores": scores[keep],
        "stability_scores": torch.tensor([merged[i]["stability"] for i in keep.tolist()], dtype=torch.float32),
        "bounding_boxes": boxes[keep],
    }


__all__ = ["merge_cut_masks", "tile_boxes", "tiled_mask_generation", "validate_tiling"]
