"""DINOv trainer modes: PEFT LoRA (adapter-only output, round trip, exact resume) and backbone checkpointing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from hf_promptseg.commands.train import parse_train_arguments
from hf_promptseg.models.dinov import DinovForVisualPromptSegmentation
from hf_promptseg.training.dinov_trainer import (
    DinovTrainer,
    DinovTrainingArguments,
    build_dinov,
    dinov_lora_model,
)

FAST = dict(train_data="scenes:6:0:64", per_device_train_batch_size=2, num_points=64, num_denoising=8,
            num_clicks=3, num_content_prompts=2, logging_steps=1, task="both")  # fmt: skip
LORA = dict(method="lora", learning_rate=1e-2, warmup_steps=0, lora_r=4)


def _fixed_input():
    generator = torch.Generator().manual_seed(7)
    pixel_values = torch.randn(1, 3, 64, 64, generator=generator)
    masks = torch.zeros(1, 2, 64, 64)
    masks[0, 0, 5:25, 5:30] = 1
    masks[0, 1, 30:60, 20:50] = 1
    return pixel_values, masks


def _outputs(model, task):
    pixel_values, masks = _fixed_input()
    with torch.no_grad():
        out = model.eval()(pixel_values, prompt_masks=masks, task=task)
    return out.pred_masks, out.pred_boxes, out.logits if task == "generic" else out.match_scores


def _base_state(peft_model) -> dict[str, torch.Tensor]:
    """The frozen base weights inside a trained PEFT model, under the plain model's names."""
    state = {}
    for name, value in peft_model.get_base_model().state_dict().items():
        if "lora_" in name or ".modules_to_save." in name:
            continue
        state[name.replace(".base_layer", "").replace(".original_module", "")] = value
    return state


