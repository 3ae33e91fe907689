"""PEFT LoRA pieces shared by the SAM and DINOv trainers: module-name arguments and adapter-only run outputs.

```python
from torch import nn

from hf_promptseg.training.lora import scoped_modules, split_module_names

model = nn.Module()
model.decoder = nn.ModuleDict({"fc1": nn.Linear(4, 4), "fc2": nn.Linear(4, 4)})
names = split_module_names("fc1, fc2", "lora_target_modules")  # ["fc1", "fc2"]
assert list(scoped_modules(model, ("decoder",), names, "lora_target_modules")) == ["decoder.fc1", "decoder.fc2"]
```
"""

from __future__ import annotations

import re
from pathlib import Path

from torch import nn


def split_module_names(text: str, argument: str) -> list[str]:
    """'qkv, fc1' → ['qkv', 'fc1']; an empty list is a `ValueError` naming `argument`."""
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    if not names:
        raise ValueError(f"`{argument}` must name at least one module (comma-separated), got {text!r}")
    return names


def scoped_modules(model: nn.Module, scopes: tuple[str, ...], names: list[str], argument: str) -> dict[str, nn.Module]:
    """The modules called `names` (last name parts, e.g. `fc1` or `encoder_attn.value_proj`) inside the `scopes`
    module paths (regexes such as `model\\.decoder\\.layers\\.\\d+`), by full name.

    A name that matches no module of the scopes is a `ValueError` naming `argument`, the name and the candidates.
    """
    scope = "|".join(scopes)
    inside = {name: module for name, module in model.named_modules() if re.match(rf"(?:{scope})\.", name)}
    found = {}
    for name in names:
        pattern = re.compile(rf"(?:{scope})\.(?:.+\.)?{re.escape(name)}")
        matched = {module: inside[module] for module in inside if pattern.fullmatch(module)}
        if not matched:
            leaves = sorted({module.rsplit(".", 1)[-1] for module in inside})
            raise ValueError(f"`{argument}`: no module named {name!r} inside {list(scopes)}; names there: {leaves}")
        found.update(matched)
    return found


def check_modules_exist(model: nn.Module, names: list[str], argument: str) -> None:
    """Every entry of a `modules_to_save` list ends some module's name (PEFT's suffix rule), else a `ValueError`."""
    modules = [name for name, _ in model.named_modules()]
    missing = [name for name in names if not any(module.endswith(name) for module in modules)]
    if missing:
        raise ValueError(f"`{argument}`: no module of {type(model).__name__} is named {missing}")


def write_adapter_base(directory: str | Path, base: nn.Module, processor=None) -> Path:
    """Save a random-preset base model into `directory/base` beside its adapter, so the run directory loads on its
    own: PEFT methods keep the base frozen, so re-creating it from its preset and seed gives the trained-on weights."""
    target = Path(directory) / "base"
    base.save_pretrained(target)
    if processor is not None:
        processor.save_pretrained(target)
    return target


__all__ = ["check_modules_exist", "scoped_modules", "split_module_names", "write_adapter_base"]
