import numpy as np
import pytest
import torch
from transformers import AutoProcessor

import hf_promptseg  # noqa: F401
from hf_promptseg.models.dinov import DinovForVisualPromptSegmentation, DinovImageProcessor, DinovProcessor
from hf_promptseg.models.dinov.processing_dinov import rasterize_prompts
from tests.models.dinov.test_modeling_dinov import tiny_config


def test_each_prompt_kind_becomes_the_documented_mask():
    masks = rasterize_prompts(
        {
            "masks": [np.pad(np.ones((10, 10)), ((5, 25), (5, 35)))],
            "boxes": [[10, 20, 30, 25]],
            "points": [[40, 20]],
            "scribbles": [[[0, 0], [49, 39]]],
        },
        height=40,
        width=50,
        point_radius=3,
        scribble_width=3,
    )
    assert masks.shape == (4, 40, 50) and masks.dtype == bool
    assert masks[0].sum() == 100 and masks[0, 5:15, 5:15].all()
    assert masks[1, 20:26, 10:31].all() and masks[1].sum() == 6 * 21  # filled rectangle, inclusive corners
    assert masks[2, 20, 40] and masks[2, 20, 37] and not masks[2, 20, 35] and 20 <= masks[2].sum() <= 40  # disk r=3
    assert masks[3, 0, 0] and masks[3, 39, 49] and masks[3, 20, 25] and masks[3].sum() < 400  # a thin stroke


@pytest.mark.parametrize(
    "prompts, match",
    [
        ({"masks": [np.ones((10, 10))]}, r"shape \(N, 40, 50\)"),
        ({"boxes": [[30, 10, 20, 20]]}, "x1 >= x0"),
        ({"points": [[1, 2, 3]]}, r"\[x, y\]"),
        ({"points": [[500, 500]]}, "covers no pixel"),
        ({"lines": []}, "unknown prompt kind"),
        ({"scribbles": [[[1, 2, 3]]]}, "strokes"),
    ],
)
def test_bad_prompts_are_refused(prompts, match):
    with pytest.raises(ValueError, match=match):
        rasterize_prompts(prompts, 40, 50)
    with pytest.raises(TypeError, match="non-empty dict"):
        rasterize_prompts({}, 40, 50)


def test_processor_prompts_on_reference_or_target_and_round_trip(tmp_path):
    processor = DinovProcessor(DinovImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}), point_radius=4)
    target, reference = np.zeros((60, 80, 3), np.uint8), np.zeros((40, 40, 3), np.uint8)
    inputs = processor(target, reference_images=reference, prompts={"boxes": [[5, 5, 20, 20]], "points": [[30, 30]]})
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 64, 96)  # 60x80 -> 64x85, padded to 96
    assert tuple(inputs["reference_pixel_values"].shape) == (1, 3, 64, 64)
    assert tuple(inputs["prompt_masks"].shape) == (1, 2, 64, 64)
    on_target = processor(target, prompts={"scribbles": [[[0, 0], [70, 50]]]})
    assert "reference_pixel_values" not in on_target and tuple(on_target["prompt_masks"].shape) == (1, 1, 64, 96)
    with pytest.raises(ValueError, match="one prompt dict per prompted image"):
        processor(target, reference_images=[reference, reference], prompts={"points": [[1, 1]]})
    with pytest.raises(ValueError, match="prompts"):
        processor(target)

    torch.manual_seed(0)
    DinovForVisualPromptSegmentation(tiny_config()).save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, DinovProcessor) and loaded.point_radius == 4
    assert loaded.image_processor.size == {"shortest_edge": 64, "longest_edge": 96}
