"""Small random-weight SAM models for tests (no download is possible here)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import SamConfig, SamModel

from hf_promptseg.models.sam import convert_sam_checkpoint
from hf_promptseg.models.sam.convert_sam_checkpoint import to_segment_anything_state_dict

TINY_SAM = SamConfig(
    vision_config={
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 256,
        "window_size": 4,
        "global_attn_indexes": [1],
        "output_channels": 32,
        "mlp_dim": 64,
        "num_pos_feats": 16,
    },
    prompt_encoder_config={"hidden_size": 32, "image_size": 256, "mask_input_channels": 4},
    mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 4, "layer_norm_eps": 1e-5},
)


def random_sam(config: SamConfig = TINY_SAM, seed: int = 0, std: float = 0.2) -> SamModel:
    torch.manual_seed(seed)
    model = SamModel(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, std)
    return model


def random_sam_hq(seed: int = 0, std: float | None = 0.2):
    """A SAM-HQ of `TINY_SAM`'s sizes; weights N(0, `std`) (None: transformers' own initialisation)."""
    from transformers import SamHQConfig, SamHQModel

    config = SamHQConfig(
        vision_config=TINY_SAM.vision_config.to_dict(),
        prompt_encoder_config=TINY_SAM.prompt_encoder_config.to_dict(),
        mask_decoder_config={**TINY_SAM.mask_decoder_config.to_dict(), "vit_dim": 32},
    )
    torch.manual_seed(seed)
    model = SamHQModel(config).eval()
    if std is not None:
        with torch.no_grad():
            for param in model.parameters():
                param.normal_(0, std)
    return model


def tiny_segment_anything_checkpoint(path: Path, seed: int = 0) -> Path:
    """A segment-anything-format `.safetensors` checkpoint of a random `TINY_SAM`."""
    state = to_segment_anything_state_dict(random_sam(seed=seed).state_dict())
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


def tiny_sam_dir(directory: Path, seed: int = 0, **convert_kwargs) -> Path:
    """A converted hf_promptseg SAM directory (config, weights, processors, card) of a random `TINY_SAM`."""
    checkpoint = tiny_segment_anything_checkpoint(directory.with_suffix(".safetensors"), seed)
    return convert_sam_checkpoint(checkpoint, directory, decoder_num_heads=4, **convert_kwargs)
