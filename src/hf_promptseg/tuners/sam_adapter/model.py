"""`SamAdapterModel`: the PEFT tuner that attaches SAM-Adapter layers to SAM vision encoders."""

from __future__ import annotations

from peft.tuners.tuners_utils import BaseTuner
from peft.utils.other import AuxiliaryTrainingWrapper
from torch import nn

from hf_promptseg.tuners.sam_adapter.config import SamAdapterConfig
from hf_promptseg.tuners.sam_adapter.layer import SamAdapterLayer

ADAPTER_ATTRIBUTE = "sam_adapter"  # must not start with the prefix, or transformers' key renaming would misfire


def _check_encoder_matches(config: SamAdapterConfig, encoder: nn.Module) -> None:
    """Record the encoder's width/depth in a new config; refuse an encoder of another size for a saved one."""
    if not (hasattr(encoder, "layers") and hasattr(encoder, "config")):
        return  # not a SAM encoder: SamAdapterLayer raises the TypeError
    hidden_size, depth = int(encoder.config.hidden_size), len(encoder.layers)
    if config.encoder_hidden_size is None and config.encoder_depth is None:
        config.encoder_hidden_size, config.encoder_depth = hidden_size, depth
        return
    if (config.encoder_hidden_size, config.encoder_depth) != (hidden_size, depth):
        raise ValueError(
            f"this SAM-Adapter was made for an encoder of width {config.encoder_hidden_size} and depth "
            f"{config.encoder_depth}, but the base model's encoder has width {hidden_size} and depth {depth}"
        )


class SamAdapterModel(BaseTuner):
    """Creates SAM-Adapter prompts over a frozen SAM (or SAM-HQ) image encoder; used via `peft.get_peft_model`."""

    prefix: str = "sam_adapter_"
    tuner_layer_cls = SamAdapterLayer
    target_module_mapping = {
        "sam": ["vision_encoder"],
        "sam_hq": ["vision_encoder"],
        "hf_promptseg_sam": ["vision_encoder"],
    }

    def _create_and_replace(
        self,
        peft_config: SamAdapterConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
    ) -> None:
        _check_encoder_matches(peft_config, target)
        existing = getattr(target, ADAPTER_ATTRIBUTE, None)
        if isinstance(existing, SamAdapterLayer):
            existing.update_layer(adapter_name, peft_config)
            return
        layer = SamAdapterLayer(target, adapter_name, peft_config)
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
            if isinstance(layer, SamAdapterLayer):
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
