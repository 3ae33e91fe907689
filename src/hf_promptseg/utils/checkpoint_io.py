"""Safe reading of original (non-transformers) checkpoints.

`.pth`/`.pt`/`.bin` files are read with `torch.load(weights_only=True)`: a pickle that needs arbitrary code is
refused instead of executed. `.safetensors` files are read with safetensors.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from hf_promptseg.utils.files import CorruptFileError, _first_line

_WRAPPER_KEYS = ("model", "state_dict", "module")
_TORCH_SUFFIXES = {".pth", ".pt", ".bin", ".ckpt"}


class CheckpointError(CorruptFileError):
    """A checkpoint file that cannot be read as a state dict of tensors."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        ValueError.__init__(self, message)
        self.path, self.problem = (Path(path) if path is not None else None), message


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}"
        )
    non_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        shown = ", ".join(repr(k) for k in non_tensors[:5])
        raise CheckpointError(
            f"{path}: the state dict holds {len(non_tensors)} non-tensor entries ({shown}); expected only tensors"
        )
    if not obj:
        raise CheckpointError(f"{path}: the state dict is empty")
    return dict(obj)


def load_checkpoint_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a flat `{name: tensor}` state dict from a `.safetensors` or a torch `.pth` file.

    A `.pth` may wrap its state dict in `{"model": ...}` / `{"state_dict": ...}`; the wrapper is removed.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError (a `ValueError`): the file is truncated, not a checkpoint, needs arbitrary code to
            unpickle, or holds something other than tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty (0-byte) file; expected a .safetensors or torch checkpoint", path)
    if path.suffix == ".safetensors":
        try:
            return _unwrap(load_file(str(path)), path)
        except SafetensorError as err:
            raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    if path.suffix not in _TORCH_SUFFIXES:
        raise CheckpointError(f"{path}: unsupported checkpoint suffix {path.suffix!r}; expected .safetensors or .pth")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        detail = " ".join(text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation")[0].split())
        if "Unsupported global" not in text and "Unsupported class" not in text:
            raise CheckpointError(f"{path}: truncated or not a torch checkpoint ({detail})", path) from err
        raise CheckpointError(
            f"{path}: refused to unpickle: the file needs arbitrary code to load (weights_only=True); "
            f"only plain tensor state dicts are accepted. Details: {detail}",
            path,
        ) from err
    except Exception as err:  # RuntimeError, EOFError, BadZipFile, KeyError...: torch's reader on garbage bytes
        raise CheckpointError(f"{path}: truncated or not a torch checkpoint ({_first_line(err)})", path) from err
    return _unwrap(obj, path)
