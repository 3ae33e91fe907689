"""Import released SAM-Adapter checkpoints (tianrun-chen/SAM-Adapter-PyTorch) as a SAM base + a PEFT adapter.

A reference checkpoint is the flat state dict of the whole trained model: the frozen segment-anything encoder with
its `prompt_generator` (the adapter), the fine-tuned mask decoder, and top-level `pe_layer` / `no_mask_embed`
(random at the start of training and saved afterwards; the decoder depends on both). It has no point/box prompt
encoder. We write:

- `OUT_DIR/base`: a `SamModel` directory (the encoder, and the rest of SAM from `--base` when given);
- `OUT_DIR/adapter`: a PEFT adapter (`adapter_config.json` + `adapter_model.safetensors`) with the generator and,
  as `modules_to_save`, the fine-tuned decoder, `no_mask_embed` and the positional Gaussian matrix
  (`shared_image_embedding`).

`PeftModel.from_pretrained(SamModel.from_pretrained(OUT_DIR / "base"), OUT_DIR / "adapter")` then reproduces the
reference's prompt-free output.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from peft import PeftModel, get_peft_model
from transformers import SamModel

from hf_promptseg.hub import write_model_card
from hf_promptseg.models.sam.convert_sam_checkpoint import (
    build_sam_processor,
    convert_sam_state_dict,
    detect_checkpoint_family,
    infer_sam_config,
)
from hf_promptseg.tuners.sam_adapter import SamAdapterConfig, SamAdapterLayer
from hf_promptseg.utils import atomic_output_dir, load_checkpoint_state_dict

GENERATOR_PREFIX = "image_encoder.prompt_generator."
CONVERTED_MODULES_TO_SAVE = ["mask_decoder", "no_mask_embed", "shared_image_embedding"]
_GENERATOR_RENAMES = (
    (re.compile(r"^embedding_generator\.(weight|bias)$"), r"sam_adapter_embedding_generator.\1"),
    (re.compile(r"^prompt_generator\.proj\.(weight|bias)$"), r"sam_adapter_handcrafted_generator.\1"),
    (re.compile(r"^shared_mlp\.(weight|bias)$"), r"sam_adapter_shared_mlp.\1"),
    (re.compile(r"^lightweight_mlp_(\d+)\.0\.(weight|bias)$"), r"sam_adapter_lightweight_mlp_\1.\2"),
)


def split_sam_adapter_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(segment-anything-named SAM part, adapter part named like `SamAdapterLayer` without the adapter name)."""
    generator = {k[len(GENERATOR_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(GENERATOR_PREFIX)}
    if not generator:
        raise ValueError(
            f"no adapter keys ({GENERATOR_PREFIX}*) in the checkpoint: this is not a SAM-Adapter checkpoint "
            f"(detected family: {detect_checkpoint_family(state_dict)})"
        )
    adapter = {}
    for key, tensor in generator.items():
        for pattern, replacement in _GENERATOR_RENAMES:
            if pattern.match(key):
                adapter[pattern.sub(replacement, key)] = tensor
                break
        else:
            raise ValueError(f"unknown adapter key {GENERATOR_PREFIX}{key} in the checkpoint")
    sam = {k: v for k, v in state_dict.items() if not k.startswith(GENERATOR_PREFIX)}
    for top_level in ("pe_layer.positional_encoding_gaussian_matrix", "no_mask_embed.weight"):
        if top_level not in sam:
            raise ValueError(f"the checkpoint lacks `{top_level}`, which SAM-Adapter's decoder depends on")
        sam["prompt_encoder." + top_level] = sam.pop(top_level)
    return sam, adapter


def _check_adapter_shapes(adapter: Mapping[str, torch.Tensor], hidden_size: int, depth: int) -> int:
    width = adapter["sam_adapter_shared_mlp.weight"].shape[1]
    layers = sorted({int(k.split("_")[-1].split(".")[0]) for k in adapter if k.startswith("sam_adapter_lightweight")})
    if adapter["sam_adapter_shared_mlp.weight"].shape[0] != hidden_size or layers != list(range(depth)):
        raise ValueError(
            f"the adapter does not fit its encoder: up-projection to {adapter['sam_adapter_shared_mlp.weight'].shape[0]} "
            f"channels and {len(layers)} per-layer MLPs, but the encoder has width {hidden_size} and depth {depth}"
        )
    if hidden_size % width:
        raise ValueError(f"adapter width {width} does not divide the encoder width {hidden_size}")
    return hidden_size // width


def build_sam_adapter_model(
    state_dict: Mapping[str, torch.Tensor],
    embedding_layout: str = "reference",
    base_model: SamModel | None = None,
) -> PeftModel:
    """A `PeftModel` (SamModel + SAM-Adapter) holding a reference checkpoint's weights, in memory.

    `base_model` supplies the parts SAM-Adapter checkpoints lack (point/box/mask prompt encoder); its encoder must
    have the checkpoint's shapes. Without it those parts keep their initialisation (unused without prompts).
    """
    sam_part, adapter = split_sam_adapter_state_dict(state_dict)
    config = infer_sam_config(sam_part)
    vision = config.vision_config
    scale_factor = _check_adapter_shapes(adapter, vision.hidden_size, vision.num_hidden_layers)
    converted = convert_sam_state_dict(sam_part)
    if base_model is None:
        base_model = SamModel(config)
    else:
        base_vision = base_model.config.vision_config
        if (base_vision.hidden_size, base_vision.num_hidden_layers) != (vision.hidden_size, vision.num_hidden_layers):
            raise ValueError(
                f"`base` has encoder width {base_vision.hidden_size} and depth {base_vision.num_hidden_layers}, the "
                f"checkpoint {vision.hidden_size} and {vision.num_hidden_layers}"
            )
        base_model.config.mask_decoder_config.layer_norm_eps = config.mask_decoder_config.layer_norm_eps
        for layer in base_model.mask_decoder.modules():
            if isinstance(layer, torch.nn.LayerNorm):
                layer.eps = config.mask_decoder_config.layer_norm_eps
    expected = base_model.state_dict()
    mismatched = [k for k, v in converted.items() if k in expected and expected[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"checkpoint tensors do not fit the base model, e.g. {mismatched[:3]}")
    base_model.load_state_dict({k: v for k, v in converted.items() if k in expected}, strict=False)
    base_model.prompt_encoder.shared_embedding.positional_embedding = (
        base_model.shared_image_embedding.positional_embedding
    )
    model = get_peft_model(
        base_model.eval(),
        SamAdapterConfig(
            scale_factor=scale_factor, embedding_layout=embedding_layout, modules_to_save=CONVERTED_MODULES_TO_SAVE
        ),
    )
    layer = model.base_model.model.vision_encoder.sam_adapter
    assert isinstance(layer, SamAdapterLayer)
    with torch.no_grad():
        for key, tensor in adapter.items():
            module_name, parameter = key.split(".")
            getattr(getattr(layer, module_name)["default"], parameter).copy_(tensor)
    return model.eval()


def convert_sam_adapter_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    embedding_layout: str = "reference",
    base: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert a reference SAM-Adapter checkpoint to `OUT_DIR/base` (SamModel) + `OUT_DIR/adapter` (PEFT).

    Args:
        checkpoint: `model_epoch_best.pth` (read with `weights_only=True`) or `.safetensors` of the reference.
        out_dir: output directory; must be empty or absent unless `overwrite`.
        embedding_layout: `"reference"` (token order the released weights were trained with) or `"bhwc"`.
        base: SAM directory or repo id supplying the prompt encoder the checkpoint lacks (its encoder must match).
        overwrite: replace a non-empty `out_dir`.

    Example:
        >>> from hf_promptseg.models.sam_adapter import convert_sam_adapter_checkpoint
        >>> convert_sam_adapter_checkpoint("model_epoch_best.pth", "cod-adapter", base="facebook/sam-vit-huge")  # doctest: +SKIP
    """
    state_dict = load_checkpoint_state_dict(checkpoint)
    base_model = SamModel.from_pretrained(base, dtype=torch.float32) if base is not None else None
    model = build_sam_adapter_model(state_dict, embedding_layout=embedding_layout, base_model=base_model)
    out_dir = Path(out_dir)
    final_base = (out_dir / "base").resolve()
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        sam = model.base_model.model
        plain = SamModel(sam.config)
        plain.load_state_dict(_base_weights(sam.state_dict()), strict=True)
        plain.save_pretrained(tmp / "base")
        processor = build_sam_processor(sam.config)
        processor.save_pretrained(tmp / "base")
        processor.image_processor.save_pretrained(tmp / "base")
        write_model_card(tmp / "base", kind="sam", repo_id="base", source=Path(checkpoint).name)
        model.peft_config["default"].base_model_name_or_path = str(base) if base is not None else str(final_base)
        model.save_pretrained(tmp / "adapter")
        write_model_card(tmp / "adapter", repo_id="adapter", source=Path(checkpoint).name)
    return out_dir


def _base_weights(wrapped_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The plain `SamModel` weights under a PEFT wrapping: no adapter, original copies of `modules_to_save`."""
    return {
        key.replace(".original_module.", "."): tensor
        for key, tensor in wrapped_state.items()
        if ".sam_adapter." not in key and ".modules_to_save." not in key
    }


def add_cli_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sam-adapter",
        help="import a SAM-Adapter checkpoint as a SAM base + PEFT adapter",
        description=convert_sam_adapter_checkpoint.__doc__.split("\n\n")[0],
    )
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--layout", choices=("reference", "bhwc"), default="reference")
    parser.add_argument("--base", default=None, help="SAM dir or repo id for the parts the checkpoint lacks")
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    out = convert_sam_adapter_checkpoint(args.checkpoint, args.out_dir, args.layout, args.base, args.overwrite)
    print(f"wrote {out / 'base'} and {out / 'adapter'}")
    return 0
