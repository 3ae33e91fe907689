"""Build the model a training run fine-tunes: a SAM (pretrained or random preset) plus the chosen method."""

from __future__ import annotations

import torch
from torch import nn

from hf_promptseg.assets import demo_sam_path
from hf_promptseg.models.sam.configuration_sam import preset_sam_config
from hf_promptseg.training.arguments import ModelArguments


def base_model_location(base_model: str) -> str:
    """Where `base_model` is loaded from: the embedded demo SAM's directory for `"demo"`, else the name itself."""
    return demo_sam_path() if base_model == "demo" else base_model


def load_base_model(base_model: str, seed: int = 0) -> nn.Module:
    """A SAM-family model from a dir / Hub id, `"demo"` (the bundled demo SAM) or `random:<preset>` (random weights).

    Random models get segment-anything's prompt-encoder Fourier features (std 1; transformers draws them with std
    `hidden_size // 2`, which turns positions into noise for a model that is not pretrained).
    """
    if base_model.startswith("random:"):
        from transformers import SamModel

        torch.manual_seed(seed)
        model = SamModel(preset_sam_config(base_model.split(":", 1)[1]))
        with torch.no_grad():
            model.shared_image_embedding.positional_embedding.normal_(0.0, 1.0)
        return model
    from transformers import AutoModelForMaskGeneration

    return AutoModelForMaskGeneration.from_pretrained(base_model_location(base_model), dtype=torch.float32)


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
        _freeze_all_but(base, ("mask_decoder.", "prompt_encoder.no_mask_embed."))
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
            target_modules=[name.strip() for name in args.lora_target_modules.split(",") if name.strip()],
            modules_to_save=["mask_decoder", "no_mask_embed"],
        )
    return get_peft_model(base, config)


def sam_core(model: nn.Module) -> nn.Module:
    """The transformers SAM model inside a `PeftModel` (or the model itself)."""
    from peft import PeftModel

    return model.base_model.model if isinstance(model, PeftModel) else model
