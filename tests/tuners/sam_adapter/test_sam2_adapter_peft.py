"""SAM2-Adapter (the SAM_ADAPTER PEFT method on SAM2's Hiera encoder) on a tiny random `Sam2Model`."""

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import Sam2Config, Sam2Model, Sam3TrackerConfig, Sam3TrackerModel

from hf_promptseg.tuners import SamAdapterConfig
from hf_promptseg.tuners.sam_adapter import Sam2HieraAdapterLayer
from tests.testing_utils import random_sam

IMAGE = 64
BLOCKS_PER_STAGE = [1, 2, 1, 1]
STAGE_WIDTHS = [16, 32, 64, 128]


def tiny_sam2_config(blocks_per_stage=BLOCKS_PER_STAGE) -> Sam2Config:
    """A ~0.3 M-parameter SAM2: 4 Hiera stages, 64x64 images (patch grid 16x16, decoder grid 4x4)."""
    grid = IMAGE // 4
    return Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": STAGE_WIDTHS[0],
                "embed_dim_per_stage": STAGE_WIDTHS,
                "blocks_per_stage": blocks_per_stage,
                "num_attention_heads_per_stage": [1, 1, 2, 2],
                "window_size_per_stage": [4, 4, 2, 2],
                "global_attention_blocks": [2],
                "image_size": [IMAGE, IMAGE],
                "window_positional_embedding_background_size": [4, 4],
            },
            "backbone_channel_list": STAGE_WIDTHS[::-1],
            "backbone_feature_sizes": [[grid, grid], [grid // 2, grid // 2], [grid // 4, grid // 4]],
            "fpn_hidden_size": 32,
        },
        prompt_encoder_config={"hidden_size": 32, "image_size": IMAGE, "patch_size": 16, "mask_input_channels": 4},
        mask_decoder_config={
            "hidden_size": 32,
            "mlp_dim": 64,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 32,
            "dynamic_multimask_via_stability": False,
        },
    )


def random_sam2(seed: int = 0, **config) -> Sam2Model:
    torch.manual_seed(seed)
    model = Sam2Model(tiny_sam2_config(**config)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.1)
    return model


def _adapted(seed=0, **config):
    torch.manual_seed(seed)
    return get_peft_model(random_sam2(), SamAdapterConfig(scale_factor=8, **config))


def _layer(model) -> Sam2HieraAdapterLayer:
    return model.base_model.model.vision_encoder.sam_adapter


def _masks(model, pixel_values):
    with torch.no_grad():
        return model(pixel_values=pixel_values, multimask_output=False).pred_masks


@pytest.fixture()
def pixel_values():
    torch.manual_seed(1)
    return torch.randn(2, 3, IMAGE, IMAGE)


def test_every_hiera_block_gets_a_prompt_at_its_input_width_and_grid(pixel_values):
    model = _adapted()
    layer, blocks = _layer(model), model.base_model.model.vision_encoder.backbone.blocks
    assert isinstance(layer, Sam2HieraAdapterLayer)
    assert all(len(block._forward_pre_hooks) == 1 for block in blocks)
    assert sum(name.startswith("sam_adapter_lightweight_mlp_") for name in layer.adapter_layer_names) == len(blocks)
    assert layer.block_stages == [0, 0, 1, 1, 2]  # a q-pooling block still consumes the previous stage's tokens
    seen, inputs = [], []
    block_prompt = layer.block_prompt
    layer.block_prompt = lambda name, index, feature: seen.append(index) or block_prompt(name, index, feature)
    handles = [block.register_forward_pre_hook(lambda m, args: inputs.append(args[0].shape)) for block in blocks]
    prompts = []
    for index, block in enumerate(blocks):
        stage = layer.block_stages[index]
        assert block.dim == STAGE_WIDTHS[stage]
        prompts.append(getattr(layer, f"sam_adapter_shared_mlp_stage{stage}")["default"].out_features)
    _masks(model, pixel_values)
    for handle in handles:
        handle.remove()
    assert seen == list(range(len(blocks)))
    assert [shape[-1] for shape in inputs] == prompts
    assert [shape[1] for shape in inputs] == [16, 16, 8, 8, 4]


