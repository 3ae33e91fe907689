"""Random-weight SAM configurations for runs without pretrained weights (tests, benchmarks, smoke runs)."""

from __future__ import annotations

from transformers import SamConfig

_VIT = {
    "vit-b": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "global_attn_indexes": [2, 5, 8, 11],
    },
    "vit-l": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "global_attn_indexes": [5, 11, 17, 23],
    },
    "vit-h": {
        "hidden_size": 1280,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "global_attn_indexes": [7, 15, 23, 31],
    },
}


def preset_sam_config(name: str, image_size: int | None = None) -> SamConfig:
    """`tiny` (128² input, 16² tokens, ~0.4 M parameters) or a ViT-B/L/H SAM at 1024² (decoder eps as released).

    `image_size` swaps the input size (a multiple of the patch size), e.g. a ViT-B at 256² for CPU benchmarks.
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
    if name in _VIT:
        return SamConfig(vision_config=_VIT[name], mask_decoder_config={"layer_norm_eps": 1e-5})
    raise ValueError(f"unknown preset {name!r}; choose from {['tiny', *_VIT]}")
