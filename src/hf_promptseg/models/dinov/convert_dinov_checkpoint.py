"""Convert a released DINOv checkpoint (`model_swinT.pth`, `model_swinL.pth`, or a `.safetensors` export) to a model dir.

Every key is mapped (the reference's tied duplicates and index buffers are dropped, see `DROPPED`); sizes come from
tensor shapes; what shapes cannot tell (attention heads, point grid, thresholds) comes from the reference's own
config (its YAML, or JSON with the same `MODEL.*` structure) when given, else from the released presets.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import torch

from hf_promptseg.models.dinov.configuration_dinov import SWIN_PRESETS, DinovConfig, swin_backbone_config
from hf_promptseg.utils.files import CorruptFileError, load_safetensors

DROPPED = (
    r".*relative_position_index$",
    r"^criterion\.",
    r"^sem_seg_head\.predictor\.(bbox_embed|decoder\.bbox_embed)\.",
    r"^sem_seg_head\.predictor\.decoder\.norm\.",
    r"^sem_seg_head\.predictor\.class_embed_part$",
)

_RENAMES = (
    (r"^backbone\.patch_embed\.proj\.", "model.backbone.swin.embeddings.patch_embeddings.projection."),
    (r"^backbone\.patch_embed\.norm\.", "model.backbone.swin.embeddings.norm."),
    (
        r"^backbone\.layers\.(\d+)\.blocks\.(\d+)\.norm1\.",
        r"model.backbone.swin.encoder.layers.\1.blocks.\2.layernorm_before.",
    ),
    (
        r"^backbone\.layers\.(\d+)\.blocks\.(\d+)\.norm2\.",
        r"model.backbone.swin.encoder.layers.\1.blocks.\2.layernorm_after.",
    ),
    (
        r"^backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.proj\.",
        r"model.backbone.swin.encoder.layers.\1.blocks.\2.attention.o_proj.",
    ),
    (
        r"^backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table$",
        r"model.backbone.swin.encoder.layers.\1.blocks.\2.attention.relative_position_bias.relative_position_bias_table",
    ),
    (r"^backbone\.layers\.(\d+)\.blocks\.(\d+)\.mlp\.", r"model.backbone.swin.encoder.layers.\1.blocks.\2.mlp."),
    (r"^backbone\.layers\.(\d+)\.downsample\.", r"model.backbone.swin.encoder.layers.\1.downsample."),
    (r"^backbone\.norm(\d)\.", lambda m: f"model.backbone.hidden_states_norms.stage{int(m.group(1)) + 1}."),
    (r"^sem_seg_head\.pixel_decoder\.input_proj\.", "model.pixel_decoder.input_projections."),
    (r"^sem_seg_head\.pixel_decoder\.transformer\.level_embed$", "model.pixel_decoder.level_embed"),
    (
        r"^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.norm1\.",
        r"model.pixel_decoder.encoder.layers.\1.self_attn_layer_norm.",
    ),
    (
        r"^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.norm2\.",
        r"model.pixel_decoder.encoder.layers.\1.final_layer_norm.",
    ),
    (
        r"^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.linear(\d)\.",
        r"model.pixel_decoder.encoder.layers.\1.fc\2.",
    ),
    (
        r"^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.self_attn\.",
        r"model.pixel_decoder.encoder.layers.\1.self_attn.",
    ),
    (r"^sem_seg_head\.pixel_decoder\.mask_features\.", "model.pixel_decoder.mask_projection."),
    (r"^sem_seg_head\.pixel_decoder\.(adapter_1|layer_1)\.weight$", r"model.pixel_decoder.\1.0.weight"),
    (r"^sem_seg_head\.pixel_decoder\.(adapter_1|layer_1)\.norm\.", r"model.pixel_decoder.\1.1."),
    (r"^sem_seg_head\.predictor\.decoder\.layers\.(\d+)\.norm2\.", r"model.decoder.layers.\1.self_attn_layer_norm."),
    (
        r"^sem_seg_head\.predictor\.decoder\.layers\.(\d+)\.norm1\.",
        r"model.decoder.layers.\1.encoder_attn_layer_norm.",
    ),
    (r"^sem_seg_head\.predictor\.decoder\.layers\.(\d+)\.norm3\.", r"model.decoder.layers.\1.final_layer_norm."),
    (r"^sem_seg_head\.predictor\.decoder\.layers\.(\d+)\.cross_attn\.", r"model.decoder.layers.\1.encoder_attn."),
    (r"^sem_seg_head\.predictor\.decoder\.layers\.(\d+)\.linear(\d)\.", r"model.decoder.layers.\1.fc\2."),
    (r"^sem_seg_head\.predictor\.decoder\.layers\.(\d+)\.self_attn\.", r"model.decoder.layers.\1.self_attn."),
    (r"^sem_seg_head\.predictor\.decoder\.ref_point_head\.", "model.decoder.reference_points_head."),
    (r"^sem_seg_head\.predictor\.decoder_norm\.", "model.decoder.layer_norm."),
    (r"^sem_seg_head\.predictor\._bbox_embed\.", "model.decoder.bbox_head."),
    (r"^sem_seg_head\.predictor\.mask_embed\.", "mask_embed."),
    (r"^sem_seg_head\.predictor\.iou_prediction_head\.", "iou_head."),
    (r"^sem_seg_head\.predictor\.class_embed$", "referring_projection"),
    (r"^sem_seg_head\.predictor\.class_embed_openset$", "generic_projection"),
    (r"^sem_seg_head\.predictor\.query_feat\.", "model.query_content."),
    (r"^sem_seg_head\.predictor\.query_embed\.", "model.query_anchor_boxes."),
    (r"^sem_seg_head\.predictor\.(label_enc|pb_embedding)\.", r"model.\1."),
    (r"^sem_seg_head\.predictor\.mask_tokens\.", "model.granularity_tokens."),
    (r"^sem_seg_head\.predictor\.content_tokens\.", "model.prompt_encoder.query_tokens."),
    (r"^sem_seg_head\.predictor\.pos_embed\.", "model.prompt_encoder.query_position."),
    (
        r"^sem_seg_head\.predictor\.project_cross_attention_layers\.(\d+)\.multihead_attn\.",
        r"model.prompt_encoder.layers.\1.cross_attn.",
    ),
    (
        r"^sem_seg_head\.predictor\.project_cross_attention_layers\.(\d+)\.norm\.",
        r"model.prompt_encoder.layers.\1.layer_norm.",
    ),
)


def read_reference_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The model's tensors with the `model.` prefix stripped, from `.pth` (never unpickled beyond tensors) or safetensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CorruptFileError(path, "empty (0-byte) file; expected a DINOv .pth or .safetensors checkpoint")
    if path.suffix == ".safetensors":
        state = load_safetensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # weights_only refuses anything but tensors and plain containers
            raise CorruptFileError(
                path, f"not a plain tensor checkpoint (truncated, or refused by weights_only loading): {error}"
            ) from error
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
    if not isinstance(state, dict) or not any(key.startswith("model.sem_seg_head.") for key in state):
        raise ValueError(f"{path} is not a DINOv checkpoint: no `model.sem_seg_head.*` keys")
    return {key[len("model.") :]: value for key, value in state.items() if key.startswith("model.")}


def convert_state_dict(reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference names → ours; Swin's fused qkv is split into q/k/v projections; unknown keys raise."""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in reference.items():
        if any(re.match(pattern, key) for pattern in DROPPED):
            continue
        qkv = re.match(r"^backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", key)
        if qkv:
            stage, block, kind = qkv.groups()
            for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                converted[f"model.backbone.swin.encoder.layers.{stage}.blocks.{block}.attention.{name}.{kind}"] = (
                    part.clone()
                )
            continue
        for pattern, replacement in _RENAMES:
            if re.match(pattern, key):
                converted[re.sub(pattern, replacement, key)] = tensor
                break
        else:
            raise ValueError(f"unexpected key in the DINOv checkpoint: {key}")
    return converted


