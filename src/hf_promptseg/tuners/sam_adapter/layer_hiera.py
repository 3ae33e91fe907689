"""SAM2-Adapter: SAM-Adapter's per-block prompts on SAM2's multi-scale Hiera encoder, injected through hooks.

Hiera's stages halve the token grid and double the width, so one prompt width does not fit every block. A block
receives the tokens of its *input stage*: the stage of the block before it (the q-pooling block that opens a stage
still consumes the previous stage's grid and width). For every input stage `g` of width `C_g` the adapter has,
with `c_g = C_g // scale_factor`:

- `F_g = pool_g(conv_g(|highpass(image)|) + W_g · patch_tokens)`: SAM-Adapter's two task features, a conv with the
  patch embedding's own kernel/stride/padding over the FFT high-pass image (so it lands on the patch grid) plus a
  linear projection `C_0 -> c_g` of the patch embeddings, average-pooled with the query strides Hiera applies
  before stage `g` (the same floor arithmetic as its max-pool q-pooling, so the grids match for any image size);
- `MLP_up_g: c_g -> C_g`, shared by the blocks of input stage `g`;

and every block `i` has its own `MLP_tune_i: c_g -> c_g`. Block `i` gets `MLP_up_g(GELU(MLP_tune_i(F_g)))` added
to its input. Like SAM-Adapter the prompts depend on the image only, not on the running hidden state. The layer
lives at `vision_encoder.sam_adapter` and never wraps a base module, so base state-dict keys are unchanged.
"""

from __future__ import annotations

import bisect
import functools

import torch
import torch.nn.functional as F
from torch import nn

from hf_promptseg.tuners.sam_adapter.config import SamAdapterConfig
from hf_promptseg.tuners.sam_adapter.layer import PromptAdapterLayer, highpass_magnitude, init_reference

HIERA_ATTRIBUTES = ("patch_embed", "blocks", "stage_ends", "config")


def find_hiera_backbone(encoder: nn.Module) -> nn.Module | None:
    """The Hiera trunk of a SAM2 vision encoder (`Sam2VisionModel.backbone`), or the module itself if it is one."""
    for candidate in (getattr(encoder, "backbone", None), encoder):
        if candidate is not None and all(hasattr(candidate, name) for name in HIERA_ATTRIBUTES):
            if hasattr(candidate.config, "embed_dim_per_stage"):
                return candidate
    return None


def hiera_block_stages(backbone: nn.Module) -> list[int]:
    """The input stage of every block: 0 for the first block, else the stage of the block before it."""
    stage_ends = list(backbone.stage_ends)
    return [0 if index == 0 else bisect.bisect_left(stage_ends, index - 1) for index in range(len(backbone.blocks))]


