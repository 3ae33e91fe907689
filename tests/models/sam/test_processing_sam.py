import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoProcessor

from hf_promptseg.models.sam import HfPromptsegSamImageProcessor, HfPromptsegSamProcessor


@pytest.fixture()
def processor():
    return HfPromptsegSamProcessor(HfPromptsegSamImageProcessor())


def test_saved_dirs_resolve_to_our_classes(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    processor.image_processor.save_pretrained(tmp_path)
    assert type(AutoProcessor.from_pretrained(tmp_path)) is HfPromptsegSamProcessor
    assert type(AutoImageProcessor.from_pretrained(tmp_path)) is HfPromptsegSamImageProcessor


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.zeros((20, 30, 3), dtype=np.int32), TypeError, "dtype int32; expected uint8"),
        (np.zeros((20, 30, 3), dtype=bool), TypeError, "dtype bool"),
        (np.zeros((20, 30, 5), dtype=np.uint8), ValueError, "no channel axis of size 1 or 3"),
        (np.zeros((2, 20, 30, 3, 1), dtype=np.uint8), ValueError, r"has shape \(2, 20, 30, 3, 1\)"),
        (b"not an image", TypeError, "must be a PIL image, numpy array or torch tensor, got bytes"),
        ([], ValueError, "is empty"),
    ],
)
def test_bad_images_are_refused(processor, image, error, match):
    with pytest.raises(error, match=match):
        processor(image, return_tensors="pt")


def test_valid_image_kinds(processor):
    rgb = np.random.RandomState(0).randint(0, 255, (20, 30, 3), dtype=np.uint8)
    from_array = processor(rgb, return_tensors="pt")["pixel_values"]
    from_pil = processor(Image.fromarray(rgb), return_tensors="pt")["pixel_values"]
    from_chw_tensor = processor(torch.from_numpy(rgb).permute(2, 0, 1), return_tensors="pt")["pixel_values"]
    assert torch.equal(from_array, from_pil) and torch.equal(from_array, from_chw_tensor)
    gray = processor(rgb[..., 0], return_tensors="pt")["pixel_values"]
    assert gray.shape == (1, 3, 1024, 1024)


def test_prompt_validation(processor):
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    with pytest.raises(
        ValueError, match=r"1 point\(s\) outside the 200x100 \(width x height\) image, e.g. \[50, 140\]"
    ):
        processor(image, input_points=[[[50, 140]]], input_labels=[[1]])
    with pytest.raises(ValueError, match=r"do not match: \(2,\) points vs \(1,\) labels"):
        processor(image, input_points=[[[10, 10], [20, 20]]], input_labels=[[1]])
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 2\)"):
        processor(image, input_points=[[[10, 10, 3]]], input_labels=[[1]])
    with pytest.raises(ValueError, match="prompts for 2 image"):
        processor([image, image, image], input_points=[[[10, 10]], [[10, 10]]], input_labels=[[1], [1]])
    with pytest.raises(ValueError, match="x2 < x1"):
        processor(image, input_boxes=[[[50, 10, 20, 40]]])
    with pytest.raises(ValueError, match="box outside the 200x100"):
        processor(image, input_boxes=[[[0, 0, 201, 40]]])
    with pytest.raises(ValueError, match="without `input_points`"):
        processor(image, input_labels=[[1]])
    with pytest.raises(ValueError, match="ragged"):
        processor(image, input_points=[[[[10, 10], [20, 20]], [[30, 30]]]], input_labels=[[[1, 1], [1]]])
    encoded = processor(image, input_points=[[[200, 100], [-10, -10]]], input_labels=[[1, -10]], return_tensors="pt")
    assert encoded["input_points"].shape == (1, 1, 2, 2)
