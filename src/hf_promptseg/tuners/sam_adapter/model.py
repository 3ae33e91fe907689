"""`SamAdapterModel`: the PEFT tuner that attaches SAM-Adapter layers to SAM ViT and SAM2 Hiera encoders."""

from __future__ import annotations

from peft.tuners.tuners_utils import BaseTuner
from peft.utils.other import AuxiliaryTrainingWrapper
from torch import nn

from hf_promptseg.tuners.sam_adapter.config import SamAdapterConfig
from hf_promptseg.tuners.sam_adapter.layer import PromptAdapterLayer, SamAdapterLayer
from hf_promptseg.tuners.sam_adapter.layer_hiera import Sam2HieraAdapterLayer, find_hiera_backbone

ADAPTER_ATTRIBUTE = "sam_adapter"  # must not start with the prefix, or transformers' key renaming would misfire

LAYER_CLASSES: dict[str, type[PromptAdapterLayer]] = {
    "sam_vit": SamAdapterLayer,
    "sam2_hiera": Sam2HieraAdapterLayer,
}
ENCODER_NAMES = {"sam_vit": "SAM / SAM-HQ ViT", "sam2_hiera": "SAM2 Hiera"}
# What prompt-free decoding depends on besides the encoder: SAM decodes from `no_mask_embed` alone; SAM2 pads the
# missing prompt with not-a-point tokens. SAM2's `no_memory_embedding` is a bare parameter that PEFT cannot wrap;
# it only offsets the same feature map `no_mask_embed` offsets, so it is left frozen.
DEFAULT_MODULES_TO_SAVE = {
    "sam_vit": ["mask_decoder", "no_mask_embed"],
    "sam2_hiera": ["mask_decoder", "no_mask_embed", "not_a_point_embed"],
}


def describe_encoder(encoder: nn.Module, key: str) -> tuple[str, list[int], list[int]]:
    """(encoder kind, width per stage, blocks per stage) of a targeted vision encoder; TypeError if unsupported."""
    if all(hasattr(encoder, name) for name in ("patch_embed", "layers", "config")):
        return "sam_vit", [int(encoder.config.hidden_size)], [len(encoder.layers)]
    backbone = find_hiera_backbone(encoder)
    if backbone is not None:
        widths = [int(width) for width in backbone.config.embed_dim_per_stage]
        return "sam2_hiera", widths, [int(depth) for depth in backbone.config.blocks_per_stage]
    inner = getattr(encoder, "backbone", None)
    found = type(encoder).__name__ + (f" with a {type(inner).__name__} backbone" if inner is not None else "")
    raise TypeError(
        f"SAM-Adapter needs a SAM / SAM-HQ ViT encoder ('sam_vit') or a SAM2 Hiera encoder ('sam2_hiera'), but the "
        f"targeted module `{key}` is a {found}"
    )


def _mismatch(config: SamAdapterConfig, message: str) -> ValueError:
    """A `ValueError`; a `CorruptFileError` naming the adapter config when `config` was loaded from a directory."""
    source = getattr(config, "_checked_source", None)
    if source is None:
        return ValueError(message)
    from hf_promptseg.models.sam_adapter.loading import CONFIG_FILE, MISMATCH_HINT
    from hf_promptseg.utils.files import CorruptFileError

    return CorruptFileError(source / CONFIG_FILE, f"{message}; {MISMATCH_HINT}")


def _check_encoder_matches(config: SamAdapterConfig, kind: str, widths: list[int], depths: list[int]) -> None:
    """Refuse an encoder of another kind or size than the config records; record what is not recorded yet."""
    sized = config.encoder_hidden_size is not None or config.encoder_depth is not None
    recorded = config.encoder_type or ("sam_vit" if sized else None)  # pre-SAM2 configs only knew the SAM ViT
    if recorded is not None and recorded != kind:
        raise _mismatch(
            config,
            f"this SAM-Adapter was made for a '{recorded}' ({ENCODER_NAMES[recorded]}) encoder, but the base model's "
            f"encoder is '{kind}' ({ENCODER_NAMES[kind]}); adapters do not transfer between encoder kinds",
        )
    if kind == "sam_vit" and sized and (config.encoder_hidden_size, config.encoder_depth) != (widths[0], depths[0]):
        raise _mismatch(
            config,
            f"this SAM-Adapter was made for an encoder of width {config.encoder_hidden_size} and depth "
            f"{config.encoder_depth}, but the base model's encoder has width {widths[0]} and depth {depths[0]}",
        )
    stages = (config.encoder_stage_widths, config.encoder_stage_depths)
    if (
        kind == "sam2_hiera"
        and stages != (None, None)
        and (list(stages[0] or []), list(stages[1] or []))
        != (
            widths,
            depths,
        )
    ):
        raise _mismatch(
            config,
            f"this SAM2-Adapter was made for a Hiera encoder with stage widths {stages[0]} and blocks per stage "
            f"{stages[1]}, but the base model's encoder has stage widths {widths} and blocks per stage {depths}",
        )
    config.encoder_type = kind
    config.encoder_hidden_size, config.encoder_depth = widths[0], sum(depths)
    config.encoder_stage_widths, config.encoder_stage_depths = list(widths), list(depths)