def test_config_records_encoder_kind_and_sizes_and_sam2_defaults():
    config = _adapted().peft_config["default"]
    assert config.encoder_type == "sam2_hiera"
    assert (config.encoder_stage_widths, config.encoder_stage_depths) == (STAGE_WIDTHS, BLOCKS_PER_STAGE)
    assert config.modules_to_save == ["mask_decoder", "no_mask_embed", "not_a_point_embed"]


def test_parameter_count_matches_the_documented_formula():
    layer = _layer(_adapted())
    expected = 0
    for stage in layer.stages:
        width, blocks = STAGE_WIDTHS[stage] // 8, layer.block_stages.count(stage)
        conv, embedding = (3 * 7 * 7 + 1) * width, (STAGE_WIDTHS[0] + 1) * width
        expected += conv + embedding + (width + 1) * STAGE_WIDTHS[stage] + blocks * (width + 1) * width
    assert sum(p.numel() for p in layer.parameters()) == expected


def test_zero_up_is_the_identity_and_disable_gives_the_base(pixel_values):
    base = _masks(random_sam2(), pixel_values)
    assert torch.equal(_masks(_adapted(init_weights="zero_up"), pixel_values), base)
    model = _adapted()
    assert not torch.allclose(_masks(model, pixel_values), base)
    with model.disable_adapter():
        assert torch.equal(_masks(model, pixel_values), base)
    assert torch.equal(_masks(model.unload(), pixel_values), base)


def test_one_step_changes_only_adapter_and_modules_to_save(pixel_values):
    model = _adapted().train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    target = (pixel_values[:, :1, ::4, ::4] > 0).float()
    logits = model(pixel_values=pixel_values, multimask_output=False).pred_masks[:, 0]
    torch.nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert all(".sam_adapter." in name or ".modules_to_save.default." in name for name in changed), sorted(changed)
    for part in ("sam_adapter_lightweight_mlp_4", "shared_mlp_stage2", "mask_decoder", "no_mask_embed", "not_a_point"):
        assert any(part in name for name in changed), part


def test_save_load_round_trip_is_exact(tmp_path, pixel_values):
    model = _adapted()
    expected = _masks(model, pixel_values)
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert all(".sam_adapter." in k or k.split(".")[2] in ("mask_decoder", "prompt_encoder") for k in saved)
    assert not any("backbone" in k for k in saved)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (config["encoder_type"], config["encoder_stage_widths"], config["encoder_stage_depths"]) == (
        "sam2_hiera",
        STAGE_WIDTHS,
        BLOCKS_PER_STAGE,
    )
    loaded = PeftModel.from_pretrained(random_sam2(), tmp_path)
    assert torch.allclose(_masks(loaded, pixel_values), expected, atol=1e-6)
    transformers_loaded = random_sam2()
    transformers_loaded.load_adapter(str(tmp_path))
    assert torch.allclose(_masks(transformers_loaded, pixel_values), expected, atol=1e-6)


def test_adapters_do_not_cross_encoder_kinds(tmp_path):
    sam_dir, sam2_dir = tmp_path / "sam", tmp_path / "sam2"
    get_peft_model(random_sam(), SamAdapterConfig(scale_factor=8)).save_pretrained(sam_dir)
    _adapted().save_pretrained(sam2_dir)
    both = r"'sam_vit'.*'sam2_hiera'|'sam2_hiera'.*'sam_vit'"
    with pytest.raises(ValueError, match=both):
        PeftModel.from_pretrained(random_sam2(), sam_dir)
    with pytest.raises(ValueError, match=both):
        random_sam2().load_adapter(str(sam_dir))
    with pytest.raises(ValueError, match=both):
        PeftModel.from_pretrained(random_sam(), sam2_dir)
    legacy = json.loads((sam_dir / "adapter_config.json").read_text())
    for key in ("encoder_type", "encoder_stage_widths", "encoder_stage_depths"):
        del legacy[key]
    (sam_dir / "adapter_config.json").write_text(json.dumps(legacy))
    with pytest.raises(ValueError, match=both):
        PeftModel.from_pretrained(random_sam2(), sam_dir)


