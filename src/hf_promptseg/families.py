"""The model families hf_promptseg ships, and what each plugs into the shared layers.

A family is a folder `models/<name>/` whose `family.py` defines `FAMILY = ModelFamily(...)`: its registration hook
(Auto classes, pipelines, PEFT methods), the kinds of artefacts it publishes on the Hub with their model-card
templates, and the command of its checkpoint converter. The shared layers (`_registration.py`, `cli.py`, `hub.py`)
only iterate over `families()`; adding a family is adding its folder and one line to `FAMILY_NAMES`.
"""

from __future__ import annotations

import argparse
import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

FAMILY_NAMES: tuple[str, ...] = (
    "sam",
    "sam_adapter",
    "dinov",
    "sam2",
)


def _no_details(local_dir: Path) -> dict[str, Any]:
    return {}


def _no_check(local_dir: Path) -> None:
    return None


@dataclass(frozen=True)
class ArtifactKind:
    """One kind of saved directory a family publishes, and how its model card describes it.

    Args:
        name: the kind's key (`hf-promptseg push --kind`, `build_model_card(kind=...)`).
        template: the card's Jinja template (a file in the family folder).
        holds: whether a saved directory is of this kind (from the files in it).
        details: template values read from the directory (architecture, base model, categories, ...).
        check: raises (naming the file) when the directory's files are broken; run before anything is uploaded.
    """

    name: str
    template: Traversable
    library_name: str
    pipeline_tag: str | None
    tags: tuple[str, ...]
    summary: str
    limitations: str
    holds: Callable[[Path], bool]
    details: Callable[[Path], dict[str, Any]] = _no_details
    check: Callable[[Path], Any] = _no_check


@dataclass(frozen=True)
class ModelFamily:
    """What a family plugs into the shared layers.

    Args:
        converter: the module of the family's checkpoint converter; its `add_cli_parser(subparsers)` adds
            `hf-promptseg convert <name>` (imported only when the CLI is built).
    """

    name: str
    register: Callable[[], None]
    artifacts: tuple[ArtifactKind, ...] = ()
    converter: str | None = None

    def add_convert_command(self, subparsers: argparse._SubParsersAction) -> None:
        if self.converter is not None:
            importlib.import_module(self.converter).add_cli_parser(subparsers)


Detector = (
    tuple[Callable[[Path], bool], Callable[[Path], dict[str, Any]]]
    | tuple[Callable[[Path], bool], Callable[[Path], dict[str, Any]], Callable[[Path], Any]]
)


def card_kinds(package: str, detectors: Mapping[str, Detector]) -> tuple[ArtifactKind, ...]:
    """The artefact kinds declared in `package`'s `card_kinds.yaml`, in file order.

    The YAML holds what a card says (template file beside it, library, pipeline tag, tags, summary, limitations);
    `detectors` maps each kind to `(holds, details)` or `(holds, details, check)`, the code that recognises,
    describes and checks a saved directory.
    """
    import yaml

    folder = resources.files(package)
    spec = yaml.safe_load((folder / "card_kinds.yaml").read_text(encoding="utf-8"))
    if set(spec) != set(detectors):
        raise ValueError(
            f"{package}/card_kinds.yaml declares {sorted(spec)} but detectors are given for {sorted(detectors)}"
        )
    return tuple(
        ArtifactKind(
            name=name,
            template=folder / fields["template"],
            library_name=fields["library_name"],
            pipeline_tag=fields.get("pipeline_tag"),
            tags=tuple(fields["tags"]),
            summary=fields["summary"],
            limitations=fields["limitations"],
            holds=detectors[name][0],
            details=detectors[name][1],
            check=detectors[name][2] if len(detectors[name]) > 2 else _no_check,
        )
        for name, fields in spec.items()
    )


@functools.cache
def families() -> tuple[ModelFamily, ...]:
    """Every family of `FAMILY_NAMES`, in order (imported on first use)."""
    return tuple(importlib.import_module(f"hf_promptseg.models.{name}.family").FAMILY for name in FAMILY_NAMES)


def artifact_kinds() -> dict[str, ArtifactKind]:
    """Every publishable artefact kind of every family, by name, in detection order."""
    return {kind.name: kind for family in families() for kind in family.artifacts}


__all__ = ["FAMILY_NAMES", "ArtifactKind", "ModelFamily", "artifact_kinds", "card_kinds", "families"]
