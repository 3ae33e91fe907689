"""SAM2 configurations: the released Hiera sizes as random-weight presets, and our registration key.

SAM2 checkpoints keep transformers' own `model_type="sam2"`, so they load with plain transformers. The subclass
`HfPromptsegSam2Config`, with its own `model_type`, only names hf_promptseg's image processor and processor for
`AutoImageProcessor` / `AutoProcessor` (registering them on transformers' `Sam2Config` would replace SAM2's classes
for every caller).
"""

from __future__ import annotations

from transformers import Sam2Config

# The Hiera trunks of the released SAM 2 / 2.1 checkpoints (facebookresearch/sam2, configs/sam2.1/sam2.1_hiera_*.yaml:
# embed_dim, num_heads, stages, global_att_blocks, window_spec, window_pos_embed_bkg_spatial_size); widths and heads
# double at every stage. Neck (FPN 256), prompt encoder and mask decoder are the same for all four sizes.
SAM2_HIERA_PRESETS: dict[str, dict] = {
    "tiny": {"width": 96, "heads": 1, "blocks": [1, 2, 7, 2], "global": [5, 7, 9], "windows": [8, 4, 14, 7],
             "background": [7, 7]},
    "small": {"width": 96, "heads": 1, "blocks": [1, 2, 11, 2], "global": [7, 10, 13], "windows": [8, 4, 14, 7],
              "background": [7, 7]},
    "base-plus": {"width": 112, "heads": 2, "blocks": [2, 3, 16, 3], "global": [12, 16, 20],
                  "windows": [8, 4, 14, 7], "background": [14, 14]},
    "large": {"width": 144, "heads": 2, "blocks": [2, 6, 36, 4], "global": [23, 33, 43], "windows": [8, 4, 16, 8],
              "background": [7, 7]},
}  # fmt: skip
SAM2_PRESET_NAMES = (*SAM2_HIERA_PRESETS, "mini")


class HfPromptsegSam2Config(Sam2Config):
    """`Sam2Config` with its own `model_type`, used to register hf_promptseg's SAM2 classes with the Auto classes.

    Example:
        >>> from hf_promptseg.models.sam2 import HfPromptsegSam2Config
        >>> HfPromptsegSam2Config().model_type
        'hf_promptseg_sam2'
    """

    model_type = "hf_promptseg_sam2"


def _mini_sam2_config(image_size: int) -> Sam2Config:
    """~0.3 M parameters: 4 small Hiera stages, FPN and decoder of width 32 (smoke runs and tests)."""
    widths, grid = [16, 32, 64, 128], image_size // 4
    return Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model", "hidden_size": widths[0], "embed_dim_per_stage": widths, "blocks_per_stage": [1, 2, 1, 1],
                "num_attention_heads_per_stage": [1, 1, 2, 2], "window_size_per_stage": [4, 4, 2, 2],
                "global_attention_blocks": [2], "image_size": [image_size, image_size],
                "window_positional_embedding_background_size": [4, 4],
            },
            "backbone_channel_list": widths[::-1],
            "backbone_feature_sizes": [[grid, grid], [grid // 2, grid // 2], [grid // 4, grid // 4]],
            "fpn_hidden_size": 32,
        },
        prompt_encoder_config={"hidden_size": 32, "image_size": image_size, "patch_size": 16, "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    )  # fmt: skip


def preset_sam2_config(name: str, image_size: int | None = None) -> Sam2Config:
    """A random-weight SAM2 configuration of a released Hiera size (1024² input) or `mini` (64² by default).

    `image_size` (a multiple of 64 for `mini`, of 32 otherwise) swaps the input size, e.g. a Hiera-tiny at 512² for
    CPU runs; the feature-map sizes follow.

    Example:
        >>> from hf_promptseg.models.sam2.configuration_sam2 import preset_sam2_config
        >>> preset_sam2_config("base-plus").vision_config.backbone_config.embed_dim_per_stage
        [112, 224, 448, 896]
    """
    if name == "mini":
        size = image_size or 64
        if size % 64:
            raise ValueError(f"`image_size` must be a multiple of 64 for the mini preset, got {size}")
        return _mini_sam2_config(size)
    key = name.replace("_", "-").replace("+", "-plus")
    if key not in SAM2_HIERA_PRESETS:
        raise ValueError(f"unknown SAM2 preset {name!r}; choose from {list(SAM2_PRESET_NAMES)}")
    size = image_size or 1024
    if size % 32:
        raise ValueError(f"`image_size` must be a multiple of 32, got {size}")
    preset = SAM2_HIERA_PRESETS[key]
    widths = [preset["width"] * 2**stage for stage in range(4)]
    grid = size // 4
    return Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": widths[0],
                "num_attention_heads": preset["heads"],
                "embed_dim_per_stage": widths,
                "num_attention_heads_per_stage": [preset["heads"] * 2**stage for stage in range(4)],
                "blocks_per_stage": preset["blocks"],
                "global_attention_blocks": preset["global"],
                "window_size_per_stage": preset["windows"],
                "window_positional_embedding_background_size": preset["background"],
                "image_size": [size, size],
            },
            "backbone_channel_list": widths[::-1],
            "backbone_feature_sizes": [[grid, grid], [grid // 2, grid // 2], [grid // 4, grid // 4]],
        },
        prompt_encoder_config={"image_size": size},
    )


__all__ = ["SAM2_HIERA_PRESETS", "SAM2_PRESET_NAMES", "HfPromptsegSam2Config", "preset_sam2_config"]
