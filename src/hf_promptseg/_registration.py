"""One place that wires hf_promptseg's classes into transformers (and PEFT); idempotent."""

from __future__ import annotations

from hf_promptseg.families import families

_registered = False


def register_all() -> None:
    """Run every family's registration hook (Auto classes, pipelines, PEFT methods). Safe to call more than once."""
    global _registered
    if _registered:
        return
    _registered = True
    for family in families():
        family.register()
