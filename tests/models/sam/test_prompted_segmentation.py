"""The embedded demo SAM through `PromptedSegmenter`: it reproduces its card and meets issue 6's IoU targets."""

import numpy as np
import pytest
from huggingface_hub import ModelCard

from hf_promptseg.assets import DEMO_SAM_CARD_SCENES, DEMO_SAM_CARD_SEED, demo_sam_path
from hf_promptseg.data.scenes import make_scene, make_scenes
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter, evaluate_prompted_segmentation


def test_exactly_one_prompt_kind_is_required():
    segmenter = PromptedSegmenter(demo_sam_path())
    image = make_scene(0, 64, 64).image
    with pytest.raises(ValueError, match="exactly one of `points`"):
        segmenter.segment(image)
    with pytest.raises(ValueError, match="exactly one of `points`"):
        segmenter.segment(image, points=[(5, 5)], boxes=[(0, 0, 9, 9)])
    masks, scores = segmenter.segment(image, points=[(5, 5), (30, 30)])
    assert masks.shape == (2, 64, 64) and masks.dtype == np.bool_ and scores.shape == (2,)


def test_shipped_demo_sam_reproduces_its_card_and_holds_its_level():
    """The embedded weights, re-evaluated on the card's held-out set (256 scenes, seed 7, 128²)."""
    card = ModelCard.load(f"{demo_sam_path()}/README.md")
    recorded = {m.metric_type: m.metric_value for m in card.data.eval_results}
    metrics = evaluate_prompted_segmentation(
        PromptedSegmenter(demo_sam_path()), make_scenes(DEMO_SAM_CARD_SCENES, DEMO_SAM_CARD_SEED, 128, 128)
    )
    assert metrics["mean_iou_point"] == pytest.approx(recorded["mean_iou_point"], abs=1e-6)
    assert metrics["mean_iou_box"] == pytest.approx(recorded["mean_iou_box"], abs=1e-6)
    assert metrics["mean_iou_point"] >= 0.80 and metrics["mean_iou_box"] >= 0.83


def test_shipped_demo_sam_meets_the_iou_targets():
    recorded = {
        m.metric_type: m.metric_value for m in ModelCard.load(f"{demo_sam_path()}/README.md").data.eval_results
    }
    assert recorded["mean_iou_point"] >= 0.80 and recorded["mean_iou_box"] >= 0.85
