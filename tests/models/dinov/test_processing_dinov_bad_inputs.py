"""Battery of bad DINOv prompts and images: named errors before rasterising; float images treated as in SAM."""

import numpy as np
import pytest
import torch

from hf_promptseg.models.dinov import DinovImageProcessor, DinovProcessor

NAN, INF = float("nan"), float("inf")
TARGET = np.zeros((60, 80, 3), np.uint8)
REFERENCE = np.zeros((40, 50, 3), np.uint8)


@pytest.fixture(scope="module")
def processor():
    return DinovProcessor(DinovImageProcessor(do_resize=False))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(prompts={"boxes": [[NAN, 1, 5, 5]]}), ValueError, r"`prompts\['boxes'\]`\[0\] holds 1 non-finite"),
        (dict(prompts={"boxes": [[0, 0, 5, 5], [1, 1, INF, 5]]}), ValueError, r"`prompts\['boxes'\]`\[1\] holds"),
        (dict(prompts={"points": [[1, NAN]]}), ValueError, r"`prompts\['points'\]`\[0\] holds 1 non-finite"),
        (dict(prompts={"scribbles": [[[0, 0], [NAN, 3]]]}), ValueError, r"`prompts\['scribbles'\]`\[0\] holds"),
        (dict(prompts={"masks": np.full((1, 60, 80), NAN)}), ValueError, r"`prompts\['masks'\]` holds 4800"),
        (dict(prompts={"boxes": [[0, 0, 5]]}), ValueError, r"`prompts\['boxes'\]`\[0\] has shape \(3,\)"),
        (dict(prompts={"boxes": [["a", 0, 5, 5]]}), TypeError, r"`prompts\['boxes'\]`\[0\] must hold numbers"),
        (dict(prompts={"boxes": [[9, 0, 5, 5]]}), ValueError, r"`prompts\['boxes'\]`\[0\] is \[9.0, 0.0, 5.0, 5.0\]"),
        (dict(prompts={"points": [[[1, 2]]]}), ValueError, r"`prompts\['points'\]`\[0\] has shape \(1, 2\)"),
        (dict(prompts={"scribbles": [[]]}), ValueError, r"`prompts\['scribbles'\]`\[0\] is empty"),
        (dict(prompts={"masks": np.ones((1, 10, 10))}), ValueError, r"must have shape \(N, 60, 80\)"),
        (dict(prompts={"points": [[500, 500]]}), ValueError, "prompt 0 covers no pixel of the 80x60 image"),
        (dict(prompts={"lines": [[0, 0]]}), ValueError, "unknown prompt kind"),
        (dict(prompts={}), TypeError, "`prompts` must be a non-empty dict"),
        (dict(prompts=None), ValueError, "`prompts` is required"),
        (dict(reference_images=[REFERENCE], prompts=[{"points": [[1, 1]]}, {"points": [[2, 2]]}]), ValueError,
         r"`prompts` holds 2 prompt dict\(s\) for 1 `reference_images`"),
        (dict(reference_images=[REFERENCE, REFERENCE], prompts=[{"points": [[1, 1]]}, {"boxes": [[0, 0, NAN, 1]]}]),
         ValueError, r"`prompts\[1\]\['boxes'\]`\[0\] holds"),
        (dict(reference_images=np.full((40, 50, 3), 200.0), prompts={"points": [[1, 1]]}), ValueError,
         r"`reference_images` is a float image with values in \[200, 200\]"),
        (dict(reference_images=[REFERENCE, np.zeros((40, 50, 4), np.uint8)], prompts=[{"points": [[1, 1]]}] * 2),
         ValueError, r"`reference_images`\[1\] must be an RGB image"),
        (dict(reference_images=np.zeros((40, 50, 3), np.int32), prompts={"points": [[1, 1]]}), TypeError,
         "dtype int32"),
    ],
)  # fmt: skip
def test_bad_prompts_and_references(processor, kwargs, error, match):
    with pytest.raises(error, match=match):
        processor(TARGET, **kwargs)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.full((60, 80, 3), 254.0), r"`images` is a float image with values in \[254, 254\]"),
        (np.full((60, 80, 3), NAN, np.float32), "`images` holds NaN or inf"),
        ([TARGET, np.full((60, 80, 3), 1.5)], r"`images`\[1\] is a float image"),
        (torch.full((3, 60, 80), -1.0), "float images must hold values in"),
    ],
)
def test_float_images_outside_unit_range_are_refused_not_clipped(image, match):
    with pytest.raises(ValueError, match=match):
        DinovImageProcessor(do_resize=False)(image)


def test_float_images_in_unit_range_equal_their_uint8_twin_as_in_sam(processor):
    image = np.random.RandomState(0).rand(60, 80, 3)
    as_float = processor(image, prompts={"points": [[10, 10]]})["pixel_values"]
    as_uint8 = processor((image * 255).round().astype(np.uint8), prompts={"points": [[10, 10]]})["pixel_values"]
    assert torch.equal(as_float, as_uint8)


@pytest.mark.parametrize(
    "method, kwargs, match",
    [
        ("post_process_referring", dict(iou_threshold=float("nan")), "`iou_threshold` is nan"),
        ("post_process_referring", dict(nms_threshold=float("nan")), "`nms_threshold` is nan"),
        ("post_process_referring", dict(min_mask_area=-1), "`min_mask_area` is -1"),
        ("post_process_instance", dict(threshold=-0.5), "`threshold` is -0.5"),
        ("post_process_panoptic", dict(object_mask_threshold=2), "`object_mask_threshold` is 2"),
        ("post_process_panoptic", dict(overlap_threshold=float("inf")), "`overlap_threshold` is inf"),
    ],
)
def test_post_processing_thresholds_are_checked_first(method, kwargs, match):
    image_processor = DinovImageProcessor()
    size = (60, 80) if method == "post_process_referring" else [(60, 80)]
    with pytest.raises(ValueError, match=match):
        getattr(image_processor, method)(None, size, **kwargs)
