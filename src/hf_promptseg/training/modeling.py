"""Build the model a training run fine-tunes: a SAM (pretrained or random preset) plus the chosen method."""

from __future__ import annotations

import torch
from torch import nn

from hf_promptseg.assets import demo_sam_path
from hf_promptseg.models.sam.configuration_sam import PRESET_NAMES, preset_sam_config
from hf_promptseg.models.sam.family import SAM_MODEL_TYPES
from hf_promptseg.models.sam2.configuration_sam2 import SAM2_PRESET_NAMES, preset_sam2_config
from hf_promptseg.models.sam2.registration import SAM2_MODEL_TYPES
from hf_promptseg.training.arguments import ModelArguments
from hf_promptseg.training.lora import split_module_names

RANDOM_PRESETS = (*PRESET_NAMES, *(f"sam2-{name}" for name in SAM2_PRESET_NAMES))


def base_model_location(base_model: str) -> str:
    """Where `base_model` is loaded from: the embedded demo SAM's directory for `"demo"`, else the name itself."""
    return demo_sam_path() if base_model == "demo" else base_model


def load_base_model(base_model: str, seed: int = 0) -> nn.Module:
    """A SAM or SAM2-generation model from a dir / Hub id, `"demo"` (the bundled demo SAM) or `random:<preset>`.

    Presets: SAM's `tiny`, `vit-b`, `vit-l`, `vit-h` and SAM2's `sam2-tiny`, `sam2-small`, `sam2-base-plus`,
    `sam2-large` (the released Hiera sizes) and `sam2-mini` (a ~0.3 M-parameter smoke-test model). Random models get
    segment-anything's prompt-encoder Fourier features (std 1; transformers draws them with std
    `hidden_size // 2`, which turns positions into noise for a model that is not pretrained).
    """
    if base_model.startswith("random:"):
        from transformers import Sam2Model, SamModel

        name = base_model.split(":", 1)[1]
        if name not in RANDOM_PRESETS:
            raise ValueError(f"`base_model` {base_model!r}: unknown preset; choose from random:{list(RANDOM_PRESETS)}")
        torch.manual_seed(seed)
        if name.startswith("sam2-"):
            model = Sam2Model(preset_sam2_config(name.removeprefix("sam2-")))
            # prompt-free training reads the single-mask output: no stability-based switch to another mask
            model.config.mask_decoder_config.dynamic_multimask_via_stability = False
            model.mask_decoder.dynamic_multimask_via_stability = False
            with torch.no_grad():
                model.prompt_encoder.shared_embedding.positional_embedding.normal_(0.0, 1.0)
        else:
            model = SamModel(preset_sam_config(name))
        with torch.no_grad():
            model.shared_image_embedding.positional_embedding.normal_(0.0, 1.0)
        return model
    from transformers import AutoConfig, AutoModelForMaskGeneration

    location = base_model_location(base_model)
    model_type = AutoConfig.from_pretrained(location).model_type
    if model_type not in (*SAM_MODEL_TYPES, *SAM2_MODEL_TYPES):
        raise ValueError(
            f"`base_model` {base_model!r} is a {model_type!r} model; training takes SAM-family bases "
            f"(model types {sorted({*SAM_MODEL_TYPES, *SAM2_MODEL_TYPES})})"
        )
    return AutoModelForMaskGeneration.from_pretrained(location, dtype=torch.float32)


def is_sam2_model(model: nn.Module) -> bool:
    """Whether `model` (or the model inside a `PeftModel`) is of the SAM2 generation (SAM2, SAM3-tracker, EdgeTAM)."""
    return getattr(sam_core(model).config, "model_type", None) in SAM2_MODEL_TYPES


def model_input_size(model: nn.Module) -> int:
    """The square input size the model was built for (SAM: its ViT's; SAM2: its prompt encoder's)."""
    config = sam_core(model).config
    return int(config.prompt_encoder_config.image_size if is_sam2_model(model) else config.vision_config.image_size)


def _freeze_all_but(model: nn.Module, prefixes: tuple[str, ...]) -> None:
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(prefixes))


def build_training_model(args: ModelArguments) -> nn.Module:
    """SAM-Adapter or LoRA as a `PeftModel` (decoder trained too), or the plain model for full/decoder-only tuning."""
    base = load_base_model(args.base_model, args.model_seed)
    if args.method == "full":
        _freeze_all_but(base, ("",))
        return base
    if args.method == "decoder":
        # SAM2's prompt-free call embeds one not-a-point token, so that embedding is part of its decoder input
        prompts = ("prompt_encoder.no_mask_embed.", "prompt_encoder.not_a_point_embed.")
        _freeze_all_but(base, ("mask_decoder.", *prompts[: 2 if is_sam2_model(base) else 1]))
        return base
    from peft import LoraConfig, get_peft_model

    from hf_promptseg.tuners.sam_adapter import SamAdapterConfig

    torch.manual_seed(args.model_seed)
    if args.method == "sam_adapter":
        config = SamAdapterConfig(
            scale_factor=args.adapter_scale_factor,
            freq_nums=args.adapter_freq_nums,
            init_weights=args.adapter_init_weights,
        )
    else:
        config = LoraConfig(
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            target_modules=split_module_names(args.lora_target_modules, "lora_target_modules"),
            modules_to_save=["mask_decoder", "no_mask_embed", *(["not_a_point_embed"] if is_sam2_model(base) else [])],
        )
    return get_peft_model(base, config)


def sam_core(model: nn.Module) -> nn.Module:
    """The transformers SAM model inside a `PeftModel` (or the model itself)."""
    from peft import PeftModel

    return model.base_model.model if isinstance(model, PeftModel) else model
