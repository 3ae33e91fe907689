"""Convert original segment-anything checkpoints (`sam_vit_{b,l,h}_*.pth`) into transformers `SamModel` directories.

The architecture is read from tensor shapes, so non-standard sizes convert too. What shapes cannot tell — the mask
decoder's attention heads — comes from `decoder_num_heads` (default 8, the released models' value). The mask
decoder's LayerNorm eps is set to segment-anything's 1e-5 (transformers defaults to 1e-6) for exact parity.

Example (a real checkpoint, for users who have it):
    hf-promptseg convert sam sam_vit_b_01ec64.pth ./sam-vit-b

    >>> from transformers import AutoModelForMaskGeneration, AutoProcessor
    >>> model = AutoModelForMaskGeneration.from_pretrained("./sam-vit-b")  # doctest: +SKIP
    >>> processor = AutoProcessor.from_pretrained("./sam-vit-b")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import SamConfig, SamModel, SamPromptEncoderConfig

from hf_promptseg.hub import push_directory, write_model_card
from hf_promptseg.models.sam.configuration_sam import SAM_VISION_PRESETS, SEGMENT_ANYTHING_DECODER_LAYER_NORM_EPS
from hf_promptseg.models.sam.image_processing_sam import HfPromptsegSamImageProcessor
from hf_promptseg.models.sam.processing_sam import HfPromptsegSamProcessor
from hf_promptseg.utils import atomic_output_dir, load_checkpoint_state_dict

DEFAULT_DECODER_NUM_HEADS = 8

# (segment-anything, transformers) substrings, applied in this order in both directions. Layer norms numbered
# `norm1..4` are renamed separately (`_NUMBERED_NORM`) after these.
_RENAMES: list[tuple[str, str]] = [
    ("image_encoder.blocks.", "vision_encoder.layers."),
    ("image_encoder.", "vision_encoder."),
    (".patch_embed.proj.", ".patch_embed.projection."),
    (".neck.0.", ".neck.conv1."),
    (".neck.1.", ".neck.layer_norm1."),
    (".neck.2.", ".neck.conv2."),
    (".neck.3.", ".neck.layer_norm2."),
    (".norm_final_attn.", ".layer_norm_final_attn."),
    ("prompt_encoder.mask_downscaling.0.", "prompt_encoder.mask_embed.conv1."),
    ("prompt_encoder.mask_downscaling.1.", "prompt_encoder.mask_embed.layer_norm1."),
    ("prompt_encoder.mask_downscaling.3.", "prompt_encoder.mask_embed.conv2."),
    ("prompt_encoder.mask_downscaling.4.", "prompt_encoder.mask_embed.layer_norm2."),
    ("prompt_encoder.mask_downscaling.6.", "prompt_encoder.mask_embed.conv3."),
    ("prompt_encoder.point_embeddings.", "prompt_encoder.point_embed."),
    ("mask_decoder.output_upscaling.0.", "mask_decoder.upscale_conv1."),
    ("mask_decoder.output_upscaling.1.", "mask_decoder.upscale_layer_norm."),
    ("mask_decoder.output_upscaling.3.", "mask_decoder.upscale_conv2."),
]
_NUMBERED_NORM = (re.compile(r"\.norm(\d)\."), re.compile(r"\.layer_norm(\d)\."))
_POSITIONAL_MATRIX = (
    "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    "shared_image_embedding.positional_embedding",
)
_MLP_LAYER = re.compile(
    r"^(mask_decoder\.(?:iou_prediction_head|output_hypernetworks_mlps\.\d+))\.layers\.(\d+)\.(.+)$"
)
_TIED_KEYS = {"prompt_encoder.shared_embedding.positional_embedding"}


def detect_checkpoint_family(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Name the model family a state dict belongs to, from its key names.

    Returns one of `"sam"`, `"sam_adapter"`, `"sam_hf"` (already transformers' layout), `"sam2"`, `"dinov"`,
    `"unknown"`.
    """
    keys = list(state_dict)
    if any(".prompt_generator." in k for k in keys) or any(
        k.startswith(("pe_layer.", "no_mask_embed.")) for k in keys
    ):
        return "sam_adapter"
    if any(k.startswith(("sem_seg_head.", "model.sem_seg_head.", "backbone.", "model.backbone.")) for k in keys):
        return "dinov"
    if any(k.startswith("vision_encoder.") for k in keys):
        return "sam_hf"
    if any(k.startswith(("image_encoder.trunk.", "sam_mask_decoder.", "memory_encoder.")) for k in keys):
        return "sam2"
    if "image_encoder.patch_embed.proj.weight" in state_dict and any(k.startswith("mask_decoder.") for k in keys):
        return "sam"
    return "unknown"