def test_lora_run_saves_an_adapter_that_loads_with_peft(tmp_path):
    trainer = DinovTrainer(DinovTrainingArguments(output_dir=str(tmp_path), max_steps=2, **FAST, **LORA))
    result = trainer.train()
    final = tmp_path / "final"
    assert result["final"] == str(final)
    assert {"adapter_model.safetensors", "adapter_config.json", "preprocessor_config.json"} <= {
        p.name for p in final.iterdir()
    }
    assert not (final / "model.safetensors").exists(), "LoRA mode saves the adapter only"

    saved = load_file(final / "adapter_model.safetensors")
    to_save = ("mask_embed.", "iou_head.", "bbox_head.")
    assert all("lora_" in key or any(part in key for part in to_save) for key in saved), sorted(saved)
    assert any("decoder.layers.0.fc1.lora_B" in key for key in saved)
    assert any("prompt_encoder.layers.0.cross_attn.lora_B" in key for key in saved), "attention q/k/v adapted"
    assert sum("lora_" not in key for key in saved) == 18  # 3 heads × 3 layers × (weight, bias)
    config = json.loads((final / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4
    assert all(".backbone." not in name for name in config["target_modules"] + config["target_parameters"])

    fresh = build_dinov("random:tiny")
    base_after = _base_state(trainer.peft_model)
    assert base_after.keys() == fresh.state_dict().keys()
    assert all(torch.equal(value, fresh.state_dict()[name]) for name, value in base_after.items()), "base moved"

    loaded = PeftModel.from_pretrained(build_dinov("random:tiny"), final)
    standalone = PeftModel.from_pretrained(DinovForVisualPromptSegmentation.from_pretrained(final / "base"), final)
    for task in ("referring", "generic"):
        trained = _outputs(trainer.peft_model, task)
        for reloaded in (_outputs(loaded, task), _outputs(standalone, task)):
            assert all(torch.equal(a, b) for a, b in zip(trained, reloaded)), task
        untouched = _outputs(build_dinov("random:tiny"), task)
        assert not torch.equal(trained[0], untouched[0]), "the adapter changes the masks"


def test_lora_resume_equals_an_uninterrupted_run(tmp_path):
    DinovTrainer(DinovTrainingArguments(output_dir=str(tmp_path / "whole"), max_steps=3, **FAST, **LORA)).train()
    split = dict(output_dir=str(tmp_path / "split"), max_steps=3, **FAST, **LORA)
    assert DinovTrainer(DinovTrainingArguments(stop_after_steps=1, **split)).train()["stopped_at_step"] == 1
    DinovTrainer(DinovTrainingArguments(**split)).train()
    a = load_file(tmp_path / "whole" / "final" / "adapter_model.safetensors")
    b = load_file(tmp_path / "split" / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _one_step(checkpointing: bool, tmp_path):
    trainer = DinovTrainer(
        DinovTrainingArguments(
            output_dir=str(tmp_path / str(checkpointing)), activation_checkpointing=checkpointing, **FAST
        )
    )
    stage = trainer.unwrapped_model().model.backbone.swin.encoder.layers[0]
    calls = []
    stage.blocks[0].layernorm_before.register_forward_hook(lambda *_: calls.append(1))
    trainer.model.train()
    loss, _ = trainer.compute_loss(next(iter(trainer.train_loader)), 0)
    forward_calls = len(calls)
    trainer.accelerator.backward(loss)
    grads = {n: p.grad.clone() for n, p in trainer.unwrapped_model().named_parameters() if p.grad is not None}
    return loss.detach(), grads, (forward_calls, len(calls)), stage


def test_backbone_checkpointing_recomputes_and_gives_the_same_step(tmp_path):
    loss, grads, calls, _ = _one_step(False, tmp_path)
    loss_ckpt, grads_ckpt, calls_ckpt, stage = _one_step(True, tmp_path)
    assert calls == (1, 1)
    assert calls_ckpt == (1, 2), "a checkpointed Swin block runs again (once) in the backward pass"
    assert stage.blocks[0].gradient_checkpointing and not stage.gradient_checkpointing, "no nested recompute"
    torch.testing.assert_close(loss_ckpt, loss, rtol=0, atol=1e-6)
    assert grads.keys() == grads_ckpt.keys() and any(".backbone." in f".{name}" for name in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=0, atol=1e-6, msg=name)


def test_lora_with_checkpointing_trains_the_adapter_only(tmp_path):
    """PEFT wraps the model before checkpointing is enabled (PEFT's input-grad hook fails on Swin's embeddings)."""
    args = DinovTrainingArguments(output_dir=str(tmp_path), activation_checkpointing=True, **FAST, **LORA)
    trainer = DinovTrainer(args)
    before = {n: p.detach().clone() for n, p in trainer.unwrapped_model().named_parameters()}
    trainer.training_step(next(iter(trainer.train_loader)), 0)
    changed = {n for n, p in trainer.unwrapped_model().named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n or ".modules_to_save." in n for n in changed), sorted(changed)
    assert any("lora_B" in n for n in changed), "the adapters moved"


@pytest.mark.slow
def test_lora_two_processes_synchronise_adapter_gradients(tmp_path):
    """Two gloo processes in LoRA mode end with identical adapters. slow: 12 s alone, more on a loaded machine (the
    full-mode twin in test_dinov_trainer.py already runs in the fast suite)."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(Path(__file__).with_name("dinov_two_process_worker.py")), str(tmp_path), "lora"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    weights = [load_file(tmp_path / f"weights_rank{rank}.safetensors") for rank in (0, 1)]
    lora = [name for name in weights[0] if "lora_B" in name]
    assert lora and any(weights[0][name].abs().max() > 0 for name in lora), "the adapters trained"
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name


def test_modes_parse_from_flags():
    (args,) = parse_train_arguments(["--family", "dinov", "--train_data", "scenes:4", "--method", "lora",
                                     "--lora_r", "2", "--activation_checkpointing", "true"])  # fmt: skip
    assert (args.method, args.lora_r, args.activation_checkpointing) == ("lora", 2, True)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(method="adapter"), r"`method` must be one of \('full', 'lora'\), got 'adapter'"),
        (dict(method="lora", freeze_backbone=True), "`freeze_backbone` conflicts with `method` 'lora'"),
        (dict(method="lora", lora_r=0), "`lora_r` is 0"),
        (dict(method="lora", lora_target_modules=" , "), "`lora_target_modules` must name at least one module"),
    ],
)
def test_bad_mode_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        DinovTrainingArguments(**arguments)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(lora_target_modules="fc1,query_proj"), r"`lora_target_modules`: no module named 'query_proj'"),
        (dict(lora_target_modules="out_proj"), r"`lora_target_modules`: .*out_proj'\] are never called"),
        (dict(lora_target_modules="layer_norm"), "`lora_target_modules`: LoRA takes linear and attention layers"),
        (dict(lora_modules_to_save="mask_embed,heads"), r"`lora_modules_to_save`: .* is named \['heads'\]"),
    ],
)
def test_bad_lora_modules_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        dinov_lora_model(build_dinov("random:tiny"), DinovTrainingArguments(method="lora", **arguments))
