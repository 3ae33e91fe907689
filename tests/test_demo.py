import json

import numpy as np
import pytest

from hf_promptseg.cli import main as cli_main
from hf_promptseg.demo import bounding_box, interior_point, mask_iou, overlay, run_demo
from tests.testing_utils import tiny_sam_dir


@pytest.fixture(scope="module")
def random_sam_dir(tmp_path_factory):
    return tiny_sam_dir(tmp_path_factory.mktemp("demo") / "sam")


def test_prompt_helpers():
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:26] = True
    x, y = interior_point(mask)
    assert mask[int(y), int(x)] and 14 <= x <= 22 and 8 <= y <= 12
    assert bounding_box(mask) == (10.0, 5.0, 26.0, 15.0)
    assert mask_iou(mask, mask) == 1.0 and mask_iou(mask, ~mask) == 0.0
    picture = overlay(np.zeros((20, 30, 3), np.uint8), [mask], points=[(x, y)], boxes=[bounding_box(mask)])
    assert picture.size == (30, 20) and np.asarray(picture)[10, 12].any()


def test_demo_writes_overlays_and_summary_with_any_sam_dir(random_sam_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli_main(
        ["demo", "--model", str(random_sam_dir), "--out", str(out), "--num-eval-scenes", "2", "--points-per-side", "4"]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["mean_iou_point"] <= 1.0 and 0.0 <= summary["mean_iou_box"] <= 1.0
    assert summary["num_objects"] >= 2 and summary["seed"] == 7
    for name in ("scene", "point_prompts", "box_prompts", "mask_generation"):
        assert (out / f"{name}.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "mean IoU" in printed and str(out / "summary.json") in printed


def test_seed_draws_a_different_held_out_set(random_sam_dir, tmp_path):
    first = run_demo(random_sam_dir, tmp_path / "a", seed=1, num_eval_scenes=2, points_per_side=2)
    second = run_demo(random_sam_dir, tmp_path / "b", seed=2, num_eval_scenes=2, points_per_side=2)
    assert (first["num_objects"], first["mean_iou_box"]) != (second["num_objects"], second["mean_iou_box"])


def test_bad_arguments(random_sam_dir, tmp_path):
    with pytest.raises(ValueError, match="`num_eval_scenes` must be positive"):
        run_demo(random_sam_dir, tmp_path, num_eval_scenes=0)
    with pytest.raises(ValueError, match="`points_per_side` must be positive"):
        run_demo(random_sam_dir, tmp_path, points_per_side=0)


def test_shipped_demo_sam_reproduces_its_card_and_holds_its_level():
    """The embedded weights, re-evaluated on the card's held-out set (256 scenes, seed 7, 128²)."""
    from huggingface_hub import ModelCard

    from hf_promptseg.data.scenes import make_scenes
    from hf_promptseg.demo import (
        CARD_EVAL_SCENES,
        DEFAULT_EVAL_SEED,
        PromptedSegmenter,
        default_model_path,
        evaluate_prompts,
    )

    card = ModelCard.load(f"{default_model_path()}/README.md")
    recorded = {m.metric_type: m.metric_value for m in card.data.eval_results}
    metrics = evaluate_prompts(
        PromptedSegmenter(default_model_path()), make_scenes(CARD_EVAL_SCENES, DEFAULT_EVAL_SEED, 128, 128)
    )
    assert metrics["mean_iou_point"] == pytest.approx(recorded["mean_iou_point"], abs=1e-6)
    assert metrics["mean_iou_box"] == pytest.approx(recorded["mean_iou_box"], abs=1e-6)
    assert metrics["mean_iou_point"] >= 0.80 and metrics["mean_iou_box"] >= 0.83


def test_shipped_demo_sam_meets_the_iou_targets():
    from huggingface_hub import ModelCard

    from hf_promptseg.demo import default_model_path

    recorded = {
        m.metric_type: m.metric_value for m in ModelCard.load(f"{default_model_path()}/README.md").data.eval_results
    }
    assert recorded["mean_iou_point"] >= 0.80 and recorded["mean_iou_box"] >= 0.85
