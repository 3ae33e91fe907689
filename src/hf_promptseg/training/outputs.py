"""Run outputs shared by the trainers: a trained model directory written whole (weights, processor, card), the
best-metric comparison, atomic text files and the one-commit Hub push.

Example:

```python
from hf_promptseg.training.outputs import is_better

print(is_better(0.4, None), is_better(0.3, 0.4, direction=-1))  # True True
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hf_promptseg.training.checkpointing import crash_point
from hf_promptseg.training.lora import write_adapter_base
from hf_promptseg.utils.files import atomic_output_dir


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary sibling and a rename (readers never see half a file)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text)
    partial.replace(path)


def is_better(value: float, best: float | None, direction: int = 1) -> bool:
    """Whether `value` improves on `best` (None: nothing yet); `direction` +1 when higher is better, -1 lower."""
    return best is None or value * direction > best * direction


def save_trained_model(
    target: str | Path,
    model: Any,
    image_processor: Any,
    *,
    random_base: Callable[[], Any] | None = None,
    card: Mapping[str, Any] | None = None,
) -> Path:
    """`save_pretrained` of `model` and `image_processor` into `target`, written whole or not at all, replacing it.

    A PEFT model saves its adapter only; then `random_base` (the seeded random preset it was trained on, None for a
    saved / Hub base) is written under `base/`. `card` (keyword arguments of `hf_promptseg.hub.write_model_card`)
    adds the filled model card, named after the run directory unless it names its `repo_id`.
    """
    from hf_promptseg.hub import write_model_card

    target = Path(target)
    with atomic_output_dir(target, overwrite=True) as tmp:
        crash_point(f"{target.name}_model")
        model.save_pretrained(tmp)
        image_processor.save_pretrained(tmp)
        if random_base is not None and (tmp / "adapter_config.json").is_file():
            write_adapter_base(tmp, random_base(), image_processor)
        if card is not None:
            write_model_card(tmp, **{"repo_id": target.resolve().parent.name, **card})
    return target


def push_run_directory(directory: str | Path, repo_id: str, private: bool = False, kind: str | None = None) -> str:
    """Push a saved run directory (weights + processor + its card) to `repo_id` in one commit; returns its URL.

    The token is huggingface_hub's (`HF_TOKEN` or `hf auth login`), as for every push of the project.
    """
    from hf_promptseg.hub import push_directory

    return push_directory(directory, repo_id, private=private, card_kwargs={"kind": kind} if kind else None)


__all__ = ["atomic_write_text", "is_better", "push_run_directory", "save_trained_model"]
