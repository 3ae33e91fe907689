"""Families are plug-ins: the shared layers only iterate `families()`, so a new folder is picked up everywhere."""

import re
import sys
import types
from pathlib import Path

import pytest

import hf_promptseg
from hf_promptseg import families as families_module
from hf_promptseg.cli import build_parser
from hf_promptseg.families import FAMILY_NAMES, ArtifactKind, ModelFamily, artifact_kinds, card_kinds, families
from hf_promptseg.hub import build_model_card, detect_artifact_kind

PACKAGE = Path(hf_promptseg.__file__).parent
SHARED_MODULES = ("_registration.py", "cli.py", "hub.py", "families.py", "commands/convert.py", "commands/push.py")


@pytest.mark.parametrize("relative", SHARED_MODULES)
def test_shared_modules_name_no_family(relative):
    source = (PACKAGE / relative).read_text()
    code = re.sub(r'"""[\s\S]*?"""', "", source)  # docstrings may explain; code may not branch on a family
    code = re.sub(r"FAMILY_NAMES: tuple\[str, \.\.\.\] = \([^)]*\)", "", code)  # the one list of folders
    hits = re.findall(r".*\b(?:sam|sam_adapter|sam2|dinov)\b.*", code, flags=re.IGNORECASE)
    assert not hits, (relative, hits)


def test_every_family_folder_declares_its_plug_in():
    for family in families():
        assert family.name in FAMILY_NAMES
        assert (PACKAGE / "models" / family.name / "family.py").is_file()
        for kind in family.artifacts:
            assert kind.template.is_file(), kind.name
    assert set(artifact_kinds()) >= {"sam", "sam_adapter", "dinov", "dinov_prompt_bank"}


@pytest.fixture
def toy_family(monkeypatch, tmp_path):
    template = tmp_path / "toy_card.md"
    template.write_text("---\n{{ card_data }}\n---\n# {{ model_name }}\n\n{{ summary }} Widgets: {{ widgets }}.\n")
    calls = []

    converter = types.ModuleType("toy_converter")

    def add_cli_parser(subparsers):
        parser = subparsers.add_parser("toy", help="convert a toy checkpoint")
        parser.set_defaults(func=lambda args: calls.append("convert") or 0)

    converter.add_cli_parser = add_cli_parser
    monkeypatch.setitem(sys.modules, "toy_converter", converter)

    family = ModelFamily(
        name="toy",
        register=lambda: calls.append("register"),
        artifacts=(
            ArtifactKind(
                name="toy",
                template=template,
                library_name="hf-promptseg",
                pipeline_tag="image-segmentation",
                tags=("toy",),
                summary="A toy family.",
                limitations="None worth stating.",
                holds=lambda path: (path / "toy.json").is_file(),
                details=lambda path: {"widgets": 3},
            ),
        ),
        converter="toy_converter",
    )
    module = types.ModuleType("hf_promptseg.models.toy.family")
    module.FAMILY = family
    monkeypatch.setitem(sys.modules, "hf_promptseg.models.toy", types.ModuleType("hf_promptseg.models.toy"))
    monkeypatch.setitem(sys.modules, "hf_promptseg.models.toy.family", module)
    monkeypatch.setattr(families_module, "FAMILY_NAMES", (*FAMILY_NAMES, "toy"))
    families.cache_clear()
    yield calls
    families.cache_clear()


def test_a_new_family_reaches_the_cli_the_hub_and_registration(toy_family, tmp_path):
    from hf_promptseg.cli import main

    assert "toy" in [family.name for family in families()]
    assert main(["convert", "toy"]) == 0 and toy_family == ["convert"]
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "toy.json").write_text("{}")
    assert detect_artifact_kind(saved) == "toy"
    card = build_model_card(saved, repo_id="me/toy")
    assert "Widgets: 3." in card.content and card.data.tags == ["toy"]
    for family in families():
        if family.name == "toy":
            family.register()
    assert toy_family[-1] == "register"
    convert = next(
        action for action in build_parser()._subparsers._group_actions[0].choices["convert"]._actions
        if action.dest == "family"
    )  # fmt: skip
    assert {"toy", "sam", "dinov"} <= set(convert.choices)


def test_card_kinds_must_match_their_detectors():
    with pytest.raises(ValueError, match="declares"):
        card_kinds("hf_promptseg.models.sam", {"not_sam": (lambda path: False, lambda path: {})})
