"""Loading saved adapters with errors that name the broken file (PEFT's own say "Repo id must be in the form ...").

```python
import tempfile

from hf_promptseg.models.sam_adapter.loading import check_adapter_dir

try:
    check_adapter_dir(tempfile.mkdtemp())
except FileNotFoundError as err:
    assert "adapter_config.json" in str(err)
```
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from hf_promptseg.utils.files import CorruptFileError, read_json

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _looks_local(name: str) -> bool:
    return not _HUB_ID.match(name) or name.startswith(".")


def check_adapter_dir(adapter: str | os.PathLike) -> dict[str, Any] | None:
    """The adapter config of a local adapter directory after checking its files; None for a Hub id.

    Raises `FileNotFoundError` (directory, config or weights missing) or `CorruptFileError` (unreadable config,
    no `peft_type`, truncated / non-safetensors weights), each naming the file.
    """
    path = Path(adapter)
    if not path.is_dir():
        if _looks_local(str(adapter)):
            raise FileNotFoundError(f"adapter directory not found: {path}")
        return None
    config_path = path / "adapter_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} is missing: {path} is not a saved PEFT adapter")
    config = read_json(config_path, required=True)
    if "peft_type" not in config:
        raise CorruptFileError(config_path, "has no `peft_type`; expected a PEFT adapter config (save_pretrained)")
    weights = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{path / WEIGHT_FILES[0]} is missing: the adapter's weights were not saved or copied")
    if weights.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(weights), framework="pt") as handle:
                names = list(handle.keys())
                for name in names:
                    handle.get_slice(name)
        except (SafetensorError, OSError, ValueError) as err:
            raise CorruptFileError(weights, f"not a readable safetensors file ({err})") from err
        size = weights.stat().st_size
        with weights.open("rb") as handle:
            header = int.from_bytes(handle.read(8), "little")
            meta = json.loads(handle.read(header))
        end = max((entry["data_offsets"][1] for key, entry in meta.items() if key != "__metadata__"), default=0)
        if size < 8 + header + end:
            raise CorruptFileError(weights, f"truncated: {size} bytes, the header describes {8 + header + end}")
    return config


def load_adapter(base_model: Any, adapter: str | os.PathLike, **kwargs: Any) -> Any:
    """`PeftModel.from_pretrained(base_model, adapter)` after `check_adapter_dir`; PEFT / safetensors / JSON errors
    about the adapter's files come back as `CorruptFileError` naming the directory."""
    from peft import PeftModel
    from safetensors import SafetensorError

    check_adapter_dir(adapter)
    try:
        return PeftModel.from_pretrained(base_model, adapter, **kwargs)
    except (SafetensorError, json.JSONDecodeError, EOFError) as err:
        raise CorruptFileError(adapter, f"the adapter could not be loaded ({err})") from err


__all__ = ["check_adapter_dir", "load_adapter"]
