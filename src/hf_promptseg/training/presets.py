"""Random-weight SAM configurations for runs without pretrained weights (tests, benchmarks, smoke runs)."""

from __future__ import annotations

from transformers import SamConfig

from hf_promptseg.models.sam.convert_sam_checkpoint import SAM_VISION_PRESETS, SEGMENT_ANYTHING_DECODER_LAYER_NORM_EPS


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
    released = name.replace("-", "_")
    if released in SAM_VISION_PRESETS:
        return SamConfig(
            vision_config=SAM_VISION_PRESETS[released],
            mask_decoder_config={"layer_norm_eps": SEGMENT_ANYTHING_DECODER_LAYER_NORM_EPS},
        )
    raise ValueError(f"unknown preset {name!r}; choose from {['tiny', 'vit-b', 'vit-l', 'vit-h']}")
