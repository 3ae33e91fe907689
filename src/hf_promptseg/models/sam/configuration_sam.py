"""SAM configurations: the released segment-anything sizes, random-weight presets, and our registration key.

Converted checkpoints keep transformers' own `model_type="sam"` so that they load with plain transformers.
`HfPromptsegSamConfig`, with its own `model_type`, is the key under which hf_promptseg registers its SAM image
processor and processor with the Auto classes (registering on transformers' `SamConfig` would replace SAM for every
caller).
"""

from __future__ import annotations

from transformers import SamConfig

# Released segment-anything image encoders. The converter uses them for what shapes cannot tell (no rel-pos tables)
# and to name the detected model type; `preset_sam_config` builds random-weight models of these sizes.
SAM_VISION_PRESETS: dict[str, dict] = {
    "vit_b": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "global_attn_indexes": [2, 5, 8, 11],
    },
    "vit_l": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "global_attn_indexes": [5, 11, 17, 23],
    },
    "vit_h": {
        "hidden_size": 1280,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "global_attn_indexes": [7, 15, 23, 31],
    },
}
SEGMENT_ANYTHING_DECODER_LAYER_NORM_EPS = 1e-5
PRESET_NAMES = ("tiny", "vit-b", "vit-l", "vit-h")


class HfPromptsegSamConfig(SamConfig):
    """`SamConfig` with its own `model_type`, used to register hf_promptseg's SAM classes with the Auto classes.

    Example:
        >>> from hf_promptseg.models.sam import HfPromptsegSamConfig
        >>> config = HfPromptsegSamConfig()
        >>> config.model_type
        'hf_promptseg_sam'
    """

    model_type = "hf_promptseg_sam"


def _tiny_sam_config() -> SamConfig:
    return SamConfig(
        vision_config={
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_dim": 256,
            "image_size": 128,
            "patch_size": 8,
            "window_size": 8,
            "global_attn_indexes": [1],
            "output_channels": 64,
            "num_pos_feats": 32,
        },
        prompt_encoder_config={"hidden_size": 64, "image_size": 128, "patch_size": 8, "mask_input_channels": 16},
        mask_decoder_config={"hidden_size": 64, "mlp_dim": 256, "num_attention_heads": 4, "layer_norm_eps": 1e-5},
    )


def preset_sam_config(name: str, image_size: int | None = None) -> SamConfig:
    """A random-weight SAM configuration for runs without pretrained weights (tests, benchmarks, smoke runs).

    `tiny` (128² input, 16² tokens, ~0.4 M parameters) or a ViT-B/L/H SAM at 1024² (decoder eps as released).
    `image_size` swaps the input size (a multiple of the patch size), e.g. a ViT-B at 256² for CPU benchmarks.

    Example:
        >>> from hf_promptseg.models.sam.configuration_sam import preset_sam_config
        >>> preset_sam_config("vit-b", image_size=256).vision_config.image_size
        256
    """
    if image_size:
        config = preset_sam_config(name)
        prompt_config = {
            k: v for k, v in config.prompt_encoder_config.to_dict().items() if k != "image_embedding_size"
        }
        return SamConfig(
            vision_config={**config.vision_config.to_dict(), "image_size": image_size},
            prompt_encoder_config={**prompt_config, "image_size": image_size},
            mask_decoder_config=config.mask_decoder_config.to_dict(),
        )
    if name == "tiny":
        return _tiny_sam_config()
    released = name.replace("-", "_")
    if released in SAM_VISION_PRESETS:
        return SamConfig(
            vision_config=SAM_VISION_PRESETS[released],
            mask_decoder_config={"layer_norm_eps": SEGMENT_ANYTHING_DECODER_LAYER_NORM_EPS},
        )
    raise ValueError(f"unknown preset {name!r}; choose from {list(PRESET_NAMES)}")


__all__ = [
    "HfPromptsegSamConfig",
    "PRESET_NAMES",
    "SAM_VISION_PRESETS",
    "SEGMENT_ANYTHING_DECODER_LAYER_NORM_EPS",
    "preset_sam_config",
]
