"""Crash-consistent training checkpoints: a kill at any instant leaves the previous complete checkpoint or the new one.

A save writes everything (accelerate state: weights, optimizer, scheduler, RNG; `progress.json`; the best weights)
into `.checkpoint.step-<N>.tmp/`, then `manifest.json` (step, size and sha256 of every file) **last**, then switches
the directory in with two renames (`checkpoint` -> `.checkpoint.old`, tmp -> `checkpoint`). `recover_checkpoint`
runs before a resume: it keeps a verified `checkpoint/`, or, when a kill hit between the two renames, promotes the
newest verified candidate; it removes every temporary directory; and it refuses (`IncompleteCheckpointError`) a
`checkpoint/` whose files do not match its manifest, instead of resuming from a mix.

accelerate's `save_state` writes into one directory and has no atomic mode, hence this module.
`save_training_state` / `load_training_state` are the whole save / resume of both trainers (SAM and DINOv).

```python
import tempfile
from pathlib import Path

from hf_promptseg.training.checkpointing import commit_checkpoint, recover_checkpoint, write_manifest

run = Path(tempfile.mkdtemp())
tmp = run / ".checkpoint.step-00000001.tmp"
tmp.mkdir()
(tmp / "progress.json").write_text('{"step": 1}')
write_manifest(tmp, step=1)
commit_checkpoint(tmp, run / "checkpoint")
assert recover_checkpoint(run / "checkpoint")["step"] == 1
```
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hf_promptseg.utils.files import CorruptFileError, read_json

MANIFEST_FILE = "manifest.json"
PROGRESS_FILE = "progress.json"
MANIFEST_FORMAT = 1
FAULT_INJECTION_ENV = "HF_PROMPTSEG_FAULT_INJECTION"


class IncompleteCheckpointError(CorruptFileError):
    """A checkpoint directory whose files do not all come from one complete save."""


def crash_point(name: str, step: int | None = None) -> None:
    """Fault injection for the kill tests: SIGKILL this process here when `$HF_PROMPTSEG_FAULT_INJECTION` is
    `name` or `name:step`. A no-op otherwise (one environment lookup)."""
    spec = os.environ.get(FAULT_INJECTION_ENV)
    if not spec:
        return
    point, _, at_step = spec.partition(":")
    if point == name and (not at_step or (step is not None and int(at_step) == step)):
        os.kill(os.getpid(), signal.SIGKILL)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
        os.fsync(handle.fileno())
    return digest.hexdigest()


def _listed_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.rglob("*") if p.is_file() and p.relative_to(directory).as_posix() != MANIFEST_FILE
    )


def write_manifest(directory: str | os.PathLike, step: int) -> dict[str, Any]:
    """Write `manifest.json` (step + size and sha256 of every other file) into `directory`, as its last file."""
    directory = Path(directory)
    files = {
        path.relative_to(directory).as_posix(): {"size": path.stat().st_size, "sha256": _file_digest(path)}
        for path in _listed_files(directory)
    }
    manifest = {"format": MANIFEST_FORMAT, "step": step, "files": files}
    partial = directory / f".{MANIFEST_FILE}.partial"
    with partial.open("w") as handle:
        json.dump(manifest, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(directory / MANIFEST_FILE)
    return manifest


def verify_checkpoint(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of `directory` after checking every listed file's size and hash (and that none is extra).

    Raises `IncompleteCheckpointError` naming the directory and the first file that does not match.
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise IncompleteCheckpointError(
            directory,
            f"no {MANIFEST_FILE}: this checkpoint was not completed (a killed save, or written by an older "
            "hf_promptseg). Delete the directory to train from scratch.",
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        files, step = manifest["files"], int(manifest["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise IncompleteCheckpointError(manifest_path, f"unreadable checkpoint manifest ({err})") from err
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise IncompleteCheckpointError(directory, f"{name} is missing (manifest of step {step} lists it)")
        size = path.stat().st_size
        if size != expected["size"]:
            found = f"{size} bytes, the manifest says {expected['size']}"
        elif _file_digest(path) != expected["sha256"]:
            found = "same size, different sha256"
        else:
            continue
        raise IncompleteCheckpointError(
            directory,
            f"{name} does not match the manifest of step {step} ({found}): the files come from different saves. "
            "Delete the directory to start over.",
        )
    extra = sorted(set(p.relative_to(directory).as_posix() for p in _listed_files(directory)) - set(files))
    if extra:
        raise IncompleteCheckpointError(directory, f"files not in the manifest of step {step}: {extra}")
    return manifest


def temporary_checkpoint_dir(target: str | os.PathLike, step: int) -> Path:
    """Where the save of `step` is written before it is switched in (one name for every rank)."""
    target = Path(target)
    return target.with_name(f".{target.name}.step-{step:08d}.tmp")


def _old_dir(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def commit_checkpoint(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Switch the complete (manifested) `tmp` in as `target`; the previous `target` is removed afterwards."""
    tmp, target = Path(tmp), Path(target)
    old = _old_dir(target)
    if old.exists():
        shutil.rmtree(old)
    step = json.loads((tmp / MANIFEST_FILE).read_text())["step"]
    if target.exists():
        os.replace(target, old)
        crash_point("between_renames", step)
    os.replace(tmp, target)
    crash_point("before_cleanup", step)
    shutil.rmtree(old, ignore_errors=True)


