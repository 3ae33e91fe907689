"""The SAM-Adapter tuner layer: per-layer prompts injected into a SAM vision encoder through module hooks.

The layer sits beside the encoder's own modules (`vision_encoder.sam_adapter`) and never wraps them, so the base
state-dict keys stay unchanged and transformers' encoder forward (SDPA, activation checkpointing, output recording,
`torch.compile`) runs as is. Three hooks do the work: the patch embedding's forward hook computes the adapter input
`F = F_hfc + F_pe` once per image, a forward pre-hook on every `SamVisionLayer` adds `MLP_up(GELU(MLP_tune_i(F)))`
to the hidden state, and the encoder's own hooks clear the cached `F` so nothing leaks between calls.
`PromptAdapterLayer` holds what this layer shares with SAM2's `Sam2HieraAdapterLayer` (`layer_hiera.py`).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from hf_promptseg.tuners.sam_adapter.config import SamAdapterConfig


@functools.lru_cache(maxsize=16)
def _low_frequency_square(height: int, width: int, rate: float) -> torch.Tensor:
    """1 on the centred square of the shifted spectrum holding `rate` of its area (the part SAM-Adapter drops)."""
    line = int(math.sqrt(height * width * rate) // 2)
    mask = torch.zeros(height, width)
    mask[height // 2 - line : height // 2 + line, width // 2 - line : width // 2 + line] = 1.0
    return mask


def highpass_magnitude(pixel_values: torch.Tensor, rate: float) -> torch.Tensor:
    """|high-pass(image)| per channel: the FFT spectrum without its central `rate` area, transformed back.

    Always computed in float32 with autocast off (half-precision FFTs are restricted to power-of-two sizes and
    bfloat16 FFTs do not exist).
    """
    with torch.autocast(device_type=pixel_values.device.type, enabled=False):
        image = pixel_values.float()
        height, width = image.shape[-2:]
        keep = 1.0 - _low_frequency_square(height, width, float(rate)).to(image.device)
        spectrum = torch.fft.fftshift(torch.fft.fft2(image, norm="forward"), dim=(-2, -1)) * keep
        return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1)), norm="forward").real.abs()


def init_reference(module: nn.Module) -> None:
    """SAM-Adapter's init: N(0, 0.02) linears (the truncation at ±2 never bites), He-normal (fan-out) convs."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
    else:
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        nn.init.normal_(module.weight, std=math.sqrt(2.0 / fan_out))
    nn.init.zeros_(module.bias)


class PromptAdapterLayer(nn.Module, BaseTunerLayer):
    """What every SAM-Adapter layer shares: per-pass feature cache, hook bookkeeping, no merging.

    Subclasses build their generators in `update_layer`, fill `self._features` from the patch-embedding hook and
    add prompts in block pre-hooks; the encoder's own pre-/post-hooks reset the cache around each pass.
    """

    freq_nums: dict[str, float]
    _hooks: list

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        raise ValueError("SAM-Adapter prompts depend on the input image and cannot be merged; use `unload()`")

    def _running_adapters(self) -> list[str]:
        if self.disable_adapters:
            return []
        return [name for name in self.active_adapters if name in self.freq_nums]

    def _start_encoder_pass(self, module, args) -> None:
        self._features = {}

    def _end_encoder_pass(self, module, args, output) -> None:
        self._features = None

    def remove_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self._features = None


