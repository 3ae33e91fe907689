import numpy as np
import pytest
import torch
from transformers import pipeline

import hf_promptseg  # noqa: F401
from hf_promptseg.data.scenes import make_scenes
from hf_promptseg.models.dinov import DinovForVisualPromptSegmentation, DinovImageProcessor, DinovPromptBank
from hf_promptseg.pipelines.visual_prompt_segmentation import VisualPromptSegmentationPipeline
from tests.models.dinov.test_modeling_dinov import tiny_config


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    torch.manual_seed(0)
    model = DinovForVisualPromptSegmentation(tiny_config()).eval()
    with torch.no_grad():
        model.iou_head.layers[2].bias.add_(2.0)  # random IoU predictions above the 0.5 filter
    out = tmp_path_factory.mktemp("dinov")
    model.save_pretrained(out)
    DinovImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(out)
    return pipeline("visual-prompt-segmentation", model=str(out))


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(3, seed=0, height=60, width=80)


def test_referring_gives_one_mask_per_prompt_of_every_kind(segmenter, scenes):
    assert isinstance(segmenter, VisualPromptSegmentationPipeline)
    prompts = {"masks": [scenes[0].masks[0]], "boxes": [[5, 5, 30, 30]], "points": [[40, 30]],
               "scribbles": [[[5, 50], [60, 40]]]}  # fmt: skip
    result = segmenter(scenes[1].image, reference_images=scenes[0].image, prompts=prompts, min_mask_area=0)
    assert [r["prompt"] for r in result] == [0, 1, 2, 3]
    assert all(r["mask"].shape == (60, 80) and r["mask"].dtype == bool and 0 < r["score"] <= 1 for r in result)
    same_image = segmenter(scenes[1].image, prompts={"points": [[40, 30]]}, min_mask_area=0)
    assert len(same_image) == 1
    with pytest.raises(ValueError, match="min_mask_area"):
        segmenter(scenes[1].image, prompts={"points": [[40, 30]]}, min_mask_area=10**6)


def test_generic_from_prompts_and_from_a_bank(segmenter, scenes):
    instances = segmenter(scenes[1].image, prompts={"boxes": [[5, 5, 30, 30], [40, 20, 70, 50]]}, task="generic",
                          labels=["left", "right"])  # fmt: skip
    assert instances and {r["label"] for r in instances} <= {"left", "right"}
    bank = DinovPromptBank({"x": torch.randn(3, 32), "y": torch.randn(2, 32)})
    semantic = segmenter(scenes[2].image, prompt_bank=bank, task="generic", subtask="semantic")
    assert semantic["segmentation"].shape == (60, 80) and semantic["labels"] == ["x", "y"]
    assert set(np.unique(semantic["segmentation"])) <= {0, 1}
    panoptic = segmenter(scenes[2].image, prompt_bank=bank, task="generic", subtask="panoptic")
    assert panoptic["segmentation"].shape == (60, 80)
    assert all(s["label"] in ("x", "y") for s in panoptic["segments_info"])
    again = segmenter(scenes[2].image, prompt_bank=bank, task="generic", subtask="semantic")
    assert np.array_equal(again["segmentation"], semantic["segmentation"])  # seeded bank sampling


def test_bad_arguments(segmenter, scenes):
    with pytest.raises(ValueError, match="task"):
        segmenter(scenes[0].image, prompts={"points": [[1, 1]]}, task="panoptic")
    with pytest.raises(ValueError, match="prompt_bank"):
        segmenter(scenes[0].image, prompt_bank=DinovPromptBank({"x": torch.randn(1, 32)}), task="referring")
    with pytest.raises(ValueError, match="pass `prompts`"):
        segmenter(scenes[0].image)
