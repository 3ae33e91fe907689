"""Small random-weight SAM models for tests (no download is possible here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import SamConfig, SamModel

from hf_promptseg.models.sam import convert_sam_checkpoint
from hf_promptseg.models.sam.convert_sam_checkpoint import to_segment_anything_state_dict
from hf_promptseg.utils.random_weights import variance_preserving_init

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


def tiny_sam2_config(image_size: int = 64, blocks_per_stage=(1, 2, 1, 1)):
    """A ~0.3 M-parameter SAM2: 4 Hiera stages, 64² images.

    Patch grid 16², decoder grid 4²; `dynamic_multimask_via_stability` off (random weights are never stable).
    """
    from transformers import Sam2Config

    widths = [16, 32, 64, 128]
    grid = image_size // 4
    kwargs = {
        "vision_config": {
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": widths[0],
                "embed_dim_per_stage": widths,
                "blocks_per_stage": list(blocks_per_stage),
                "num_attention_heads_per_stage": [1, 1, 2, 2],
                "window_size_per_stage": [4, 4, 2, 2],
                "global_attention_blocks": [2],
                "image_size": [image_size, image_size],
                "window_positional_embedding_background_size": [4, 4],
            },
            "backbone_channel_list": widths[::-1],
            "backbone_feature_sizes": [[grid, grid], [grid // 2, grid // 2], [grid // 4, grid // 4]],
            "fpn_hidden_size": 32,
        },
        "prompt_encoder_config": {
            "hidden_size": 32,
            "image_size": image_size,
            "patch_size": 16,
            "mask_input_channels": 4,
        },
        "mask_decoder_config": {
            "hidden_size": 32,
            "mlp_dim": 64,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 32,
            "dynamic_multimask_via_stability": False,
        },
    }
    return Sam2Config(**kwargs)


def random_sam2(seed: int = 0, **config):
    """A `Sam2Model` of `tiny_sam2_config(**config)` with `variance_preserving_init` weights."""
    from transformers import Sam2Model

    return variance_preserving_init(Sam2Model(tiny_sam2_config(**config)), seed)


REPO = Path(__file__).resolve().parents[1]


def run_train_cli(arguments: list[str], output_dir: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """`hf-promptseg train ARGUMENTS --output_dir OUTPUT_DIR` in a fresh process (one thread), optionally SIGKILLed
    at the crash point `kill_at` (`name` or `name:step`, see `training.checkpointing.crash_point`)."""
    from hf_promptseg.training.checkpointing import FAULT_INJECTION_ENV

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(FAULT_INJECTION_ENV, None)
    if kill_at:
        env[FAULT_INJECTION_ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "hf_promptseg.cli", *arguments, "--output_dir", str(output_dir)],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )  # fmt: skip