def _reference_settings(path: str | Path | None) -> dict[str, Any]:
    """`MODEL.*` settings from the reference YAML/JSON (or the golden fixture's `effective` block)."""
    if path is None:
        return {}
    text = Path(path).read_text()
    try:
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as err:  # json.JSONDecodeError; yaml.YAMLError is handled below
        raise CorruptFileError(path, f"invalid JSON ({err})") from err
    except Exception as err:
        if type(err).__module__.startswith("yaml"):
            raise CorruptFileError(path, f"invalid YAML ({str(err).splitlines()[0]})") from err
        raise
    if not isinstance(data, dict):
        raise CorruptFileError(path, f"expected a mapping of settings, got {type(data).__name__}")
    model = data.get("MODEL", data.get("effective", data))
    return {
        "swin": model.get("BACKBONE", {}).get("SWIN", model.get("SWIN", {})),
        "encoder": model.get("ENCODER", {}),
        "decoder": model.get("DECODER", {}),
    }


def config_from_state_dict(reference: dict[str, torch.Tensor], settings: dict[str, Any] | None = None) -> DinovConfig:
    """Architecture from shapes; heads, points per side and thresholds from `settings` or the presets."""
    settings = settings or {}
    swin, decoder = settings.get("swin", {}), settings.get("decoder", {})
    if swin.get("PATCH_SIZE", 4) != 4:
        raise ValueError(f"only 4-pixel Swin patches exist in DINOv releases, got PATCH_SIZE={swin['PATCH_SIZE']}")
    embed_dim = reference["backbone.patch_embed.proj.weight"].shape[0]
    stages = sorted({int(m.group(1)) for k in reference if (m := re.match(r"backbone\.layers\.(\d+)\.blocks\.", k))})
    depths = [
        len({k.split(".")[4] for k in reference if k.startswith(f"backbone.layers.{s}.blocks.")}) for s in stages
    ]
    tables = [reference[f"backbone.layers.{s}.blocks.0.attn.relative_position_bias_table"] for s in stages]
    window = (int(round(tables[0].shape[0] ** 0.5)) + 1) // 2
    stage_channels = [embed_dim * 2**s for s in range(len(stages))]
    projections = sorted(
        {int(k.split(".")[3]) for k in reference if k.startswith("sem_seg_head.pixel_decoder.input_proj.")}
    )
    in_channels = [reference[f"sem_seg_head.pixel_decoder.input_proj.{i}.0.weight"].shape[1] for i in projections[:-1]]
    prefix = "sem_seg_head.pixel_decoder.transformer.encoder.layers."
    return DinovConfig(
        backbone_config=swin_backbone_config(
            embed_dim=embed_dim, depths=depths, num_heads=[t.shape[1] for t in tables], window_size=window
        ),
        hidden_size=reference["sem_seg_head.pixel_decoder.transformer.level_embed"].shape[1],
        mask_dim=reference["sem_seg_head.pixel_decoder.mask_features.weight"].shape[0],
        encoder_stages=[stage_channels.index(c) for c in in_channels],
        encoder_layers=len({k[len(prefix) :].split(".")[0] for k in reference if k.startswith(prefix)}),
        encoder_attention_heads=decoder.get("NHEADS", 8),
        encoder_n_points=4,
        feedforward_dim=reference[f"{prefix}0.linear1.weight"].shape[0],
        prompt_attention_heads=decoder.get("NHEADS", 8),
        decoder_layers=len(
            {k.split(".")[4] for k in reference if k.startswith("sem_seg_head.predictor.decoder.layers.")}
        ),
        num_queries=reference["sem_seg_head.predictor.query_feat.weight"].shape[0],
        num_granularity_tokens=reference["sem_seg_head.predictor.mask_tokens.weight"].shape[0],
        projection_dim=reference["sem_seg_head.predictor.class_embed"].shape[1],
        points_per_side=decoder.get("point_per_side", 20),
        nms_threshold=decoder.get("NMS_THRESHOLD", 0.7),
        layer_norm_eps=1e-5,
    )


