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
    from hf_promptseg.demo import bounding_box

    tight = recipe.sample_batch(np.random.default_rng(1), 2, 3, processor, tight_box_fraction=1.0)
    jittered = recipe.sample_batch(np.random.default_rng(1), 2, 3, processor)
    expected = [[bounding_box(mask) for mask in masks] for masks in tight["masks"].numpy() > 0.5]
    torch.testing.assert_close(tight["boxes"], torch.tensor(expected, dtype=torch.float32))
    assert not torch.allclose(jittered["boxes"], tight["boxes"])


def test_per_object_sampling_prompts_every_object_equally_often(recipe):
    rng = np.random.default_rng(2)
    plain = np.array([len(recipe.draw_scene(rng).masks) for _ in range(1000)])
    weighted = np.array([len(recipe.draw_scene(rng, per_object_sampling=True).masks) for _ in range(1000)])
    # a scene kept with probability count / 5 shifts the mean count from E[n] to E[n²] / E[n]
    assert weighted.mean() == pytest.approx((plain**2).mean() / plain.mean(), abs=0.12)
    assert weighted.mean() > plain.mean() + 0.15


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
