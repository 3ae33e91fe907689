import math

import numpy as np
import pytest
import torch

from hf_promptseg.utils.validation import (
    as_array,
    check_finite,
    check_positive_int,
    check_threshold,
    image_to_uint8,
    normalize_mask_generation_arguments,
)


@pytest.mark.parametrize(
    "value, error, match",
    [
        (-0.1, ValueError, r"`t` is -0.1; expected a finite number in \[0, 1\]"),
        (1.01, ValueError, r"`t` is 1.01"),
        (math.nan, ValueError, "`t` is nan"),
        (math.inf, ValueError, "`t` is inf"),
        ("0.5", TypeError, "`t` must be a number, got str"),
        (True, TypeError, "`t` must be a number, got bool"),
        (None, TypeError, "`t` must be a number, got None"),
    ],
)
def test_thresholds_outside_their_range_are_named(value, error, match):
    with pytest.raises(error, match=match):
        check_threshold(value, "t", 0.0, 1.0)


def test_none_switches_a_filter_off_and_is_spelled_out():
    check_threshold(None, "t", 0.0, 1.0, allow_none=True)
    out = normalize_mask_generation_arguments({"pred_iou_thresh": None, "crops_nms_thresh": None, "other": 3})
    assert out == {"pred_iou_thresh": -math.inf, "crops_nms_thresh": 1.0, "other": 3}
    with pytest.raises(ValueError, match=r"or None to switch this filter off"):
        normalize_mask_generation_arguments({"stability_score_thresh": 2})


@pytest.mark.parametrize(
    "value, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError), ("4", TypeError)]
)
def test_counts(value, error):
    with pytest.raises(error, match="`n`"):
        check_positive_int(value, "n")


def test_arrays_ragged_and_non_finite_name_argument_and_index():
    with pytest.raises(ValueError, match=r"`input_points`\[3\] is ragged"):
        as_array([[1, 2], [3]], "input_points", 3)
    with pytest.raises(ValueError, match=r"`boxes`\[1\] holds 1 non-finite value\(s\).*position \(0, 2\)"):
        check_finite(np.array([[0, 0, np.nan, 1.0]]), "boxes", 1)


def test_float_images_in_unit_range_become_their_uint8_twin():
    image = np.random.RandomState(0).rand(4, 5, 3).astype(np.float32)
    assert np.array_equal(image_to_uint8(image, "images"), (image * 255).round().astype(np.uint8))
    assert image_to_uint8(torch.from_numpy(image), "images").dtype == np.uint8
    uint8 = np.zeros((2, 2, 3), np.uint8)
    assert image_to_uint8(uint8, "images") is uint8
    with pytest.raises(ValueError, match=r"`images`\[2\] is a float image with values in \[0, 255\]"):
        image_to_uint8(np.linspace(0, 255, 12).reshape(2, 2, 3), "images", 2)
    with pytest.raises(ValueError, match=r"`images` holds NaN"):
        image_to_uint8(np.full((2, 2, 3), np.nan), "images")


def test_unknown_keyword_arguments_are_named_with_a_guess():
    from hf_promptseg.utils.validation import check_known_arguments

    check_known_arguments(["threshold"], ["threshold", "timeout"], "segmentation")
    with pytest.raises(TypeError, match=r"segmentation got unexpected keyword argument\(s\) `thresh`, `zzz`; did you"):
        check_known_arguments(["zzz", "thresh", "timeout"], ["threshold", "timeout"], "segmentation")
