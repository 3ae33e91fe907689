"""The embedded demo DINOv: its card is reproduced by its weights, it learned, and the demo shows it."""

import json
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard

from hf_promptseg.assets import demo_dinov_path
from hf_promptseg.models.dinov.demo_dinov import card_metrics, referring_prompts, referring_scenes, run_dinov_demo


@pytest.fixture(scope="module")
def recomputed():
    return card_metrics(demo_dinov_path())


def _card_results() -> dict[str, float]:
    card = ModelCard.load(Path(demo_dinov_path()) / "README.md")
    return {result.metric_type: result.metric_value for result in card.data.eval_results}


def test_embedded_dinov_reproduces_its_card(recomputed):
    recorded = _card_results()
    assert {"referring_miou", "map", "semantic_miou"} <= set(recorded)
    for name, value in recorded.items():
        assert recomputed[name] == pytest.approx(value, abs=1e-4), name


def test_embedded_dinov_learned_far_above_untrained_and_baselines(recomputed):
    untrained = json.loads((Path(demo_dinov_path()) / "card_metrics.json").read_text())["untrained"]
    assert recomputed["referring_miou"] > 2 * max(untrained["referring_miou"], recomputed["paste_miou"])
    assert recomputed["map_50"] > 5 * max(untrained["map_50"], recomputed["paste_map_50"], 0.01)
    assert recomputed["semantic_miou"] > 2 * max(untrained["semantic_miou"], recomputed["paste_semantic_miou"])
    for kind in ("mask", "scribble", "box", "point"):
        assert recomputed[f"referring_miou_{kind}"] > recomputed[f"paste_miou_{kind}"], kind


def test_referring_scenes_hold_the_same_kinds_elsewhere_with_whole_objects():
    reference, target = referring_scenes()
    assert sorted(reference.shapes) == sorted(target.shapes) and len(reference.shapes) == 4
    assert all(a != b for a, b in zip(reference.shapes, target.shapes))  # every kind moved
    assert min(int(m.sum()) for m in reference.masks + target.masks) >= 0.03 * 64 * 64
    prompts = referring_prompts(reference)
    x, y = prompts["points"][0]
    assert reference.masks[3][int(y), int(x)]
    assert all(reference.masks[1][int(py), int(px)] for px, py in prompts["scribbles"][0])


def test_dinov_demo_writes_both_pictures_and_finds_objects(tmp_path):
    summary = run_dinov_demo(tmp_path)
    for path in summary["dinov_outputs"].values():
        assert Path(path).is_file() and Path(path).stat().st_size > 1000
    assert set(summary["referring_iou"]) == {"mask", "scribble", "box", "point"}
    assert 0.0 <= summary["referring_miou"] <= 1.0
    assert summary["generic_found"] >= 1 and summary["generic_detections"] >= 1
    assert np.isfinite(summary["generic_mean_best_iou"])


def test_dinov_demo_refuses_an_empty_bank(tmp_path):
    with pytest.raises(ValueError, match="num_bank_scenes"):
        run_dinov_demo(tmp_path, num_bank_scenes=0)
