"""Broken prompt-bank directories name the file; a save replaces the bank whole and keeps other files."""

import json

import pytest
import torch

from hf_promptseg.models.dinov import DinovPromptBank
from hf_promptseg.models.dinov.prompt_bank import BANK_CONFIG, BANK_WEIGHTS
from hf_promptseg.utils.files import CorruptFileError


@pytest.fixture()
def bank_dir(tmp_path):
    out = tmp_path / "bank"
    DinovPromptBank({"cat": torch.randn(2, 8), "dog": torch.randn(3, 8)}).save_pretrained(out)
    return out


def _damage(bank_dir, kind):
    config, weights = bank_dir / BANK_CONFIG, bank_dir / BANK_WEIGHTS
    if kind == "config_truncated":
        config.write_text(config.read_text()[:30])
    elif kind == "config_format":
        config.write_text(json.dumps({**json.loads(config.read_text()), "format_version": 99}))
    elif kind == "config_categories":
        config.write_text(json.dumps({**json.loads(config.read_text()), "categories": "cat"}))
    elif kind == "config_more_categories":
        config.write_text(json.dumps({**json.loads(config.read_text()), "categories": ["cat", "dog", "owl"]}))
    elif kind == "weights_truncated":
        weights.write_bytes(weights.read_bytes()[:-16])
    elif kind == "weights_text":
        weights.write_text("hello")
    return weights if kind.startswith("weights") or kind == "config_more_categories" else config


@pytest.mark.parametrize(
    "kind, match",
    [
        ("config_truncated", "invalid JSON"),
        ("config_format", "unsupported prompt bank format 99"),
        ("config_categories", "`categories` must be a list"),
        ("config_more_categories", r"lacks \['tokens.2'\] for the 3 categories"),
        ("weights_truncated", "not a readable safetensors file"),
        ("weights_text", "5-byte file"),
    ],
)
def test_broken_banks_name_the_file(bank_dir, kind, match):
    broken = _damage(bank_dir, kind)
    with pytest.raises(CorruptFileError, match=match) as info:
        DinovPromptBank.from_pretrained(bank_dir)
    assert info.value.path == broken


def test_missing_files_and_a_save_over_an_existing_bank(bank_dir, tmp_path):
    (bank_dir / "README.md").write_text("card")
    DinovPromptBank({"owl": torch.ones(1, 8)}).save_pretrained(bank_dir)
    assert DinovPromptBank.from_pretrained(bank_dir).categories == ["owl"]
    assert (bank_dir / "README.md").read_text() == "card"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]  # no temporary directory left
    (bank_dir / BANK_WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match=BANK_WEIGHTS):
        DinovPromptBank.from_pretrained(bank_dir)
