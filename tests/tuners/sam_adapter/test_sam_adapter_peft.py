"""SAM-Adapter through PEFT's and transformers' adapter APIs, on a tiny random SAM."""

import json

import peft
import pytest
import torch
from huggingface_hub import CommitOperationAdd, HfApi
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import SamConfig, SamHQConfig, SamHQModel, SamModel

import hf_promptseg
from hf_promptseg.hub import push_to_hub
from hf_promptseg.tuners import SamAdapterConfig
from tests.testing_utils import TINY_SAM, random_sam


@pytest.fixture()
def pixel_values():
    torch.manual_seed(1)
    return torch.randn(2, 3, 256, 256)


def _masks(model, pixel_values):
    with torch.no_grad():
        return model(pixel_values=pixel_values, multimask_output=False).pred_masks


def _adapted(seed=0, **config):
    torch.manual_seed(seed)
    return get_peft_model(random_sam(), SamAdapterConfig(scale_factor=8, **config))


def test_only_adapter_and_modules_to_save_train(pixel_values):
    model = _adapted()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".sam_adapter." in name or ".modules_to_save." in name for name in trainable), sorted(
        trainable
    )[:5]
    assert any("mask_decoder.modules_to_save" in name for name in trainable)
    assert any("no_mask_embed.modules_to_save" in name for name in trainable)
    assert not any("vision_encoder.layers" in name for name in trainable)
    loss = model(pixel_values=pixel_values, multimask_output=False).pred_masks.square().mean()
    loss.backward()
    assert (
        model.base_model.model.vision_encoder.sam_adapter.sam_adapter_shared_mlp["default"].weight.grad.abs().sum() > 0
    )


def test_zero_up_is_the_identity_and_disable_gives_the_base(pixel_values):
    base = _masks(random_sam(), pixel_values)
    zero = _adapted(init_weights="zero_up")
    assert torch.equal(_masks(zero, pixel_values), base)
    model = _adapted()
    assert not torch.allclose(_masks(model, pixel_values), base)
    with model.disable_adapter():
        assert torch.equal(_masks(model, pixel_values), base)


def test_save_load_round_trip_is_exact(tmp_path, pixel_values):
    model = _adapted()
    expected = _masks(model, pixel_values)
    model.save_pretrained(tmp_path)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert all(".sam_adapter." in k or "mask_decoder" in k or "no_mask_embed" in k for k in saved)
    assert not any("vision_encoder.layers" in k for k in saved)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "SAM_ADAPTER" and config["embedding_layout"] == "bhwc"
    assert (config["encoder_hidden_size"], config["encoder_depth"]) == (32, 2)

    loaded = PeftModel.from_pretrained(random_sam(), tmp_path)
    assert torch.allclose(_masks(loaded, pixel_values), expected, atol=1e-6)
    transformers_loaded = random_sam()
    transformers_loaded.load_adapter(str(tmp_path))
    assert torch.allclose(_masks(transformers_loaded, pixel_values), expected, atol=1e-6)


def test_named_adapters_switch_and_delete(tmp_path, pixel_values):
    first, second = _adapted(seed=1), _adapted(seed=2)
    first.save_pretrained(tmp_path / "first")
    second.save_pretrained(tmp_path / "second")
    expected = {"first": _masks(first, pixel_values), "second": _masks(second, pixel_values)}
    model = PeftModel.from_pretrained(random_sam(), tmp_path / "first", adapter_name="first")
    model.load_adapter(tmp_path / "second", adapter_name="second")
    model.set_adapter("second")
    assert torch.allclose(_masks(model, pixel_values), expected["second"], atol=1e-6)
    model.set_adapter("first")
    assert torch.allclose(_masks(model, pixel_values), expected["first"], atol=1e-6)
    model.delete_adapter("second")
    assert "second" not in model.peft_config
    assert "second" not in model.base_model.model.vision_encoder.sam_adapter.sam_adapter_shared_mlp
    base = model.unload()
    assert not hasattr(base.vision_encoder, "sam_adapter")
    assert torch.equal(_masks(base, pixel_values), _masks(random_sam(), pixel_values))


def test_merge_is_refused():
    with pytest.raises(ValueError, match="cannot be merged"):
        _adapted().merge_and_unload()


