"""Bad arguments of `pipeline("mask-generation")` are refused by name; documented inputs (numpy, None = off) work."""

import numpy as np
import pytest
import torch
from transformers import pipeline

import hf_promptseg  # noqa: F401
from hf_promptseg.assets import demo_sam_path

IMAGE = np.random.RandomState(0).randint(0, 255, (64, 64, 3)).astype(np.uint8)
FAST = dict(points_per_crop=4, points_per_batch=16)


@pytest.fixture(scope="module")
def generator():
    return pipeline("mask-generation", model=demo_sam_path())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(pred_iou_thresh=-0.1), ValueError, r"`pred_iou_thresh` is -0.1; expected a finite number in \[0, 1\]"),
        (dict(pred_iou_thresh=1.5), ValueError, "`pred_iou_thresh` is 1.5"),
        (dict(pred_iou_thresh=float("nan")), ValueError, "`pred_iou_thresh` is nan"),
        (dict(stability_score_thresh=-1), ValueError, "`stability_score_thresh` is -1"),
        (dict(stability_score_thresh=float("inf")), ValueError, "`stability_score_thresh` is inf"),
        (dict(crops_nms_thresh=1.2), ValueError, "`crops_nms_thresh` is 1.2"),
        (dict(crops_nms_thresh="0.7"), TypeError, "`crops_nms_thresh` must be a number, got str"),
        (dict(stability_score_offset=-1), ValueError, "`stability_score_offset` is -1"),
        (dict(stability_score_offset=None), TypeError, "`stability_score_offset` must be a number"),
        (dict(mask_threshold=float("nan")), ValueError, "`mask_threshold` is nan"),
        (dict(mask_threshold="0"), TypeError, "`mask_threshold` must be a number"),
        (dict(crop_overlap_ratio=1.0), ValueError, r"`crop_overlap_ratio` is 1; expected a finite number in \[0, 1\)"),
        (dict(max_hole_area=-5), ValueError, "`max_hole_area` is -5"),
        (dict(points_per_crop=0), ValueError, "`points_per_crop` is 0; expected an integer >= 1"),
        (dict(points_per_crop=2.5), TypeError, "`points_per_crop` must be an integer"),
        (dict(points_per_batch=0), ValueError, "`points_per_batch` is 0"),
        (dict(points_per_batch=-3), ValueError, "`points_per_batch` is -3"),
        (dict(crops_n_layers=-1), ValueError, "`crops_n_layers` is -1; expected an integer >= 0"),
        (dict(crop_n_points_downscale_factor=0), ValueError, "`crop_n_points_downscale_factor` is 0"),
        (dict(fast_decoder="yes"), TypeError, "`fast_decoder` must be True or False"),
        (dict(pred_iou_tresh=0.9), TypeError, "unexpected keyword argument.*`pred_iou_tresh`; did you mean `pred_iou_t"),
        (dict(min_mask_region_area=5), TypeError, "unexpected keyword argument.*`min_mask_region_area`"),
        (dict(tile_overlap=64), TypeError, r"`tile_overlap`.*\(`tile_overlap` need `tile_size`\)"),
    ],
)  # fmt: skip
def test_bad_arguments(generator, kwargs, error, match):
    with pytest.raises(error, match=match):
        generator(IMAGE, **{**FAST, **kwargs})


@pytest.mark.parametrize(
    "image, error, match",
    [
        (np.full((64, 64, 3), 200.0), ValueError, r"`image` is a float image with values in \[200, 200\]"),
        (np.zeros((64, 64, 3), np.int64), TypeError, "`image` has dtype int64"),
        (np.zeros((64, 64, 4), np.uint8), ValueError, "no channel axis of size 1 or 3"),
        (b"bytes", TypeError, "`image` must be a PIL image, numpy array or torch tensor"),
    ],
)
def test_bad_images(generator, image, error, match):
    with pytest.raises(error, match=match):
        generator(image, **FAST)


def test_numpy_torch_and_float_images_are_accepted_as_documented(generator):
    from PIL import Image

    reference = generator(Image.fromarray(IMAGE), **FAST, pred_iou_thresh=None, stability_score_thresh=None)
    assert len(reference["masks"]) > 0
    for image in (IMAGE, torch.from_numpy(IMAGE).permute(2, 0, 1), IMAGE.astype(np.float32) / 255):
        out = generator(image, **FAST, pred_iou_thresh=None, stability_score_thresh=None)
        assert len(out["masks"]) == len(reference["masks"])
        assert all(np.array_equal(a, b) for a, b in zip(out["masks"], reference["masks"]))


def test_none_switches_filters_off(generator):
    filtered = generator(IMAGE, **FAST, pred_iou_thresh=0.99, stability_score_thresh=0.99)
    unfiltered = generator(IMAGE, **FAST, pred_iou_thresh=None, stability_score_thresh=None, crops_nms_thresh=None)
    assert len(unfiltered["masks"]) > len(filtered["masks"])


def test_points_per_side_is_segment_anythings_name_for_points_per_crop(generator):
    by_side = generator(IMAGE, points_per_side=2, points_per_batch=16, pred_iou_thresh=None,
                        stability_score_thresh=None)  # fmt: skip
    by_crop = generator(IMAGE, points_per_crop=2, points_per_batch=16, pred_iou_thresh=None,
                        stability_score_thresh=None)  # fmt: skip
    assert len(by_side["masks"]) == len(by_crop["masks"]) and torch.equal(by_side["scores"], by_crop["scores"])
    with pytest.raises(TypeError, match="give `points_per_crop` or its segment-anything name `points_per_side`"):
        generator(IMAGE, points_per_side=2, points_per_crop=4)
