"""Filesystem helpers: outputs appear whole or not at all; broken files raise one exception that names the file.

- `atomic_output_dir`: write a directory under a temporary name, then switch it into place; `recover_output_dir`
  removes what a killed writer left behind (and puts the previous version back if the kill hit the switch).
- `CorruptFileError`: the one exception every loader raises for a truncated / unparsable JSON, safetensors, pickle
  or zip file, with the file's path in the message; `MissingFileError` (also a `FileNotFoundError`) for a file
  that a saved directory must hold but does not.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class CorruptFileError(ValueError):
    """A file that exists but cannot be read: truncated, empty, not the expected format. `path` is the file.

    ```python
    from hf_promptseg.utils.files import CorruptFileError, read_json

    open("broken.json", "w").write("{")
    try:
        read_json("broken.json")
    except CorruptFileError as err:
        assert "broken.json" in str(err)
    ```
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MissingFileError(CorruptFileError, FileNotFoundError):
    """A file that a saved directory must hold is absent (for example an adapter's weights).

    Both a `CorruptFileError` (the directory is broken) and a `FileNotFoundError`, so either `except` catches it.

    ```python
    from hf_promptseg.utils.files import MissingFileError

    err = MissingFileError("my-adapter/adapter_model.safetensors", "missing: the weights were not saved or copied")
    assert isinstance(err, FileNotFoundError) and err.filename == "my-adapter/adapter_model.safetensors"
    ```
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(path, problem)
        self.errno, self.strerror, self.filename = errno.ENOENT, problem, str(path)

    def __str__(self) -> str:  # OSError's own would print "[Errno 2] ..." without the file
        return f"{self.path}: {self.problem}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_json(path: str | os.PathLike, required: bool = False) -> dict[str, Any]:
    """The JSON object in `path`; `{}` when it does not exist (optional config files) unless `required`.

    Raises `CorruptFileError` for invalid JSON or a non-object top level, `FileNotFoundError` when `required`.
    """
    path = Path(path)
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"file not found: {path}")
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise CorruptFileError(path, f"not a UTF-8 text file ({_first_line(err)})") from err
    except json.JSONDecodeError as err:
        what = "empty file" if not path.stat().st_size else f"invalid JSON ({err.msg} at line {err.lineno})"
        raise CorruptFileError(path, f"{what}; expected a JSON object") from err
    if not isinstance(value, dict):
        raise CorruptFileError(path, f"expected a JSON object, got {type(value).__name__}")
    return value


def load_safetensors(path: str | os.PathLike, device: str = "cpu") -> dict[str, Any]:
    """`safetensors.torch.load_file` with missing / truncated / non-safetensors files reported by name."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    if path.stat().st_size < 8:
        raise CorruptFileError(path, f"{path.stat().st_size}-byte file; expected a safetensors file (header + data)")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as err:
        raise CorruptFileError(path, f"not a readable safetensors file ({_first_line(err)})") from err


def _pid_alive(pid: str) -> bool:
    """Whether another process with this pid runs (a writer's pid is embedded in its temporary names)."""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_output_dir(out_dir: str | os.PathLike) -> list[Path]:
    """Clean up after a writer of `out_dir` that was killed; returns the removed paths.

    Temporary siblings (`.<name>.*.tmp`) of dead writers are removed. When the kill hit between moving the old
    `out_dir` aside and moving the new one in, the old one (`.<name>.old-<pid>`) is put back.
    """
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return []
    removed = []
    for backup in sorted(out_dir.parent.glob(f".{out_dir.name}.old-*")):
        if _pid_alive(backup.name.rsplit("-", 1)[-1]):
            continue
        if not out_dir.exists():
            os.replace(backup, out_dir)
        else:
            shutil.rmtree(backup, ignore_errors=True)
            removed.append(backup)
    for tmp in sorted(out_dir.parent.glob(f".{out_dir.name}.*.tmp")):
        parts = tmp.name.split(".")  # .<name>.<pid>.<random>.tmp
        if tmp.is_dir() and not _pid_alive(parts[-3] if len(parts) >= 4 else ""):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


@contextmanager
def atomic_output_dir(out_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside `out_dir`; move it into place only if the block succeeds.

    An existing non-empty `out_dir` is an error unless `overwrite=True`, in which case it is replaced after the new
    content is complete. On any exception the temporary directory is removed and `out_dir` is left untouched; what a
    SIGKILL leaves behind is cleaned by `recover_output_dir`, which runs first.
    """
    out_dir = Path(out_dir)
    recover_output_dir(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"output path exists and is not a directory: {out_dir}")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"output directory is not empty: {out_dir} (pass overwrite=True / --overwrite)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.", suffix=".tmp", dir=out_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        backup = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, backup)
        os.replace(tmp, out_dir)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)
