import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_promptseg.training.checkpointing import (
    FAULT_INJECTION_ENV,
    IncompleteCheckpointError,
    commit_checkpoint,
    recover_checkpoint,
    temporary_checkpoint_dir,
    verify_checkpoint,
    write_manifest,
)
from hf_promptseg.utils.files import CorruptFileError, atomic_output_dir, recover_output_dir
from tests.testing_utils import run_train_cli

REPO = Path(__file__).resolve().parents[2]
TRAIN = [
    "train", "--base_model", "random:tiny", "--adapter_scale_factor", "8", "--train_data", "synthetic:10:0:128",
    "--validation_data", "synthetic:3:1:128", "--num_train_epochs", "2", "--per_device_train_batch_size", "2",
    "--per_device_eval_batch_size", "4", "--gradient_accumulation_steps", "2", "--learning_rate", "1e-3",
    "--checkpoint_every_steps", "1",
]  # fmt: skip


def _save(run: Path, step: int, payload: str) -> Path:
    tmp = temporary_checkpoint_dir(run / "checkpoint", step)
    tmp.mkdir(parents=True)
    (tmp / "progress.json").write_text(json.dumps({"step": step, "payload": payload}))
    write_manifest(tmp, step)
    return tmp


def test_manifest_detects_files_from_another_save(tmp_path):
    commit_checkpoint(_save(tmp_path, 1, "a"), tmp_path / "checkpoint")
    assert verify_checkpoint(tmp_path / "checkpoint")["step"] == 1
    (tmp_path / "checkpoint" / "progress.json").write_text(json.dumps({"step": 2, "payload": "b"}))
    with pytest.raises(IncompleteCheckpointError, match="progress.json does not match the manifest of step 1"):
        recover_checkpoint(tmp_path / "checkpoint")
    (tmp_path / "checkpoint" / "manifest.json").unlink()
    with pytest.raises(IncompleteCheckpointError, match="no manifest.json") as info:
        verify_checkpoint(tmp_path / "checkpoint")
    assert isinstance(info.value, CorruptFileError) and info.value.path == tmp_path / "checkpoint"


def test_recovery_after_a_kill_between_the_renames_promotes_the_newest_complete_save(tmp_path):
    commit_checkpoint(_save(tmp_path, 1, "a"), tmp_path / "checkpoint")
    new = _save(tmp_path, 2, "b")
    os.replace(tmp_path / "checkpoint", tmp_path / ".checkpoint.old")  # the kill hit here
    half = temporary_checkpoint_dir(tmp_path / "checkpoint", 3)
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")  # a later save killed before its manifest
    with pytest.warns(UserWarning, match="resuming from the complete checkpoint of step 2"):
        assert recover_checkpoint(tmp_path / "checkpoint")["step"] == 2
    assert not new.exists() and not half.exists() and not (tmp_path / ".checkpoint.old").exists()
    assert json.loads((tmp_path / "checkpoint" / "progress.json").read_text())["payload"] == "b"


def test_stale_temporary_output_dirs_are_removed_and_an_interrupted_switch_is_undone(tmp_path):
    out = tmp_path / "best"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("old")
    (tmp_path / ".best.k2n4x8qz.tmp").mkdir()  # left by a killed writer of an older version
    (tmp_path / ".best.999999999.abcdefgh.tmp").mkdir()  # a writer whose pid is gone
    os.replace(out, tmp_path / ".best.old-999999999")  # killed between moving the old dir aside and the new in
    removed = recover_output_dir(out)
    assert sorted(p.name for p in removed) == [".best.999999999.abcdefgh.tmp", ".best.k2n4x8qz.tmp"]
    assert (out / "a.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def _train(run: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    return run_train_cli(TRAIN, run, kill_at)


def _assert_same_run(expected: Path, resumed: Path) -> None:
    for name in ("checkpoint/model.safetensors", "checkpoint/best_trainable.safetensors",
                 "best/adapter_model.safetensors"):  # fmt: skip
        want, got = load_file(expected / name), load_file(resumed / name)
        assert want.keys() == got.keys(), name
        for key, value in want.items():
            assert torch.equal(value, got[key]), f"{name}: {key}"
    want, got = (json.loads((run / "metrics.json").read_text()) for run in (expected, resumed))
    assert want["history"] == got["history"] and want["after"] == got["after"]


# 6 optimizer steps, a save after each one (plus one at each epoch end); each kill hits a different moment of a
# save (inside accelerate's save_state, between our files, between the two renames, after the switch, inside the
# best-model write). Every rerun resumes from whatever the previous kill left.
QUICK_KILLS = ["between_renames:4"]
ALL_KILLS = ["accelerate_save_state:2", "after_accelerate_state:3", "after_best:3", "before_manifest:4",
             "after_manifest:4", "between_renames:5", "before_cleanup:6", "best_model"]  # fmt: skip


@pytest.mark.parametrize(
    "kills", [QUICK_KILLS, pytest.param(ALL_KILLS, marks=pytest.mark.slow)], ids=["quick", "every-point"]
)
def test_sigkill_at_any_point_of_a_save_then_resume_is_bit_identical(tmp_path, kills):
    """Real SIGKILLs (via the fault-injection hook) in subprocess runs; 3 runs of ~7 s quick, 10 runs (slow)."""
    straight = _train(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    run, previous = tmp_path / "killed", None
    for kill_at in [*kills, None]:
        result = _train(run, kill_at)
        expected = 0 if kill_at is None else -signal.SIGKILL
        assert result.returncode == expected, (kill_at, result.returncode, result.stderr[-3000:])
        if previous and previous.startswith("between_renames:"):  # resumed from the save, not from scratch
            assert f"resuming from the complete checkpoint of step {previous.split(':')[1]}" in result.stderr
        previous = kill_at
    _assert_same_run(tmp_path / "straight", run)
    assert sorted(p.name for p in run.iterdir()) == ["best", "checkpoint", "metrics.json"]


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    """Kills at seeded random times (wherever they land: loading, training, saving); ~90 s on 2 shared cores."""
    import random
    import time

    straight = _train(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    run, rng = tmp_path / "killed", random.Random(0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(FAULT_INJECTION_ENV, None)
    for _ in range(5):
        process = subprocess.Popen(
            [sys.executable, "-m", "hf_promptseg.cli", *TRAIN, "--output_dir", str(run)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env,
        )  # fmt: skip
        time.sleep(rng.uniform(4.0, 9.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
    final = _train(run)
    assert final.returncode == 0, final.stderr[-3000:]
    _assert_same_run(tmp_path / "straight", run)
    assert sorted(p.name for p in run.iterdir()) == ["best", "checkpoint", "metrics.json"]