def convert_dinov_checkpoint(
    checkpoint: str | Path,
    output_dir: str | Path | None = None,
    variant: str = "auto",
    reference_config: str | Path | None = None,
    overwrite: bool = False,
):
    """Load a released checkpoint into `DinovForVisualPromptSegmentation` (every key used), optionally saving it.

    Args:
        checkpoint: `model_swinT.pth` / `model_swinL.pth` (loaded with `weights_only=True`) or a `.safetensors` file
            with the release's key names.
        output_dir: write `config.json`, `model.safetensors` and `processor_config.json` (image processor settings
            nested, as transformers 5 saves processors) there, atomically.
        variant: "swin-t" / "swin-l" to check the checkpoint is that release, or "auto".
        reference_config: the reference's YAML (or JSON of the same `MODEL.*` structure) for the values shapes
            cannot tell; without it the released presets' values are used.
    """
    from hf_promptseg.models.dinov.modeling_dinov import DinovForVisualPromptSegmentation

    if variant not in ("auto", *SWIN_PRESETS):
        raise ValueError(f"`variant` must be 'auto' or one of {sorted(SWIN_PRESETS)}, got {variant!r}")
    reference = read_reference_checkpoint(checkpoint)
    config = config_from_state_dict(reference, _reference_settings(reference_config))
    if variant != "auto":
        expected = SWIN_PRESETS[variant]
        found = {key: getattr(config.backbone_config, key) for key in expected}
        if found != expected:
            raise ValueError(f"checkpoint backbone {found} is not the released {variant} ({expected})")
    model = DinovForVisualPromptSegmentation(config).eval()
    state = convert_state_dict(reference)
    expected_keys = set(model.state_dict())
    unused = {
        k for k in expected_keys if k.startswith("model.backbone.swin.layernorm.")
    }  # SwinBackbone's own final norm
    missing = sorted(expected_keys - set(state) - unused)
    unexpected = sorted(set(state) - expected_keys)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint does not fit the inferred architecture: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.load_state_dict(state, strict=False)
    if output_dir is not None:
        from hf_promptseg.models.dinov.image_processing_dinov import DinovImageProcessor
        from hf_promptseg.models.dinov.processing_dinov import DinovProcessor
        from hf_promptseg.utils.files import atomic_output_dir

        with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
            model.save_pretrained(tmp)
            DinovProcessor(DinovImageProcessor()).save_pretrained(tmp)
    return model


def _run(args: argparse.Namespace) -> int:
    convert_dinov_checkpoint(
        args.checkpoint, args.out_dir, variant=args.variant, reference_config=args.reference_config,
        overwrite=args.overwrite,
    )  # fmt: skip
    print(f"converted {args.checkpoint} -> {args.out_dir}")
    return 0


def add_cli_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dinov", help="released DINOv checkpoint -> DinovForVisualPromptSegmentation dir")
    parser.add_argument("checkpoint", help="model_swinT.pth / model_swinL.pth or a .safetensors export")
    parser.add_argument("out_dir", help="output directory (created; must be empty unless --overwrite)")
    parser.add_argument("--variant", default="auto", choices=["auto", *SWIN_PRESETS])
    parser.add_argument("--reference-config", help="the reference's YAML/JSON config (heads, point grid, thresholds)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.set_defaults(func=_run)


__all__ = ["convert_dinov_checkpoint", "convert_state_dict", "config_from_state_dict", "read_reference_checkpoint"]
