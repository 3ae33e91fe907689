"""DINOv checkpoints are crash-consistent: real SIGKILLs mid-save, then a resume ending bit-identical; partial refused."""

import signal
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_promptseg.training.checkpointing import IncompleteCheckpointError
from hf_promptseg.training.dinov_trainer import DinovTrainer, DinovTrainingArguments
from tests.testing_utils import run_train_cli

FAST = dict(train_data="scenes:6:0:64", per_device_train_batch_size=2, num_points=64, num_denoising=8,
            num_clicks=3, num_content_prompts=2, logging_steps=1, task="both", max_steps=4,
            checkpoint_every_steps=1)  # fmt: skip
TRAIN = ["train", "--family", "dinov", "--base_model", "random:tiny"]
for _name, _value in FAST.items():
    TRAIN += [f"--{_name}", str(_value)]


def _train(run: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    return run_train_cli(TRAIN, run, kill_at)


def test_sigkill_mid_save_then_resume_is_bit_identical(tmp_path):
    """A kill inside accelerate's save_state, one before the manifest, one between the two renames; each rerun
    resumes from what the previous kill left. 5 subprocess runs, ~25 s on a quiet machine."""
    straight = _train(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    run = tmp_path / "killed"
    for kill_at in ["accelerate_save_state:2", "before_manifest:3", "between_renames:4"]:
        result = _train(run, kill_at)
        assert result.returncode == -signal.SIGKILL, (kill_at, result.returncode, result.stderr[-3000:])
        if kill_at == "before_manifest:3":
            assert (run / ".checkpoint.step-00000003.tmp").is_dir(), "the killed save left its temporary directory"
            assert not (run / "checkpoint" / ".checkpoint.step-00000003.tmp").exists()
    assert (run / ".checkpoint.old").is_dir() and not (run / "checkpoint").exists(), "killed between the renames"
    final = _train(run)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "resuming from the complete checkpoint of step 4" in final.stderr
    for name in ("final/model.safetensors", "checkpoint/model.safetensors"):
        want, got = load_file(tmp_path / "straight" / name), load_file(run / name)
        assert want.keys() == got.keys(), name
        for key, value in want.items():
            assert torch.equal(value, got[key]), f"{name}: {key}"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint", "final", "metrics.json"]
    assert not any(p.name.endswith((".tmp", ".old")) for p in run.rglob("*"))


def test_partial_or_mixed_checkpoint_is_refused_naming_the_file(tmp_path):
    args = dict(output_dir=str(tmp_path), **{**FAST, "max_steps": 1})
    DinovTrainer(DinovTrainingArguments(**args)).train()
    checkpoint = tmp_path / "checkpoint"
    (checkpoint / "optimizer.bin").unlink()
    with pytest.raises(IncompleteCheckpointError, match="optimizer.bin is missing"):
        DinovTrainer(DinovTrainingArguments(**args)).train()
    (checkpoint / "manifest.json").write_text('{"format": 1, "files"')
    with pytest.raises(IncompleteCheckpointError, match="unreadable checkpoint manifest") as info:
        DinovTrainer(DinovTrainingArguments(**args)).train()
    assert info.value.path == checkpoint / "manifest.json"
