"""Filesystem helpers: outputs appear whole or not at all; optional JSON files read as empty mappings."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_output_dir(out_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside `out_dir`; move it into place only if the block succeeds.

    An existing non-empty `out_dir` is an error unless `overwrite=True`, in which case it is replaced after the new
    content is complete. On any exception the temporary directory is removed and `out_dir` is left untouched.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"output path exists and is not a directory: {out_dir}")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"output directory is not empty: {out_dir} (pass overwrite=True / --overwrite)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
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


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in `path`, or `{}` when the file does not exist (for optional config files)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}