_FAMILY_HINTS = {
    "sam_adapter": "this is a SAM-Adapter checkpoint (it has `prompt_generator`/top-level `pe_layer` keys); "
    "use `hf-promptseg convert sam-adapter`",
    "dinov": "this is a DINOv checkpoint (it has `sem_seg_head`/`backbone` keys); use `hf-promptseg convert dinov`",
    "sam_hf": "this state dict already uses transformers' SamModel names; load it with SamModel.from_pretrained",
    "sam2": "this looks like a SAM 2 checkpoint, which this converter does not handle",
    "unknown": "no segment-anything keys found (expected `image_encoder.*`, `prompt_encoder.*`, `mask_decoder.*`)",
}


def _check_is_sam(state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    family = detect_checkpoint_family(state_dict)
    if family != "sam":
        raise ValueError(f"{source} is not an original SAM checkpoint: {_FAMILY_HINTS[family]}")


def _rename_mlp_layers(keys: list[str]) -> dict[str, str]:
    """segment-anything MLPs are `layers.0..n-1`; transformers' are `proj_in`, `layers.0..n-3`, `proj_out`."""
    depth: dict[str, int] = {}
    for key in keys:
        match = _MLP_LAYER.match(key)
        if match:
            depth[match[1]] = max(depth.get(match[1], 0), int(match[2]) + 1)
    renamed = {}
    for key in keys:
        match = _MLP_LAYER.match(key)
        if not match:
            continue
        prefix, index, rest = match[1], int(match[2]), match[3]
        if index == 0:
            name = "proj_in"
        elif index == depth[prefix] - 1:
            name = "proj_out"
        else:
            name = f"layers.{index - 1}"
        renamed[key] = f"{prefix}.{name}.{rest}"
    return renamed


def convert_sam_key(key: str) -> str:
    """Map one segment-anything parameter name to transformers' `SamModel` name (MLP layers excepted)."""
    if key == _POSITIONAL_MATRIX[0]:
        return _POSITIONAL_MATRIX[1]
    for original, renamed in _RENAMES:
        key = key.replace(original, renamed)
    return _NUMBERED_NORM[0].sub(r".layer_norm\1.", key)


def convert_sam_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a segment-anything state dict to transformers' `SamModel` names (tensors are not copied).

    Also accepts SAM-Adapter's layout minus its adapter keys: top-level `pe_layer.*` and `no_mask_embed.*` are
    mapped to `shared_image_embedding.positional_embedding` and `prompt_encoder.no_mask_embed.weight`.
    """
    keys = list(state_dict)
    mlp_renames = _rename_mlp_layers(keys)
    converted = {}
    for key in keys:
        if key in mlp_renames:
            new_key = mlp_renames[key]
        elif key == "pe_layer.positional_encoding_gaussian_matrix":
            new_key = _POSITIONAL_MATRIX[1]
        elif key.startswith("no_mask_embed."):
            new_key = "prompt_encoder." + key
        else:
            new_key = convert_sam_key(key)
        converted[new_key] = state_dict[key]
    return converted


def to_segment_anything_state_dict(hf_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `convert_sam_state_dict`: transformers `SamModel` names -> segment-anything names.

    Exports a (fine-tuned) `SamModel` for tools that read original checkpoints; tests and demos use it to make
    segment-anything-format checkpoints from random configs.
    """
    mlp = re.compile(
        r"^(mask_decoder\.(?:iou_prediction_head|output_hypernetworks_mlps\.\d+))\.(proj_in|proj_out|layers\.(\d+))\."
    )
    hidden_layers: dict[str, int] = {}
    for key in hf_state_dict:
        if (match := mlp.match(key)) and match[3] is not None:
            hidden_layers[match[1]] = max(hidden_layers.get(match[1], 0), int(match[3]) + 1)
    out = {}
    for key, value in hf_state_dict.items():
        if key in _TIED_KEYS:
            continue
        if key == _POSITIONAL_MATRIX[1]:
            out[_POSITIONAL_MATRIX[0]] = value
        elif match := mlp.match(key):
            prefix, part = match[1], match[2]
            index = (
                0
                if part == "proj_in"
                else hidden_layers.get(prefix, 0) + 1
                if part == "proj_out"
                else int(match[3]) + 1
            )
            out[f"{prefix}.layers.{index}.{key[match.end() :]}"] = value
        else:
            for original, renamed in _RENAMES:
                key = key.replace(renamed, original)
            out[_NUMBERED_NORM[1].sub(r".norm\1.", key)] = value
    return out


def _count_indexed(state_dict: Mapping[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    indices = {int(m[1]) for k in state_dict if (m := regex.match(k))}
    return max(indices) + 1 if indices else 0


def _require(state_dict: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state_dict:
        raise ValueError(f"checkpoint is missing the key `{key}` needed to infer the architecture")
    return state_dict[key]


def infer_sam_config(
    state_dict: Mapping[str, torch.Tensor],
    model_type: str = "auto",
    decoder_num_heads: int = DEFAULT_DECODER_NUM_HEADS,
) -> SamConfig:
    """Build a `SamConfig` from the tensor shapes of a segment-anything state dict.

    Args:
        state_dict: original (segment-anything) names.
        model_type: `"auto"` (from shapes) or one of `vit_b`, `vit_l`, `vit_h`; a named type must agree with the
            shapes and supplies head count / global layers when the checkpoint has no relative-position tables.
        decoder_num_heads: attention heads of the mask decoder's two-way transformer (not visible in shapes).
    """
    if model_type != "auto" and model_type not in SAM_VISION_PRESETS:
        raise ValueError(f"`model_type` must be 'auto' or one of {sorted(SAM_VISION_PRESETS)}, got {model_type!r}")
    sd = state_dict
    patch_weight = _require(sd, "image_encoder.patch_embed.proj.weight")
    hidden_size, num_channels, patch_size = patch_weight.shape[0], patch_weight.shape[1], patch_weight.shape[-1]
    depth = _count_indexed(sd, r"^image_encoder\.blocks\.(\d+)\.")
    preset = SAM_VISION_PRESETS.get(model_type)
    if preset is not None and (preset["hidden_size"], preset["num_hidden_layers"]) != (hidden_size, depth):
        raise ValueError(
            f"`model_type={model_type!r}` expects width {preset['hidden_size']} and depth {preset['num_hidden_layers']}, "
            f"but the checkpoint has width {hidden_size} and depth {depth}"
        )
    if preset is None:
        preset = next(
            (
                p
                for p in SAM_VISION_PRESETS.values()
                if (p["hidden_size"], p["num_hidden_layers"]) == (hidden_size, depth)
            ),
            None,
        )

    pos_embed = sd.get("image_encoder.pos_embed")
    grid = pos_embed.shape[1] if pos_embed is not None else 1024 // patch_size
    image_size = grid * patch_size
    use_rel_pos = "image_encoder.blocks.0.attn.rel_pos_h" in sd
    if use_rel_pos:
        head_dim = sd["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
        num_heads = hidden_size // head_dim
        rows = [sd[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] for i in range(depth)]
        global_attn_indexes = [i for i, r in enumerate(rows) if r == 2 * grid - 1]
        windowed = [r for r in rows if r != 2 * grid - 1]
        window_size = (windowed[0] + 1) // 2 if windowed else 14
    elif preset is not None:
        num_heads, global_attn_indexes, window_size = preset["num_attention_heads"], preset["global_attn_indexes"], 14
    else:
        raise ValueError(
            f"cannot infer attention heads and global layers of a width-{hidden_size}, depth-{depth} encoder without "
            "relative-position tables; pass `model_type` of a matching released model"
        )
    mlp_dim = _require(sd, "image_encoder.blocks.0.mlp.lin1.weight").shape[0]
    output_channels = _require(sd, "image_encoder.neck.0.weight").shape[0]
    pe_matrix = _require(sd, "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix")

    mask_tokens = _require(sd, "mask_decoder.mask_tokens.weight")
    decoder_dim = mask_tokens.shape[1]
    cross_dim = _require(sd, "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight").shape[0]
    if decoder_dim % decoder_num_heads or cross_dim % decoder_num_heads:
        raise ValueError(
            f"`decoder_num_heads={decoder_num_heads}` does not divide the decoder width {decoder_dim} "
            f"and its cross-attention width {cross_dim}"
        )
    hyper_depth = _count_indexed(sd, r"^mask_decoder\.output_hypernetworks_mlps\.0\.layers\.(\d+)\.")
    if hyper_depth != 3:
        raise ValueError(f"transformers' SAM expects 3-layer hypernetwork MLPs, the checkpoint has {hyper_depth}")
    iou_head = _require(sd, "mask_decoder.iou_prediction_head.layers.0.weight")

    return SamConfig(
        vision_config={
            "hidden_size": hidden_size,
            "num_hidden_layers": depth,
            "num_attention_heads": num_heads,
            "num_channels": num_channels,
            "image_size": image_size,
            "patch_size": patch_size,
            "output_channels": output_channels,
            "window_size": window_size,
            "global_attn_indexes": global_attn_indexes,
            "qkv_bias": "image_encoder.blocks.0.attn.qkv.bias" in sd,
            "mlp_ratio": mlp_dim / hidden_size,
            "mlp_dim": mlp_dim,
            "use_abs_pos": pos_embed is not None,
            "use_rel_pos": use_rel_pos,
            "num_pos_feats": pe_matrix.shape[1],
        },
        prompt_encoder_config={
            "hidden_size": _require(sd, "prompt_encoder.no_mask_embed.weight").shape[1],
            "image_size": image_size,
            "patch_size": patch_size,
            # SAM-Adapter checkpoints carry no point/mask prompt encoder: keep transformers' defaults there.
            "mask_input_channels": (
                sd["prompt_encoder.mask_downscaling.3.weight"].shape[0]
                if "prompt_encoder.mask_downscaling.3.weight" in sd
                else SamPromptEncoderConfig().mask_input_channels
            ),
            "num_point_embeddings": _count_indexed(sd, r"^prompt_encoder\.point_embeddings\.(\d+)\.")
            or SamPromptEncoderConfig().num_point_embeddings,
        },
        mask_decoder_config={
            "hidden_size": decoder_dim,
            "mlp_dim": _require(sd, "mask_decoder.transformer.layers.0.mlp.lin1.weight").shape[0],
            "num_hidden_layers": _count_indexed(sd, r"^mask_decoder\.transformer\.layers\.(\d+)\."),
            "num_attention_heads": decoder_num_heads,
            "attention_downsample_rate": decoder_dim // cross_dim,
            "num_multimask_outputs": mask_tokens.shape[0] - 1,
            "iou_head_depth": _count_indexed(sd, r"^mask_decoder\.iou_prediction_head\.layers\.(\d+)\."),
            "iou_head_hidden_dim": iou_head.shape[0],
            "layer_norm_eps": SEGMENT_ANYTHING_DECODER_LAYER_NORM_EPS,
        },
    )


def detect_model_type(config: SamConfig) -> str:
    """Name of the released encoder this config matches (`vit_b`/`vit_l`/`vit_h`), or `"custom"`."""
    vision = config.vision_config
    for name, preset in SAM_VISION_PRESETS.items():
        if all(
            getattr(vision, key) == list(value) if isinstance(value, list) else getattr(vision, key) == value
            for key, value in preset.items()
        ):
            return name
    return "custom"


def load_converted_weights(model: SamModel, converted: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load renamed weights into `model`, refusing unknown, missing or mis-shaped tensors."""
    expected = model.state_dict()
    unexpected = sorted(set(converted) - set(expected))
    missing = sorted(set(expected) - set(converted) - _TIED_KEYS)
    if unexpected:
        raise ValueError(f"{source} has {len(unexpected)} unknown key(s) for SamModel, e.g. {unexpected[:5]}")
    if missing:
        raise ValueError(f"{source} is missing {len(missing)} key(s) SamModel needs, e.g. {missing[:5]}")
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in converted.items()
        if v.shape != expected[k].shape
    ]
    if mismatched:
        raise ValueError(f"{source} has {len(mismatched)} tensor(s) of the wrong shape, e.g. {mismatched[:3]}")
    full = dict(converted)
    for tied in _TIED_KEYS:
        full.setdefault(tied, converted["shared_image_embedding.positional_embedding"])
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in full.items()}, strict=True)


def build_sam_processor(config: SamConfig) -> HfPromptsegSamProcessor:
    """Processor matching segment-anything's preprocessing for `config`'s input size (longest side + pad)."""
    image_size = config.vision_config.image_size
    mask_size = 4 * (image_size // config.vision_config.patch_size)  # the prompt encoder's mask-input resolution
    image_processor = HfPromptsegSamImageProcessor(
        size={"longest_edge": image_size},
        pad_size={"height": image_size, "width": image_size},
        mask_size={"longest_edge": mask_size},
        mask_pad_size={"height": mask_size, "width": mask_size},
    )
    return HfPromptsegSamProcessor(image_processor)


def convert_sam_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_type: str = "auto",
    decoder_num_heads: int = DEFAULT_DECODER_NUM_HEADS,
    push_to_hub: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert a segment-anything checkpoint into a directory `from_pretrained` and `pipeline` can load.

    Writes `config.json`, `model.safetensors`, `preprocessor_config.json`, `processor_config.json` and a filled
    model card (`README.md`) into `out_dir` atomically (nothing is left half-written on error).

    Args:
        checkpoint: `.pth` (a state dict, possibly wrapped in `{"model": ...}`; read with `weights_only=True`) or
            `.safetensors`, with segment-anything's key names.
        out_dir: output directory; must be empty or absent unless `overwrite`.
        model_type: `auto`, `vit_b`, `vit_l` or `vit_h` (see `infer_sam_config`).
        decoder_num_heads: mask decoder attention heads (8 in all released models).
        push_to_hub: optional repo id to upload the converted directory to.
        overwrite: replace a non-empty `out_dir`.

    Returns:
        The output directory.

    Example:
        >>> from hf_promptseg.models.sam import convert_sam_checkpoint
        >>> convert_sam_checkpoint("sam_vit_b_01ec64.pth", "sam-vit-b")  # doctest: +SKIP
    """
    state_dict = load_checkpoint_state_dict(checkpoint)
    _check_is_sam(state_dict, str(checkpoint))
    config = infer_sam_config(state_dict, model_type=model_type, decoder_num_heads=decoder_num_heads)
    model = SamModel(config)
    load_converted_weights(model, convert_sam_state_dict(state_dict), source=str(checkpoint))
    processor = build_sam_processor(config)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        # pipeline("mask-generation") loads only an image processor, from preprocessor_config.json.
        processor.image_processor.save_pretrained(tmp)
        write_model_card(tmp, kind="sam", repo_id=push_to_hub or Path(out_dir).name, source=Path(checkpoint).name)
    if push_to_hub:
        push_directory(out_dir, push_to_hub, commit_message="Upload SAM converted by hf_promptseg")
    return Path(out_dir)


def _run(args: argparse.Namespace) -> int:
    out = convert_sam_checkpoint(
        args.checkpoint,
        args.out_dir,
        model_type=args.model_type,
        decoder_num_heads=args.decoder_num_heads,
        push_to_hub=args.push_to_hub,
        overwrite=args.overwrite,
    )
    print(f"converted {args.checkpoint} -> {out}")
    return 0


def add_cli_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sam", help="original segment-anything checkpoint -> transformers SamModel dir")
    parser.add_argument("checkpoint", help="segment-anything .pth or .safetensors file")
    parser.add_argument("out_dir", help="output directory (created; must be empty unless --overwrite)")
    parser.add_argument("--model-type", default="auto", choices=["auto", *SAM_VISION_PRESETS])
    parser.add_argument("--decoder-num-heads", type=int, default=DEFAULT_DECODER_NUM_HEADS)
    parser.add_argument("--push-to-hub", metavar="REPO", default=None, help="upload the result to this Hub repo")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.set_defaults(func=_run)


__all__ = [
    "SAM_VISION_PRESETS",
    "convert_sam_checkpoint",
    "convert_sam_key",
    "convert_sam_state_dict",
    "detect_checkpoint_family",
    "detect_model_type",
    "infer_sam_config",
    "load_converted_weights",
    "to_segment_anything_state_dict",
]
