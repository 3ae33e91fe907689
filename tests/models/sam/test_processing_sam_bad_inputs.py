"""Battery of bad SAM prompts and images: each raises before any tensor work, naming argument, index and value."""

import numpy as np
import pytest
import torch

from hf_promptseg.models.sam import HfPromptsegSamImageProcessor, HfPromptsegSamProcessor

IMAGE = np.zeros((100, 200, 3), dtype=np.uint8)
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def processor():
    return HfPromptsegSamProcessor(HfPromptsegSamImageProcessor())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(input_points=[[[NAN, 3]]], input_labels=[[1]]), ValueError, r"`input_points`\[0\] holds 1 non-finite"),
        (dict(input_points=[[[5, INF]]], input_labels=[[1]]), ValueError, r"`input_points`\[0\] holds 1 non-finite"),
        (dict(input_points=torch.tensor([[[[1.0, NAN]]]]), input_labels=[[[1]]]), ValueError, "non-finite"),
        (dict(input_boxes=[[[0, 0, NAN, 3]]]), ValueError, r"`input_boxes`\[0\] holds 1 non-finite.*\(0, 2\)"),
        (dict(input_points=[[[5, 3]]], input_labels=[[2]]), ValueError, r"`input_labels`\[0\] holds label 2"),
        (dict(input_points=[[[5, 3]]], input_labels=[[0.5]]), ValueError, "holds label 0.5"),
        (dict(input_points=[[[5, 3]]], input_labels=[[-5]]), ValueError, r"or the pad value -10"),
        (dict(input_points=[[[5, 3]]], input_labels=[[NAN]]), ValueError, r"`input_labels`\[0\] holds 1 non-finite"),
        (dict(input_points=[[[1, 2]], [[1, 2], [3]]]), ValueError, r"`input_points`\[1\] has 1 coordinates"),
        (dict(input_points=[[["a", "b"]]]), TypeError, r"`input_points`\[0\] holds a str"),
        (dict(input_points=[[[1, 2, 3]]]), ValueError, r"`input_points`\[0\] has shape \(1, 3\); expected \(\.\.\., 2\)"),
        (dict(input_points=[[[[[1, 2]]]]]), ValueError, r"rank 4\); expected \(points, 2\) or \(objects, points, 2\)"),
        (dict(input_points=[[[1, 2]]], input_labels=[[1, 1]]), ValueError, r"do not match: \(1,\) points vs \(2,\)"),
        (dict(input_points=[[[1, 2]]], input_labels=[[1], [1]]), ValueError, "for 1 image.* for 2"),
        (dict(input_labels=[[1]]), ValueError, "without `input_points`"),
        (dict(input_points=5), TypeError, "`input_points` must be a list"),
        (dict(input_points=[]), ValueError, "`input_points` is empty"),
        (dict(input_boxes=[[[1, 2, 3]]]), ValueError, r"`input_boxes`\[0\] has shape \(1, 3\)"),
        (dict(input_boxes=[[1, 2, 3, 4]]), ValueError, r"`input_boxes`\[0\] has shape \(4,\) \(rank 1\)"),
        (dict(input_boxes=[[[50, 10, 20, 40]]]), ValueError, "x2 < x1"),
        (dict(input_boxes=[[[0, 0, 201, 40]]]), ValueError, "box outside the 200x100"),
        (dict(input_points=[[[50, 140]]], input_labels=[[1]]), ValueError, r"outside the 200x100.*\[50, 140\]"),
        (dict(input_masks=np.zeros((1, 64, 64))), ValueError, r"`input_masks`\[0\] has shape \(64, 64\); expected \(256, 256\)"),
        (dict(input_masks=np.zeros((1, 1, 1, 256, 256))), ValueError, r"`input_masks`\[0\] has shape \(1, 1, 256, 256\)"),
        (dict(input_masks=np.zeros((2, 256, 256))), ValueError, "2 mask\\(s\\) for 1 image"),
        (dict(input_masks=np.full((1, 256, 256), NAN)), ValueError, r"`input_masks`\[0\] holds 65536 non-finite"),
    ],
)  # fmt: skip
def test_bad_prompts(processor, kwargs, error, match):
    with pytest.raises(error, match=match):
        processor(IMAGE, return_tensors="pt", **kwargs)


@pytest.mark.parametrize(
    "image, error, match",
    [
        (np.full((20, 30, 3), 200.0), ValueError, r"`images` is a float image with values in \[200, 200\]"),
        (np.full((20, 30, 3), -0.5, np.float32), ValueError, "float images must hold values in"),
        (np.full((20, 30, 3), NAN), ValueError, "`images` holds NaN or inf"),
        ([IMAGE, np.full((20, 30, 3), 2.0)], ValueError, r"`images`\[1\] is a float image"),
        (torch.full((3, 20, 30), 255.0), ValueError, "float image"),
        (np.zeros((0, 30, 3), np.uint8), ValueError, "empty spatial dimension"),
    ],
)
def test_bad_images(processor, image, error, match):
    with pytest.raises(error, match=match):
        processor(image, return_tensors="pt")


def test_float_images_in_unit_range_equal_their_uint8_twin(processor):
    """Float [0, 1] images are rescaled once (they used to be rescaled twice: an all-black input)."""
    image = np.random.RandomState(0).rand(20, 30, 3)
    as_float = processor(image, return_tensors="pt")["pixel_values"]
    as_uint8 = processor((image * 255).round().astype(np.uint8), return_tensors="pt")["pixel_values"]
    assert torch.equal(as_float, as_uint8) and as_float.std() > 0.5
    square = HfPromptsegSamImageProcessor(resize_mode="square", size={"longest_edge": 64},
                                          pad_size={"height": 64, "width": 64})  # fmt: skip
    assert torch.equal(square(image, return_tensors="pt")["pixel_values"],
                       square((image * 255).round().astype(np.uint8), return_tensors="pt")["pixel_values"])  # fmt: skip


def test_valid_prompts_and_mask_prompts_still_work(processor):
    out = processor(IMAGE, input_points=[[[10, 10], [-10, -10]]], input_labels=[[1, -10]],
                    input_masks=np.zeros((1, 1, 256, 256)), return_tensors="pt")  # fmt: skip
    assert out["input_points"].shape == (1, 1, 2, 2) and out["input_masks"].shape == (1, 1, 256, 256)
    labelled = processor(IMAGE, input_points=[[[10, 10], [20, 20], [30, 30]]], input_labels=[[1, 0, -1]])
    assert np.asarray(labelled["input_labels"]).reshape(-1).tolist() == [1, 0, -1]