def test_hiera_of_another_size_is_refused(tmp_path):
    _adapted().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"blocks per stage \[1, 2, 1, 1\], but .* blocks per stage \[1, 2, 2, 1\]"):
        PeftModel.from_pretrained(random_sam2(blocks_per_stage=[1, 2, 2, 1]), tmp_path)


def test_reference_embedding_layout_is_refused_on_sam2():
    with pytest.raises(ValueError, match="`embedding_layout` 'reference'"):
        _adapted(embedding_layout="reference")


def test_sam3_tracker_vit_is_refused_with_the_encoder_named():
    config = Sam3TrackerConfig(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": 56,
                "patch_size": 14,
                "window_size": 2,
                "global_attn_indexes": [0],
                "pretrain_image_size": 28,
            },
            "fpn_hidden_size": 32,
            "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]],
        },
        prompt_encoder_config={"hidden_size": 32, "image_size": 56, "patch_size": 14},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    )
    with pytest.raises(TypeError, match="Sam3VisionModel with a Sam3ViTModel backbone"):
        get_peft_model(Sam3TrackerModel(config), SamAdapterConfig())


class _PromptsegSam2Config(Sam2Config):
    model_type = "hf_promptseg_sam2"


@pytest.mark.parametrize("config_class", [Sam2Config, _PromptsegSam2Config])
def test_default_targets_come_from_the_model_type(config_class):
    parts = ("vision_config", "prompt_encoder_config", "mask_decoder_config")
    config = config_class(**{key: getattr(tiny_sam2_config(), key).to_dict() for key in parts})
    model = get_peft_model(Sam2Model(config), SamAdapterConfig(scale_factor=8, target_modules=None))
    assert isinstance(_layer(model), Sam2HieraAdapterLayer)


def test_stock_lora_on_hiera_and_decoder_attention_round_trips(tmp_path, pixel_values):
    config = LoraConfig(r=2, target_modules=["qkv", "q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(random_sam2(), config)
    targeted = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name.endswith((".qkv", "_proj"))}
    assert {"qkv", "q_proj", "v_proj"} <= targeted
    expected = _masks(model, pixel_values)
    assert not torch.allclose(expected, _masks(random_sam2(), pixel_values))
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(random_sam2(), tmp_path)
    assert torch.allclose(_masks(loaded, pixel_values), expected, atol=1e-6)
    transformers_loaded = random_sam2()
    transformers_loaded.load_adapter(str(tmp_path))
    assert torch.allclose(_masks(transformers_loaded, pixel_values), expected, atol=1e-6)


def test_named_adapters_switch_and_delete(tmp_path, pixel_values):
    first, second = _adapted(seed=1), _adapted(seed=2)
    first.save_pretrained(tmp_path / "first")
    second.save_pretrained(tmp_path / "second")
    expected = {"first": _masks(first, pixel_values), "second": _masks(second, pixel_values)}
    model = PeftModel.from_pretrained(random_sam2(), tmp_path / "first", adapter_name="first")
    model.load_adapter(tmp_path / "second", adapter_name="second")
    model.set_adapter("second")
    assert torch.allclose(_masks(model, pixel_values), expected["second"], atol=1e-6)
    model.set_adapter("first")
    assert torch.allclose(_masks(model, pixel_values), expected["first"], atol=1e-6)
    model.delete_adapter("second")
    assert "second" not in _layer(model).sam_adapter_shared_mlp_stage0 and "second" not in _layer(model).freq_nums


def test_torch_compile_matches_eager(pixel_values):
    encoder = _adapted().base_model.model.vision_encoder
    compiled = torch.compile(encoder, backend="aot_eager")
    with torch.no_grad():
        eager = encoder(pixel_values).last_hidden_state
        assert torch.allclose(compiled(pixel_values).last_hidden_state, eager, atol=1e-5)