class SamAdapterLayer(PromptAdapterLayer):
    """Holds every adapter's generator for one SAM vision encoder and injects their prompts through hooks."""

    other_param_names = ("freq_nums", "embedding_layout")

    def __init__(self, encoder: nn.Module, adapter_name: str, config: SamAdapterConfig) -> None:
        nn.Module.__init__(self)
        if not all(hasattr(encoder, name) for name in ("patch_embed", "layers", "config")):
            raise TypeError(
                f"SAM-Adapter needs a SAM vision encoder with `patch_embed` and `layers`, got {type(encoder).__name__}"
            )
        # The encoder is the hooked module, not a child: registering it would duplicate its weights in our keys.
        object.__setattr__(self, "_encoder", encoder)
        self.hidden_size = int(encoder.config.hidden_size)
        self.patch_size = int(encoder.config.patch_size)
        self.num_layers = len(encoder.layers)
        self.adapter_layer_names = (
            "sam_adapter_embedding_generator",
            "sam_adapter_handcrafted_generator",
            "sam_adapter_shared_mlp",
            *(f"sam_adapter_lightweight_mlp_{index}" for index in range(self.num_layers)),
        )
        for name in self.adapter_layer_names:
            setattr(self, name, nn.ModuleDict())
        self.freq_nums: dict[str, float] = {}
        self.embedding_layout: dict[str, str] = {}
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        self._active_adapter = adapter_name
        self._features: dict[str, torch.Tensor] | None = None
        self.update_layer(adapter_name, config)
        self._hooks = [
            encoder.register_forward_pre_hook(self._start_encoder_pass),
            encoder.register_forward_hook(self._end_encoder_pass),
            encoder.patch_embed.register_forward_hook(self._compute_features),
            *(
                layer.register_forward_pre_hook(functools.partial(self._add_prompt, index))
                for index, layer in enumerate(encoder.layers)
            ),
        ]

    def get_base_layer(self) -> nn.Module:
        """The patch projection: where PEFT looks up the device and dtype the adapter should follow."""
        return self._encoder.patch_embed.projection

    def update_layer(self, adapter_name: str, config: SamAdapterConfig) -> None:
        width = self.hidden_size // config.scale_factor
        if width < 1:
            raise ValueError(
                f"`scale_factor` {config.scale_factor} leaves no adapter channels for hidden size {self.hidden_size}"
            )
        self.freq_nums[adapter_name] = config.freq_nums
        self.embedding_layout[adapter_name] = config.embedding_layout
        self.sam_adapter_embedding_generator[adapter_name] = nn.Linear(self.hidden_size, width)
        self.sam_adapter_handcrafted_generator[adapter_name] = nn.Conv2d(
            3, width, kernel_size=self.patch_size, stride=self.patch_size
        )
        self.sam_adapter_shared_mlp[adapter_name] = nn.Linear(width, self.hidden_size)
        for index in range(self.num_layers):
            getattr(self, f"sam_adapter_lightweight_mlp_{index}")[adapter_name] = nn.Linear(width, width)
        self._initialise(adapter_name, config.init_weights)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters)

    @torch.no_grad()
    def _initialise(self, adapter_name: str, init_weights: str) -> None:
        for name in self.adapter_layer_names:
            init_reference(getattr(self, name)[adapter_name])
        if init_weights == "zero_up":
            nn.init.zeros_(self.sam_adapter_shared_mlp[adapter_name].weight)

    def adapter_inputs(
        self, adapter_name: str, pixel_values: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(F_hfc, F_pe), each (B, H·W, c): the high-pass feature and the patch-embedding projection."""
        batch, height, width, channels = tokens.shape
        conv = self.sam_adapter_handcrafted_generator[adapter_name]
        highpass = highpass_magnitude(pixel_values, self.freq_nums[adapter_name]).to(conv.weight.dtype)
        handcrafted = conv(highpass).flatten(2).transpose(1, 2)
        if self.embedding_layout[adapter_name] == "reference":
            # Bug-compatible with the released checkpoints: a (B, C, HW) view of the BHWC tensor, not a permute.
            embedding_input = tokens.reshape(batch, channels, height * width).transpose(1, 2)
        else:
            embedding_input = tokens.reshape(batch, height * width, channels)
        generator = self.sam_adapter_embedding_generator[adapter_name]
        return handcrafted, generator(embedding_input.to(generator.weight.dtype))

    def layer_prompt(self, adapter_name: str, index: int, features: torch.Tensor) -> torch.Tensor:
        """The prompt (B, H·W, C) that adapter `adapter_name` adds before encoder layer `index`."""
        tune = getattr(self, f"sam_adapter_lightweight_mlp_{index}")[adapter_name]
        return self.sam_adapter_shared_mlp[adapter_name](F.gelu(tune(features)))

    def _compute_features(self, module, args, tokens: torch.Tensor) -> None:
        if self._features is None or not args:
            return
        for name in self._running_adapters():
            handcrafted, embedding = self.adapter_inputs(name, args[0], tokens)
            self._features[name] = handcrafted + embedding

    def _add_prompt(self, index: int, module, args):
        if not self._features:
            return None
        hidden_states = args[0]
        prompt = sum(self.layer_prompt(name, index, features) for name, features in self._features.items())
        return (hidden_states + prompt.reshape(hidden_states.shape).to(hidden_states.dtype), *args[1:])
