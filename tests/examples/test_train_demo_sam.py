"""The embedded demo SAM's training recipe (`examples/train_demo_sam.py`): prompt sampling, warm start, resume."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from hf_promptseg.utils.prompt_geometry import bounding_box

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "train_demo_sam.py"


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("train_demo_sam", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def processor(recipe):
    from hf_promptseg.models.sam.convert_sam_checkpoint import build_sam_processor

    return build_sam_processor(recipe.demo_sam_config())


def test_prompts_lie_on_their_objects(recipe, processor):
    batch = recipe.sample_batch(np.random.default_rng(0), 3, 4, processor, central_point_fraction=1.0)
    assert batch["pixel_values"].shape == (3, 3, 128, 128)
    assert batch["masks"].shape == (3, 4, 128, 128) and batch["points"].shape == (3, 4, 1, 2)
    for masks, points in zip(batch["masks"].numpy() > 0.5, batch["points"].numpy()):
        for mask, ((x, y),) in zip(masks, points):
            distance = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
            assert distance[int(y), int(x)] >= distance.max() / 2


def test_tight_boxes_are_the_bounding_boxes_and_default_boxes_are_jittered(recipe, processor):
    tight = recipe.sample_batch(np.random.default_rng(1), 2, 3, processor, tight_box_fraction=1.0)
    jittered = recipe.sample_batch(np.random.default_rng(1), 2, 3, processor)
    expected = [[bounding_box(mask) for mask in masks] for masks in tight["masks"].numpy() > 0.5]
    torch.testing.assert_close(tight["boxes"], torch.tensor(expected, dtype=torch.float32))
    assert not torch.allclose(jittered["boxes"], tight["boxes"])


def test_outward_box_jitter_only_widens_the_bounding_box(recipe, processor):
    widened = recipe.sample_batch(np.random.default_rng(1), 4, 3, processor, outward_box_jitter=True)
    tight = torch.tensor(
        [[bounding_box(mask) for mask in masks] for masks in widened["masks"].numpy() > 0.5], dtype=torch.float32
    )
    grow = (widened["boxes"] - tight) * torch.tensor([-1, -1, 1, 1])
    assert (grow >= 0).all() and (grow > 0).float().mean() > 0.9


def test_per_object_sampling_prompts_every_object_equally_often(recipe):
    rng = np.random.default_rng(2)
    plain = np.array([len(recipe.draw_scene(rng).masks) for _ in range(1000)])
    weighted = np.array([len(recipe.draw_scene(rng, per_object_sampling=True).masks) for _ in range(1000)])
    # a scene kept with probability count / 5 shifts the mean count from E[n] to E[n²] / E[n]
    assert weighted.mean() == pytest.approx((plain**2).mean() / plain.mean(), abs=0.12)
    assert weighted.mean() > plain.mean() + 0.15


def test_split_object_weight_prompts_occlusion_split_objects_more_often(recipe, processor):
    from scipy.ndimage import label

    def split_share(weight):
        batch = recipe.sample_batch(np.random.default_rng(5), 48, 4, processor, split_object_weight=weight)
        return np.mean([label(mask)[1] > 1 for mask in batch["masks"].numpy().reshape(-1, 128, 128) > 0.5])

    assert split_share(10.0) > split_share(1.0) + 0.1


def test_runs_resumes_and_warm_starts_at_a_finer_patch(recipe, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, str(SCRIPT), "--output-dir", str(run), "--images-per-step", "1",
               "--prompts-per-image", "1", "--warmup-steps", "1", "--checkpoint-every", "1"]  # fmt: skip
    subprocess.run([*command, "--steps", "3", "--stop-after", "1"], check=True, capture_output=True)
    assert json.loads((run / "state" / "progress.json").read_text()) == {"step": 1}
    subprocess.run([*command, "--steps", "3"], check=True, capture_output=True)
    assert json.loads((run / "state" / "progress.json").read_text()) == {"step": 3}

    finer = recipe.build_model(0, patch_size=4)
    recipe.warm_start(finer, run / "model")
    coarse = recipe.SamModel.from_pretrained(run / "model")
    kernel = coarse.vision_encoder.patch_embed.projection.weight
    torch.testing.assert_close(finer.vision_encoder.patch_embed.projection.weight.sum((-2, -1)), kernel.sum((-2, -1)))
    assert finer.vision_encoder.pos_embed.shape[1:3] == (32, 32)
    torch.testing.assert_close(finer.mask_decoder.state_dict(), coarse.mask_decoder.state_dict())


def test_warm_start_into_a_deeper_encoder_begins_where_the_source_was(recipe, processor, tmp_path):
    source = recipe.build_model(3, patch_size=8)
    source.save_pretrained(tmp_path / "source")
    deeper = recipe.build_model(0, patch_size=8, vision_layers=6)
    recipe.warm_start(deeper, tmp_path / "source")
    assert deeper.config.vision_config.global_attn_indexes == [1, 3, 5]
    pixels = recipe.sample_batch(np.random.default_rng(4), 2, 1, processor)["pixel_values"]
    with torch.no_grad():
        expected = source.eval().vision_encoder(pixel_values=pixels).last_hidden_state
        torch.testing.assert_close(deeper.eval().vision_encoder(pixel_values=pixels).last_hidden_state, expected)
    assert deeper.vision_encoder.layers[5].mlp.lin1.weight.abs().sum() > 0  # new layers can still learn

    deeper.save_pretrained(tmp_path / "deeper")
    with pytest.raises(ValueError, match="`source` has weights this model lacks"):
        recipe.warm_start(recipe.build_model(0, patch_size=8), tmp_path / "deeper")


@pytest.mark.parametrize("point_candidates, trained_candidates", [("best", 1), ("every", 3)])
def test_point_candidates_chooses_which_of_the_three_point_masks_learn(
    recipe, processor, point_candidates, trained_candidates
):
    model = recipe.build_model(0, patch_size=8)
    batch = recipe.sample_batch(np.random.default_rng(6), 1, 1, processor)
    loss, _ = recipe.training_loss(model, batch, iou_loss_weight=0.0, point_candidates=point_candidates)
    loss.backward()
    hypernetworks = model.mask_decoder.output_hypernetworks_mlps
    # the box trains candidate 0; a point's candidates are 1-3 and only its mask loss reaches their hypernetworks
    learning = [hypernetworks[k].proj_out.weight.grad.abs().sum() > 0 for k in range(1, 4)]
    assert sum(learning) == trained_candidates


def test_point_candidates_rejects_unknown_modes(recipe, processor):
    batch = recipe.sample_batch(np.random.default_rng(6), 1, 1, processor)
    with pytest.raises(ValueError, match="`point_candidates` must be 'best' or 'every'"):
        recipe.training_loss(recipe.build_model(0, patch_size=8), batch, point_candidates="all")


def test_box_loss_weight_scales_only_the_box_masks_loss(recipe, processor):
    batch = recipe.sample_batch(np.random.default_rng(6), 1, 2, processor)

    def hypernetwork_gradients(box_loss_weight):
        model = recipe.build_model(0, patch_size=8)
        recipe.training_loss(model, batch, iou_loss_weight=0.0, box_loss_weight=box_loss_weight)[0].backward()
        hypernetworks = model.mask_decoder.output_hypernetworks_mlps
        # candidate 0 is the box's single mask; candidates 1-3 answer the point
        return hypernetworks[0].proj_out.weight.grad, hypernetworks[1].proj_out.weight.grad

    box_once, point_once = hypernetwork_gradients(1.0)
    box_thrice, point_thrice = hypernetwork_gradients(3.0)
    assert box_once.abs().sum() > 0
    torch.testing.assert_close(box_thrice, 3 * box_once)
    torch.testing.assert_close(point_thrice, point_once)
    with pytest.raises(ValueError, match="`box_loss_weight` must be a non-negative number, got -1.0"):
        recipe.training_loss(recipe.build_model(0, patch_size=8), batch, box_loss_weight=-1.0)


def test_training_summary_lists_the_run_and_carries_a_packaged_models_history(recipe, tmp_path):
    parser = recipe.build_parser()
    scratch = parser.parse_args(["--output-dir", "run", "--steps", "300", "--point-candidates", "every"])
    text = recipe.training_summary(scratch, parser)
    assert "--steps 300 --point-candidates every" in text and "from scratch" in text
    assert "--output-dir" not in text and "--seed" not in text

    (tmp_path / "README.md").write_text("# card\n\n## Training\n\nStage one, 12,000 steps.\n\n## Evaluation\n\nx\n")
    resumed = parser.parse_args(["--output-dir", "r", "--init-from", str(tmp_path), "--outward-box-jitter"])
    text = recipe.training_summary(resumed, parser)
    assert text.startswith("Stage one, 12,000 steps.\n\nThen, from those weights")
    assert "--outward-box-jitter" in text and "Evaluation" not in text
    assert str(tmp_path) not in text

    plain_dir = parser.parse_args(["--output-dir", "r", "--init-from", str(tmp_path / "missing")])
    assert "starting from" in recipe.training_summary(plain_dir, parser)
