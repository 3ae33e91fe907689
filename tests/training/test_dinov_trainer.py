import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_promptseg.cli import main
from hf_promptseg.commands.train import parse_train_arguments
from hf_promptseg.data.instances import write_coco_instances
from hf_promptseg.data.scenes import make_scenes
from hf_promptseg.models.dinov import DinovForVisualPromptSegmentation
from hf_promptseg.training.dinov_trainer import (
    DinovTrainer,
    DinovTrainingArguments,
    build_dinov,
    parameter_groups,
    warmup_step_schedule,
)

REPO = Path(__file__).resolve().parents[2]
FAST = dict(train_data="scenes:6:0:64", per_device_train_batch_size=2, num_points=64, num_denoising=8,
            num_clicks=3, num_content_prompts=2, logging_steps=1)  # fmt: skip


def test_parameter_groups_follow_the_reference():
    model = build_dinov("random:tiny")
    groups = {g["name"]: g for g in parameter_groups(model, 1e-4, 0.05, 0.1)}
    assert set(groups) == {"backbone", "backbone_no_decay", "heads", "heads_no_decay"}
    assert groups["backbone"]["lr"] == pytest.approx(1e-5) and groups["heads"]["lr"] == 1e-4
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    assert id(model.model.decoder.layer_norm.weight) in ids["heads_no_decay"]
    assert id(model.model.query_content.weight) in ids["heads_no_decay"]
    assert id(model.model.pixel_decoder.level_embed) in ids["heads_no_decay"]
    assert id(model.model.decoder.layers[0].fc1.weight) in ids["heads"]
    assert groups["heads_no_decay"]["weight_decay"] == 0 and groups["heads"]["weight_decay"] == 0.05
    assert sum(len(g) for g in ids.values()) == sum(1 for _ in model.parameters())


def test_warmup_then_steps():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = warmup_step_schedule(optimizer, warmup_steps=4, milestones=[6, 8], gamma=0.1)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert rates[5] == 1.0 and rates[6] == pytest.approx(0.1) and rates[9] == pytest.approx(0.01)


def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole = DinovTrainer(DinovTrainingArguments(output_dir=str(tmp_path / "whole"), task="both", max_steps=4, **FAST))
    whole.train()
    first = DinovTrainingArguments(output_dir=str(tmp_path / "split"), task="both", max_steps=4, stop_after_steps=2,
                                   **FAST)  # fmt: skip
    assert DinovTrainer(first).train()["stopped_at_step"] == 2
    rest = DinovTrainingArguments(output_dir=str(tmp_path / "split"), task="both", max_steps=4, **FAST)
    resumed = DinovTrainer(rest).train()
    assert resumed["steps"] == 4
    a = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    b = load_file(tmp_path / "split" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    initial = build_dinov("random:tiny").state_dict()
    assert any(not torch.equal(a[k], initial[k]) for k in a if k in initial), "training changed the weights"
    history = json.loads((tmp_path / "whole" / "metrics.json").read_text())["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4] and all("referring" in h and "generic" in h for h in history)


def test_frozen_backbone_stays_put(tmp_path):
    args = DinovTrainingArguments(output_dir=str(tmp_path), freeze_backbone=True, max_steps=1, **FAST)
    DinovTrainer(args).train()
    trained = DinovForVisualPromptSegmentation.from_pretrained(tmp_path / "final").state_dict()
    initial = build_dinov("random:tiny").state_dict()
    backbone = [k for k in trained if ".backbone." in f".{k}"]
    assert backbone and all(torch.equal(trained[k], initial[k]) for k in backbone)
    assert not torch.equal(trained["model.query_content.weight"], initial["model.query_content.weight"])


def test_tiny_coco_file_trains_through_the_cli(tmp_path, capsys):
    path = write_coco_instances(make_scenes(4, seed=3, height=64, width=64), tmp_path / "coco")
    config = tmp_path / "dinov.yaml"
    config.write_text(f"train_data: {path}\nimage_dir: {tmp_path / 'coco' / 'images'}\nmax_steps: 2\n"
                      "per_device_train_batch_size: 2\nnum_points: 64\nnum_denoising: 8\n")  # fmt: skip
    assert main(["train", "--family", "dinov", "--config", str(config), "--output_dir", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "final" / "config.json").is_file()
    assert "model:" in capsys.readouterr().out
    config.write_text("train_data: scenes:4\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown arguments \['learning_rat'\]"):
        parse_train_arguments(["--config", str(config)], (DinovTrainingArguments,))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`task`"):
        DinovTrainingArguments(task="panoptic")
    with pytest.raises(ValueError, match="`image_size` must be a multiple of 32"):
        DinovTrainingArguments(image_size=70)
    with pytest.raises(ValueError, match="`lr_milestones`"):
        DinovTrainingArguments(lr_milestones="half")
    with pytest.raises(ValueError, match="unknown preset"):
        build_dinov("random:huge")


@pytest.mark.parametrize(
    "config", sorted((REPO / "examples" / "configs" / "dinov").glob("*.yaml")), ids=lambda p: p.stem
)
def test_example_configs_parse(config):
    (args,) = parse_train_arguments(["--config", str(config)], (DinovTrainingArguments,))
    assert args.train_data and args.max_steps > 0


def test_two_processes_synchronise_gradients(tmp_path):
    """Two gloo processes under torchrun read different images and end with identical weights; validation runs on
    the main process between steps and both ranks agree on its results."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(Path(__file__).with_name("dinov_two_process_worker.py")), str(tmp_path), "full", "validate"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [report["processes"] for report in reports] == [2, 2]
    assert reports[0]["validation"] == reports[1]["validation"] and reports[0]["validation"]["best_step"] in (1, 2)
    assert "referring_miou" in reports[0]["validation"]["final_validation"] and (tmp_path / "best").is_dir()
    assert reports[0]["first_batch_sum"] != reports[1]["first_batch_sum"], "each rank reads its own shard"
    weights = [load_file(tmp_path / f"weights_rank{rank}.safetensors") for rank in (0, 1)]
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name
    initial = dict(build_dinov("random:tiny").named_parameters())
    assert any(not torch.equal(initial[name], value) for name, value in weights[0].items())


def test_family_flag_picks_the_argument_classes():
    (args,) = parse_train_arguments(["--family", "dinov", "--train_data", "scenes:4", "--max_steps", "3"])
    assert isinstance(args, DinovTrainingArguments) and args.max_steps == 3
    assert len(parse_train_arguments(["--train_data", "synthetic:4"])) == 3


def test_bf16_autocast_step_is_finite(tmp_path):
    args = DinovTrainingArguments(output_dir=str(tmp_path), mixed_precision="bf16", task="both", max_steps=1, **FAST)
    trainer = DinovTrainer(args)
    with trainer.accelerator.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result["history"][-1]["loss"]))
