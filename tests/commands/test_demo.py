import json

import pytest

from hf_promptseg.cli import main as cli_main
from hf_promptseg.commands.demo import run_demo
from tests.testing_utils import tiny_sam_dir


@pytest.fixture(scope="module")
def random_sam_dir(tmp_path_factory):
    return tiny_sam_dir(tmp_path_factory.mktemp("demo") / "sam")


def test_demo_writes_overlays_and_summary_with_any_sam_dir(random_sam_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli_main(
        ["demo", "--model", str(random_sam_dir), "--out", str(out), "--num-eval-scenes", "2", "--points-per-side", "4"]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["mean_iou_point"] <= 1.0 and 0.0 <= summary["mean_iou_box"] <= 1.0
    assert summary["num_objects"] >= 2 and summary["seed"] == 7
    for name in ("scene", "point_prompts", "box_prompts", "mask_generation", "dinov_referring", "dinov_generic"):
        assert (out / f"{name}.png").stat().st_size > 0
    assert set(summary["dinov"]["referring_iou"]) == {"mask", "scribble", "box", "point"}
    printed = capsys.readouterr().out
    assert "mean IoU" in printed and "DINOv: referring IoU" in printed and str(out / "summary.json") in printed


def test_no_dinov_skips_its_part(random_sam_dir, tmp_path):
    summary = run_demo(random_sam_dir, tmp_path, num_eval_scenes=1, points_per_side=2, with_dinov=False)
    assert "dinov" not in summary and not (tmp_path / "dinov_referring.png").exists()


def test_seed_draws_a_different_held_out_set(random_sam_dir, tmp_path):
    first = run_demo(random_sam_dir, tmp_path / "a", seed=1, num_eval_scenes=2, points_per_side=2, with_dinov=False)
    second = run_demo(random_sam_dir, tmp_path / "b", seed=2, num_eval_scenes=2, points_per_side=2, with_dinov=False)
    assert (first["num_objects"], first["mean_iou_box"]) != (second["num_objects"], second["mean_iou_box"])


def test_bad_arguments(random_sam_dir, tmp_path):
    with pytest.raises(ValueError, match="`num_eval_scenes` must be positive"):
        run_demo(random_sam_dir, tmp_path, num_eval_scenes=0)
    with pytest.raises(ValueError, match="`points_per_side` must be positive"):
        run_demo(random_sam_dir, tmp_path, points_per_side=0)