def recover_checkpoint(target: str | os.PathLike) -> dict[str, Any] | None:
    """Make `target` the newest complete checkpoint after a possible kill; returns its manifest (None: none).

    Temporary and old directories are removed. Raises `IncompleteCheckpointError` when `target` itself exists but
    does not verify (it cannot come from an interrupted save, which only ever renames complete directories).
    """
    target = Path(target)
    old = _old_dir(target)
    temporaries = sorted(target.parent.glob(f".{target.name}.step-*.tmp"))
    manifest = None
    if target.is_dir():
        manifest = verify_checkpoint(target)
    else:
        candidates = []
        for directory in [*temporaries, old]:
            if directory.is_dir():
                try:
                    candidates.append((verify_checkpoint(directory)["step"], directory))
                except IncompleteCheckpointError:
                    continue
        if candidates:
            _, chosen = max(candidates, key=lambda item: item[0])
            os.replace(chosen, target)
            manifest = verify_checkpoint(target)
            warnings.warn(
                f"{target}: a save was interrupted; resuming from the complete checkpoint of step {manifest['step']}",
                stacklevel=2,
            )
    for directory in [*temporaries, old]:
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
    return manifest


def save_training_state(
    accelerator: Any,
    checkpoint_dir: str | os.PathLike,
    progress: dict[str, Any],
    write_extra: Callable[[Path], None] | None = None,
) -> None:
    """Save a resumable training state as `checkpoint_dir`, whole or not at all (call it on every process).

    Into `temporary_checkpoint_dir(checkpoint_dir, progress["step"])`: `accelerator.save_state` (weights,
    optimizer, scheduler, RNG), then on the main process `write_extra(tmp)` (e.g. the best weights),
    `progress.json` and the manifest, last; then the directory is switched in with `commit_checkpoint`. The fault
    injection points (`crash_point`) are, in order: `accelerate_save_state` (inside accelerate's save),
    `after_accelerate_state`, `after_best` (after `write_extra`), `before_manifest`, `after_manifest`, then
    `commit_checkpoint`'s `between_renames` and `before_cleanup`.
    """
    checkpoint_dir, step = Path(checkpoint_dir), int(progress["step"])
    tmp = temporary_checkpoint_dir(checkpoint_dir, step)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    hook = accelerator.register_save_state_pre_hook(
        lambda models, weights, directory: crash_point("accelerate_save_state", step)
    )
    try:
        accelerator.save_state(tmp)
    finally:
        hook.remove()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        crash_point("after_accelerate_state", step)
        if write_extra is not None:
            write_extra(tmp)
        crash_point("after_best", step)
        (tmp / PROGRESS_FILE).write_text(json.dumps(progress, indent=2))
        crash_point("before_manifest", step)
        write_manifest(tmp, step)
        crash_point("after_manifest", step)
        commit_checkpoint(tmp, checkpoint_dir)
    accelerator.wait_for_everyone()


def load_training_state(accelerator: Any, checkpoint_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Resume from `checkpoint_dir` (call it on every process): the saved progress, or None when there is none.

    The main process first runs `recover_checkpoint` (finishes an interrupted switch, removes temporary
    directories); then every process verifies the manifest, `accelerator.load_state`s it and reads
    `progress.json`. Raises `IncompleteCheckpointError` (naming the file) on every process for a partial or mixed
    checkpoint, so none waits for the others forever.
    """
    checkpoint_dir = Path(checkpoint_dir)
    if accelerator.is_main_process:
        try:
            recover_checkpoint(checkpoint_dir)
        except IncompleteCheckpointError:
            pass  # raised below on every process
    accelerator.wait_for_everyone()
    if not checkpoint_dir.exists():
        return None
    manifest = verify_checkpoint(checkpoint_dir)
    accelerator.load_state(checkpoint_dir)
    progress = read_json(checkpoint_dir / PROGRESS_FILE, required=True)
    if progress.get("step") != manifest["step"]:
        raise IncompleteCheckpointError(
            checkpoint_dir / PROGRESS_FILE,
            f"step {progress.get('step')} but the checkpoint manifest is of step {manifest['step']}",
        )
    return progress
