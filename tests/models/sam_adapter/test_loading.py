"""Broken adapter directories: every fault names the file, before PEFT or safetensors sees it."""

import json
import shutil

import pytest
import torch
from peft import get_peft_model
from transformers import SamConfig, SamModel

import hf_promptseg
from hf_promptseg.models.sam_adapter.loading import check_adapter_dir, load_adapter
from hf_promptseg.utils.files import CorruptFileError

CONFIG = SamConfig(vision_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                                  "global_attn_indexes": [1]})  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(SamModel(CONFIG), hf_promptseg.SamAdapterConfig(scale_factor=8)).save_pretrained(out)
    return out


@pytest.fixture()
def adapter(saved, tmp_path):
    copy = tmp_path / "adapter"
    shutil.copytree(saved, copy)
    return copy


def _damage(adapter, kind):
    config, weights = adapter / "adapter_config.json", adapter / "adapter_model.safetensors"
    if kind == "config_missing":
        config.unlink()
    elif kind == "config_empty":
        config.write_text("")
    elif kind == "config_truncated":
        config.write_text(config.read_text()[:40])
    elif kind == "config_not_object":
        config.write_text("[]")
    elif kind == "config_no_peft_type":
        config.write_text(json.dumps({"scale_factor": 8}))
    elif kind == "weights_missing":
        weights.unlink()
    elif kind == "weights_empty":
        weights.write_bytes(b"")
    elif kind == "weights_truncated":
        weights.write_bytes(weights.read_bytes()[:-1000])
    elif kind == "weights_text":
        weights.write_text("this is not a safetensors file, just some text\n")
    return {"config": config, "weights": weights}[kind.split("_")[0]]


@pytest.mark.parametrize(
    "kind, error, match",
    [
        ("config_missing", FileNotFoundError, "adapter_config.json is missing"),
        ("config_empty", CorruptFileError, "empty file"),
        ("config_truncated", CorruptFileError, "invalid JSON"),
        ("config_not_object", CorruptFileError, "expected a JSON object, got list"),
        ("config_no_peft_type", CorruptFileError, "has no `peft_type`"),
        ("weights_missing", FileNotFoundError, "adapter_model.safetensors is missing"),
        ("weights_empty", CorruptFileError, "not a readable safetensors file"),
        ("weights_truncated", CorruptFileError, "truncated|not a readable safetensors"),
        ("weights_text", CorruptFileError, "not a readable safetensors file"),
    ],
)
def test_broken_adapter_dirs_name_the_file(adapter, kind, error, match):
    broken = _damage(adapter, kind)
    with pytest.raises(error, match=match) as info:
        load_adapter(SamModel(CONFIG), adapter)
    assert str(broken) in str(info.value)


def test_missing_directory_and_a_good_adapter(adapter, tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter directory not found"):
        check_adapter_dir(tmp_path / "nowhere")
    assert check_adapter_dir("some-user/some-adapter") is None  # a Hub id: left to the Hub client
    model = load_adapter(SamModel(CONFIG), adapter)
    assert any("sam_adapter" in name for name, _ in model.named_parameters())
