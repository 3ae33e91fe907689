"""Tiled automatic mask generation with the embedded demo SAM on a large procedural image with exact masks."""

import numpy as np
import pytest
import torch
from transformers import pipeline

from hf_promptseg.assets import DEMO_SAM_MASK_GENERATION_THRESHOLDS, demo_sam_path
from hf_promptseg.corpus import rle as rle_ops
from hf_promptseg.corpus.tiling import tile_boxes, validate_tiling
from hf_promptseg.data.scenes import make_scene_with_objects

# 4×4 tiles of 128 px (the demo SAM's input: native resolution) overlapping by 32 px: a 416² image.
TILE, OVERLAP, SIDE = 128, 32, 416
INSIDE = [(48, 48), (160, 160), (256, 256), (368, 368), (48, 368), (368, 48), (160, 368), (256, 48)]
CROSSING = [(112, 160), (208, 48), (304, 368), (48, 208), (368, 112), (208, 256), (112, 304), (304, 208)]


def test_tile_grid_covers_the_image_and_bad_settings_are_named():
    tiles = tile_boxes(SIDE, SIDE, TILE, OVERLAP)
    assert len(tiles) == 16 and tiles[0] == (0, 0, 128, 128) and tiles[-1] == (288, 288, 416, 416)
    assert tile_boxes(100, 50, 128, 32) == [(0, 0, 50, 100)]
    with pytest.raises(ValueError, match=r"`tile_overlap` \(128\) must be smaller than `tile_size` \(128\)"):
        validate_tiling(128, 128)
    with pytest.raises(ValueError, match="`tile_size` must be an integer >= 16"):
        validate_tiling(8, 0)


def test_place_mask_equals_pycocotools_on_the_dense_mask():
    rng = np.random.default_rng(0)
    for _ in range(300):
        height, width = rng.integers(1, 30, 2)
        h, w = rng.integers(1, height + 1), rng.integers(1, width + 1)
        x0, y0 = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
        mask = rng.random((h, w)) < rng.random()
        dense = np.zeros((height, width), bool)
        dense[y0 : y0 + h, x0 : x0 + w] = mask
        assert rle_ops.place_mask(mask, int(x0), int(y0), int(height), int(width)) == rle_ops.encode_dense(dense)


def _best_ious(seed: int):
    rng = np.random.default_rng(seed)
    shapes = [("ellipse", "rectangle")[int(rng.integers(2))] for _ in range(16)]
    objects = [(x, y, 24, shape) for (x, y), shape in zip(INSIDE + CROSSING, shapes)]
    scene = make_scene_with_objects(seed, SIDE, SIDE, objects)
    generator = pipeline("mask-generation", model=demo_sam_path(), dtype=torch.float32)
    out = generator(
        scene.image, tile_size=TILE, tile_overlap=OVERLAP, points_per_crop=8, points_per_batch=64,
        **DEMO_SAM_MASK_GENERATION_THRESHOLDS,
    )  # fmt: skip
    assert set(out) == {"rle_mask", "scores", "stability_scores", "bounding_boxes"}
    ious = rle_ops.iou_matrix([rle_ops.encode_dense(m) for m in scene.masks], out["rle_mask"])
    return ious.max(1), (ious > 0.5).sum(1)


def test_objects_across_tile_borders_come_out_whole():
    """Every border-crossing object gives one mask (not one per tile) as accurate as objects inside a tile.

    Measured (seed 1, 16 tiles of 64 points, ≈15 s on 2 shared cores): median best IoU 0.967 for the 8 objects
    inside a tile, 0.963 for the 8 across borders (2 of them at the corner of 4 tiles); each crossing object is matched
    by exactly one mask with IoU > 0.5."""
    best, matches = _best_ious(seed=1)
    inside, crossing = best[: len(INSIDE)], best[len(INSIDE) :]
    assert np.median(crossing) >= np.median(inside) - 0.03 and np.median(crossing) > 0.9
    assert list(matches[len(INSIDE) :]) == [1] * len(CROSSING)


def _record(mask, tile, tiles, height, width):
    x0, y0, x1, y1 = tiles[tile]
    local = mask[y0:y1, x0:x1]
    ys, xs = np.nonzero(local)
    box = [xs.min(), ys.min(), xs.max(), ys.max()]
    from hf_promptseg.corpus.tiling import _inner_edges

    return {"rle": rle_ops.place_mask(local, x0, y0, height, width), "tile": tile,
            "cut": _inner_edges(tiles[tile], box, height, width), "score": 0.9, "stability": 0.9}  # fmt: skip


def test_parts_of_one_object_merge_and_neighbours_do_not():
    """Exact masks, no model: a disk across the border of two tiles is seen by both (each its own part); two
    distinct disks, each touching the same border from one side, stay two objects."""
    from hf_promptseg.corpus.tiling import merge_cut_masks

    height, width = 128, 224
    tiles = tile_boxes(height, width, 128, 32)
    assert tiles == [(0, 0, 128, 128), (96, 0, 224, 128)]
    yy, xx = np.mgrid[:height, :width]
    disk = (xx - 112) ** 2 + (yy - 40) ** 2 < 24**2  # crosses both tiles' borders
    left = (xx - 84) ** 2 + (yy - 100) ** 2 < 12**2  # inside tile 0 only, not cut
    right = (xx - 150) ** 2 + (yy - 100) ** 2 < 12**2  # inside tile 1 only
    records = [
        _record(disk, 0, tiles, height, width), _record(disk, 1, tiles, height, width),
        _record(left, 0, tiles, height, width), _record(right, 1, tiles, height, width),
    ]  # fmt: skip
    assert [r["cut"] for r in records] == [True, True, False, False]
    groups = merge_cut_masks(records, tiles)
    assert groups == [[0, 1], [2], [3]]
    merged = rle_ops.union([records[0]["rle"], records[1]["rle"]])
    assert np.array_equal(rle_ops.decode(merged), disk)