def test_activation_checkpointing_keeps_adapter_gradients(pixel_values):
    plain, checkpointed = _adapted(), _adapted()
    checkpointed.base_model.model.gradient_checkpointing_enable()
    checkpointed.train()
    plain.train()
    grads = []
    for model in (plain, checkpointed):
        model(pixel_values=pixel_values, multimask_output=False).pred_masks.sum().backward()
        grads.append(model.base_model.model.vision_encoder.sam_adapter.sam_adapter_shared_mlp["default"].weight.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_sam_hq_takes_the_same_adapter(pixel_values):
    config = SamHQConfig(
        vision_config=TINY_SAM.vision_config.to_dict(),
        prompt_encoder_config=TINY_SAM.prompt_encoder_config.to_dict(),
        mask_decoder_config={**TINY_SAM.mask_decoder_config.to_dict(), "vit_dim": 32},
    )
    torch.manual_seed(0)
    model = get_peft_model(SamHQModel(config).eval(), SamAdapterConfig(scale_factor=8, init_weights="zero_up"))
    assert hasattr(model.base_model.model.vision_encoder, "sam_adapter")
    with torch.no_grad():
        assert model(pixel_values=pixel_values, multimask_output=False).pred_masks.shape[:2] == (2, 1)


def test_stock_lora_on_attention_projections_still_works(tmp_path, pixel_values):
    model = get_peft_model(random_sam(), LoraConfig(r=2, target_modules=["qkv"], init_lora_weights=False))
    model.save_pretrained(tmp_path)
    reloaded = random_sam()
    reloaded.load_adapter(str(tmp_path))
    assert torch.allclose(_masks(reloaded, pixel_values), _masks(model, pixel_values), atol=1e-6)


def test_push_to_hub_uploads_adapter_and_card_in_one_commit(monkeypatch):
    commits = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(
        HfApi, "create_commit", lambda self, repo_id, operations, **kw: commits.append(list(operations))
    )
    push_to_hub(_adapted(), "me/sam-adapter", base_model="me/sam")
    names = {op.path_in_repo for op in commits[0] if isinstance(op, CommitOperationAdd)}
    assert len(commits) == 1 and {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= names


def test_adapter_refuses_a_base_of_another_size(tmp_path):
    _adapted().save_pretrained(tmp_path)
    wider = SamModel(
        SamConfig(
            vision_config={**TINY_SAM.vision_config.to_dict(), "hidden_size": 64},
            prompt_encoder_config=TINY_SAM.prompt_encoder_config.to_dict(),
            mask_decoder_config=TINY_SAM.mask_decoder_config.to_dict(),
        )
    )
    with pytest.raises(ValueError, match="width 32 and depth 2, but the base model's encoder has width 64"):
        PeftModel.from_pretrained(wider, tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embedding_layout": "nchw"}, "`embedding_layout` must be one of"),
        ({"init_weights": "xavier"}, "`init_weights` must be one of"),
        ({"scale_factor": 0}, "`scale_factor` is 0; expected an integer >= 1"),
        ({"scale_factor": 2.5}, "`scale_factor` must be an integer >= 1, got float"),
        ({"scale_factor": True}, "`scale_factor` must be an integer >= 1, got bool"),
        ({"freq_nums": 1.5}, r"`freq_nums` is 1.5; expected a finite number in \[0, 1\)"),
        ({"freq_nums": float("nan")}, "`freq_nums` is nan"),
        ({"freq_nums": "0.25"}, "`freq_nums` must be a number, got str"),
        ({"modules_to_save": "mask_decoder"}, "`modules_to_save` must be a list of module names"),
        ({"target_modules": [1]}, "`target_modules` must be a module name"),
        ({"encoder_depth": 0}, "`encoder_depth` is 0"),
    ],
)
def test_bad_configs(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SamAdapterConfig(**kwargs)


def test_peft_registry_shape_we_rely_on():
    """Fails loudly if a PEFT release changes the registries our registration writes into."""
    from peft import mapping
    from peft.utils import PeftType

    assert peft.__version__.startswith("0.21."), f"SAM-Adapter is tested with peft 0.21.x, found {peft.__version__}"
    for name in ("PEFT_TYPE_TO_CONFIG_MAPPING", "PEFT_TYPE_TO_TUNER_MAPPING", "PEFT_TYPE_TO_PREFIX_MAPPING"):
        assert isinstance(getattr(mapping, name), dict), name
    assert mapping.PEFT_TYPE_TO_CONFIG_MAPPING["SAM_ADAPTER"] is SamAdapterConfig
    assert mapping.PEFT_TYPE_TO_PREFIX_MAPPING["SAM_ADAPTER"] == "sam_adapter_"
    assert "SAM_ADAPTER" not in [member.value for member in PeftType], "PEFT now ships SAM_ADAPTER: revisit"
    assert hf_promptseg.SamAdapterConfig is SamAdapterConfig


def test_torch_compile_matches_eager(pixel_values):
    model = _adapted().eval()
    expected = _masks(model, pixel_values)
    compiled = torch.compile(model.base_model.model.vision_encoder, backend="aot_eager")
    with torch.no_grad():
        eager = model.base_model.model.vision_encoder(pixel_values).last_hidden_state
        assert torch.allclose(compiled(pixel_values).last_hidden_state, eager, atol=1e-5)
    assert torch.equal(_masks(model, pixel_values), expected)


def test_sdpa_and_eager_attention_agree(pixel_values):
    model = _adapted().eval()
    sdpa = _masks(model, pixel_values)
    model.base_model.model.set_attn_implementation("eager")
    assert torch.allclose(_masks(model, pixel_values), sdpa, atol=1e-5)
