import pytest
from torch import nn

from hf_promptseg.training.lora import check_modules_exist, scoped_modules, split_module_names


def _model() -> nn.Module:
    model = nn.Module()
    model.decoder = nn.ModuleList([nn.ModuleDict({"fc1": nn.Linear(2, 2), "attn": nn.MultiheadAttention(2, 1)})])
    model.encoder = nn.ModuleDict({"fc1": nn.Linear(2, 2)})
    return model


def test_names_are_split_and_checked():
    assert split_module_names(" qkv, fc1 ,", "lora_target_modules") == ["qkv", "fc1"]
    with pytest.raises(ValueError, match="`lora_target_modules` must name at least one module"):
        split_module_names("", "lora_target_modules")


def test_scoped_modules_stay_inside_their_scopes():
    found = scoped_modules(_model(), (r"decoder\.\d+",), ["fc1", "attn"], "lora_target_modules")
    assert list(found) == ["decoder.0.fc1", "decoder.0.attn"], "encoder.fc1 is outside the scope"
    with pytest.raises(ValueError, match=r"no module named 'fc3' inside .*names there: \['attn', 'fc1', 'out_proj'\]"):
        scoped_modules(_model(), (r"decoder\.\d+",), ["fc3"], "lora_target_modules")


def test_modules_to_save_must_exist():
    check_modules_exist(_model(), ["encoder.fc1", "attn"], "lora_modules_to_save")
    with pytest.raises(ValueError, match=r"`lora_modules_to_save`: no module of Module is named \['head'\]"):
        check_modules_exist(_model(), ["attn", "head"], "lora_modules_to_save")