class SamAdapterModel(BaseTuner):
    """Creates SAM-Adapter prompts over a frozen SAM, SAM-HQ or SAM2 image encoder; used via `peft.get_peft_model`.

    The encoder kind is read off the targeted module (a ViT with `patch_embed`/`layers`, or a Hiera trunk with
    `patch_embed`/`blocks`/`stage_ends`), recorded in the config and dispatched to `SamAdapterLayer` or
    `Sam2HieraAdapterLayer`. Other SAM-family encoders (SAM3's ViT, EdgeTAM's timm RepViT) are refused.
    """

    prefix: str = "sam_adapter_"
    tuner_layer_cls = PromptAdapterLayer
    target_module_mapping = {
        "sam": ["vision_encoder"],
        "sam_hq": ["vision_encoder"],
        "hf_promptseg_sam": ["vision_encoder"],
        "sam2": ["vision_encoder"],
        "hf_promptseg_sam2": ["vision_encoder"],
    }

    def inject_adapter(self, model: nn.Module, adapter_name: str, *args, **kwargs) -> None:
        """PEFT's injection; when the config was loaded from an adapter directory, the saved weights' shapes are then
        compared with the layers just made and the base's `modules_to_save` (`check_adapter_fits_model`), so weights
        saved for another base model fail by file and key before PEFT or transformers load a tensor."""
        from hf_promptseg.models.sam_adapter.loading import check_adapter_fits_model, take_adapter_source

        config = self.peft_config[adapter_name]
        config._checked_source = take_adapter_source(config)
        try:
            super().inject_adapter(model, adapter_name, *args, **kwargs)
            if config._checked_source is not None:
                check_adapter_fits_model(config._checked_source, model, adapter_name)
        finally:
            del config._checked_source

    def _create_and_replace(
        self,
        peft_config: SamAdapterConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
    ) -> None:
        kind, widths, depths = describe_encoder(target, current_key)
        _check_encoder_matches(peft_config, kind, widths, depths)
        if peft_config.modules_to_save is None:
            peft_config.modules_to_save = list(DEFAULT_MODULES_TO_SAVE[kind])
        existing = getattr(target, ADAPTER_ATTRIBUTE, None)
        if isinstance(existing, PromptAdapterLayer):
            existing.update_layer(adapter_name, peft_config)
            return
        layer = LAYER_CLASSES[kind](target, adapter_name, peft_config)
        target.add_module(ADAPTER_ATTRIBUTE, layer)
        if adapter_name not in self.active_adapters:
            layer.requires_grad_(False)

    def _check_merge_allowed(self) -> None:
        raise ValueError("SAM-Adapter prompts depend on the input image and cannot be merged; use `unload()`")

    def _unload_and_optionally_merge(self, merge=True, progressbar=False, safe_merge=False, adapter_names=None):
        if merge:
            self._check_merge_allowed()
        for module in list(self.model.modules()):
            layer = getattr(module, ADAPTER_ATTRIBUTE, None)
            if isinstance(layer, PromptAdapterLayer):
                layer.remove_hooks()
                delattr(module, ADAPTER_ATTRIBUTE)
        # PEFT's generic unloading copies `.weight` onto the unwrapped module, which whole-module `modules_to_save`
        # such as the mask decoder do not have; swap each wrapper for the module it serves instead.
        for name, module in list(self.model.named_modules()):
            if isinstance(module, AuxiliaryTrainingWrapper):
                parent_name, _, child_name = name.rpartition(".")
                parent = self.model.get_submodule(parent_name) if parent_name else self.model
                unwrapped = module.unload_and_optionally_merge_module(False, False, adapter_names)
                setattr(parent, child_name, unwrapped)
        if hasattr(self.model, "peft_config"):
            del self.model.peft_config
        return self.model