class Sam2HieraAdapterLayer(PromptAdapterLayer):
    """Holds every adapter's per-stage generators for one SAM2 Hiera encoder and injects their prompts via hooks."""

    other_param_names = ("freq_nums",)

    def __init__(self, encoder: nn.Module, adapter_name: str, config: SamAdapterConfig) -> None:
        nn.Module.__init__(self)
        backbone = find_hiera_backbone(encoder)
        if backbone is None:
            raise TypeError(
                f"SAM2-Adapter needs a SAM2 Hiera encoder (`patch_embed`, `blocks`, `stage_ends`), "
                f"got {type(encoder).__name__}"
            )
        # The backbone is the hooked module, not a child: registering it would duplicate its weights in our keys.
        object.__setattr__(self, "_backbone", backbone)
        self.stage_widths = [int(width) for width in backbone.config.embed_dim_per_stage]
        self.block_stages = hiera_block_stages(backbone)
        self.stages = sorted(set(self.block_stages))
        self.stage_pool_strides = self._pool_strides(backbone)
        self.adapter_layer_names = (
            *(f"sam_adapter_handcrafted_generator_stage{stage}" for stage in self.stages),
            *(f"sam_adapter_embedding_generator_stage{stage}" for stage in self.stages),
            *(f"sam_adapter_shared_mlp_stage{stage}" for stage in self.stages),
            *(f"sam_adapter_lightweight_mlp_{index}" for index in range(len(self.block_stages))),
        )
        for name in self.adapter_layer_names:
            setattr(self, name, nn.ModuleDict())
        self.freq_nums: dict[str, float] = {}
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        self._active_adapter = adapter_name
        self._features: dict[str, dict[int, torch.Tensor]] | None = None
        self.update_layer(adapter_name, config)
        self._hooks = [
            backbone.register_forward_pre_hook(self._start_encoder_pass),
            backbone.register_forward_hook(self._end_encoder_pass),
            backbone.patch_embed.register_forward_hook(self._compute_features),
            *(
                block.register_forward_pre_hook(functools.partial(self._add_prompt, index))
                for index, block in enumerate(backbone.blocks)
            ),
        ]

    def _pool_strides(self, backbone: nn.Module) -> dict[int, tuple[tuple[int, int], ...]]:
        """Per input stage, the query strides Hiera has applied to the patch grid before that stage's blocks."""
        strides: list[tuple[int, int]] = []
        per_stage: dict[int, tuple[tuple[int, int], ...]] = {}
        for block, stage in zip(backbone.blocks, self.block_stages, strict=True):
            per_stage.setdefault(stage, tuple(strides))
            if int(block.dim) != self.stage_widths[stage]:
                raise TypeError(
                    f"Hiera block input width {block.dim} does not match stage {stage}'s width "
                    f"{self.stage_widths[stage]}: unsupported encoder layout"
                )
            if block.query_stride:
                strides.append(tuple(int(step) for step in block.query_stride))
        return per_stage

    def get_base_layer(self) -> nn.Module:
        """The patch projection: where PEFT looks up the device and dtype the adapter should follow."""
        return self._backbone.patch_embed.projection

    def adapter_width(self, stage: int, scale_factor: int) -> int:
        width = self.stage_widths[stage] // scale_factor
        if width < 1:
            raise ValueError(
                f"`scale_factor` {scale_factor} leaves no adapter channels for stage {stage} of width "
                f"{self.stage_widths[stage]}"
            )
        return width

    def update_layer(self, adapter_name: str, config: SamAdapterConfig) -> None:
        if config.embedding_layout != "bhwc":
            raise ValueError(
                f"`embedding_layout` {config.embedding_layout!r} reproduces a SAM (ViT) release's token scramble and "
                "has no SAM2 counterpart; SAM2-Adapter needs 'bhwc'"
            )
        widths = {stage: self.adapter_width(stage, config.scale_factor) for stage in self.stages}
        projection = self.get_base_layer()
        self.freq_nums[adapter_name] = config.freq_nums
        for stage, width in widths.items():
            getattr(self, f"sam_adapter_handcrafted_generator_stage{stage}")[adapter_name] = nn.Conv2d(
                projection.in_channels,
                width,
                kernel_size=projection.kernel_size,
                stride=projection.stride,
                padding=projection.padding,
            )
            getattr(self, f"sam_adapter_embedding_generator_stage{stage}")[adapter_name] = nn.Linear(
                projection.out_channels, width
            )
            getattr(self, f"sam_adapter_shared_mlp_stage{stage}")[adapter_name] = nn.Linear(
                width, self.stage_widths[stage]
            )
        for index, stage in enumerate(self.block_stages):
            getattr(self, f"sam_adapter_lightweight_mlp_{index}")[adapter_name] = nn.Linear(
                widths[stage], widths[stage]
            )
        self._initialise(adapter_name, config.init_weights)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters)

    @torch.no_grad()
    def _initialise(self, adapter_name: str, init_weights: str) -> None:
        for name in self.adapter_layer_names:
            init_reference(getattr(self, name)[adapter_name])
        if init_weights == "zero_up":
            for stage in self.stages:
                nn.init.zeros_(getattr(self, f"sam_adapter_shared_mlp_stage{stage}")[adapter_name].weight)

    def stage_features(self, adapter_name: str, pixel_values: torch.Tensor, tokens: torch.Tensor) -> dict:
        """{input stage: F_g (B, h_g, w_g, c_g)} from the image and the patch tokens (B, h_0, w_0, C_0)."""
        highpass = highpass_magnitude(pixel_values, self.freq_nums[adapter_name])
        features = {}
        for stage in self.stages:
            conv = getattr(self, f"sam_adapter_handcrafted_generator_stage{stage}")[adapter_name]
            generator = getattr(self, f"sam_adapter_embedding_generator_stage{stage}")[adapter_name]
            feature = conv(highpass.to(conv.weight.dtype)) + generator(tokens.to(generator.weight.dtype)).permute(
                0, 3, 1, 2
            )
            for stride in self.stage_pool_strides[stage]:
                feature = F.avg_pool2d(feature, kernel_size=stride, stride=stride)
            features[stage] = feature.permute(0, 2, 3, 1)
        return features

    def block_prompt(self, adapter_name: str, index: int, feature: torch.Tensor) -> torch.Tensor:
        """The prompt (B, h, w, C) that adapter `adapter_name` adds before Hiera block `index`."""
        stage = self.block_stages[index]
        tune = getattr(self, f"sam_adapter_lightweight_mlp_{index}")[adapter_name]
        return getattr(self, f"sam_adapter_shared_mlp_stage{stage}")[adapter_name](F.gelu(tune(feature)))

    def _compute_features(self, module, args, tokens: torch.Tensor) -> None:
        if self._features is None or not args:
            return
        for name in self._running_adapters():
            self._features[name] = self.stage_features(name, args[0], tokens)

    def _add_prompt(self, index: int, module, args):
        if not self._features:
            return None
        hidden_states = args[0]
        stage = self.block_stages[index]
        prompt = sum(self.block_prompt(name, index, features[stage]) for name, features in self._features.items())
        return (hidden_states + prompt.to(hidden_states.dtype), *args[1:])
