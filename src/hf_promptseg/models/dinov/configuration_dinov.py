"""Configuration of DINOv (visual in-context prompting): Swin backbone, deformable pixel decoder, prompt encoder, decoder."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig, SwinConfig

SWIN_PRESETS: dict[str, dict[str, Any]] = {
    "swin-t": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "window_size": 7},
    "swin-l": {"embed_dim": 192, "depths": [2, 2, 18, 2], "num_heads": [6, 12, 24, 48], "window_size": 12},
}
# released models: which backbone stages feed the deformable encoder (res3..res5 for Swin-T, res2..res5 for Swin-L)
ENCODER_STAGES = {"swin-t": [1, 2, 3], "swin-l": [0, 1, 2, 3]}


class DinovConfig(PretrainedConfig):
    r"""Configuration for [`DinovModel`] / [`DinovForVisualPromptSegmentation`].

    Defaults are the released Swin-T model (`model_swinT.pth`); `DinovConfig.from_preset("swin-l")` gives Swin-L.

    Args:
        backbone_config: a `SwinConfig` (or dict) whose `out_features` are the four stages.
        hidden_size: width of the pixel decoder, prompt encoder and decoder (`DECODER.HIDDEN_DIM`, `ENCODER.CONVS_DIM`).
        mask_dim: channels of the 1/4 mask features (`ENCODER.MASK_DIM`).
        encoder_stages: backbone stage indices (0 = stride 4) fed to the deformable encoder, high resolution first;
            one extra stride-2 level is made from the last stage.
        encoder_layers / encoder_attention_heads / encoder_n_points: deformable encoder depth, heads and points.
        feedforward_dim: FFN width of encoder and decoder layers (`DECODER.DIM_FEEDFORWARD`).
        prompt_attention_heads: heads of the visual prompt encoder's cross-attention (`DECODER.NHEADS`).
        decoder_layers / decoder_attention_heads / decoder_n_points: decoder depth, heads (8 in the reference code
            whatever `DECODER.NHEADS` says) and deformable points.
        num_queries: generic (proposal) queries (`NUM_OBJECT_QUERIES`).
        num_granularity_tokens: tokens per interactive point (`NUM_INTERACTIVE_TOKENS`).
        projection_dim: width of the generic/referring matching projections (`MODEL.DIM_PROJ`).
        points_per_side: interactive point grid of the referring task (`point_per_side`).
        point_box_size: side in pixels of the box around each interactive point.
        nms_threshold / iou_threshold / min_mask_area: referring post-filter (NMS IoU, predicted-IoU floor, minimum
            mask pixels at 1/4 resolution).
        max_prompts: most visual prompts (content queries) one forward pass takes; the referring decoder attends
            over points × tokens + prompts queries with a dense self-attention mask, so this bounds its memory.
        layer_norm_eps / group_norm_groups: normalisation constants.
    """

    model_type = "dinov"
    sub_configs = {"backbone_config": SwinConfig}

    def __init__(
        self,
        backbone_config: SwinConfig | dict | None = None,
        hidden_size: int = 256,
        mask_dim: int = 256,
        encoder_stages: list[int] | None = None,
        encoder_layers: int = 6,
        encoder_attention_heads: int = 8,
        encoder_n_points: int = 4,
        feedforward_dim: int = 2048,
        prompt_attention_heads: int = 8,
        decoder_layers: int = 9,
        decoder_attention_heads: int = 8,
        decoder_n_points: int = 4,
        num_queries: int = 300,
        num_granularity_tokens: int = 6,
        projection_dim: int = 512,
        points_per_side: int = 20,
        point_box_size: float = 6.0,
        nms_threshold: float = 0.7,
        iou_threshold: float = 0.5,
        min_mask_area: int = 50,
        max_prompts: int = 256,
        layer_norm_eps: float = 1e-5,
        group_norm_groups: int = 32,
        **kwargs: Any,
    ) -> None:
        if backbone_config is None:
            backbone_config = swin_backbone_config("swin-t")
        elif isinstance(backbone_config, dict):
            backbone_config = SwinConfig(**{k: v for k, v in backbone_config.items() if k != "model_type"})
        if not isinstance(backbone_config, SwinConfig):
            raise TypeError(f"`backbone_config` must be a SwinConfig or dict, got {type(backbone_config).__name__}")
        self.backbone_config = backbone_config
        self.hidden_size = hidden_size
        self.mask_dim = mask_dim
        self.encoder_stages = list(encoder_stages) if encoder_stages is not None else list(ENCODER_STAGES["swin-t"])
        if not self.encoder_stages or sorted(set(self.encoder_stages)) != self.encoder_stages:
            raise ValueError(f"`encoder_stages` must be increasing stage indices, got {self.encoder_stages}")
        self.encoder_layers = encoder_layers
        self.encoder_attention_heads = encoder_attention_heads
        self.encoder_n_points = encoder_n_points
        self.feedforward_dim = feedforward_dim
        self.prompt_attention_heads = prompt_attention_heads
        self.decoder_layers = decoder_layers
        self.decoder_attention_heads = decoder_attention_heads
        self.decoder_n_points = decoder_n_points
        self.num_queries = num_queries
        self.num_granularity_tokens = num_granularity_tokens
        self.projection_dim = projection_dim
        self.points_per_side = points_per_side
        self.point_box_size = point_box_size
        self.nms_threshold = nms_threshold
        self.iou_threshold = iou_threshold
        self.min_mask_area = min_mask_area
        self.max_prompts = max_prompts
        self.layer_norm_eps = layer_norm_eps
        self.group_norm_groups = group_norm_groups
        super().__init__(**kwargs)

    @property
    def num_feature_levels(self) -> int:
        """Levels of the deformable encoder and decoder memory: the chosen stages plus one extra stride-2 level."""
        return len(self.encoder_stages) + 1

    @classmethod
    def from_preset(cls, name: str, **kwargs: Any) -> DinovConfig:
        """The released `swin-t` or `swin-l` architecture (other fields overridable by keyword)."""
        if name not in SWIN_PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(SWIN_PRESETS)}")
        return cls(backbone_config=swin_backbone_config(name), encoder_stages=ENCODER_STAGES[name], **kwargs)


def swin_backbone_config(name: str | None = None, **overrides: Any) -> SwinConfig:
    """A `SwinConfig` returning the four stage maps (each through its own LayerNorm), like detectron2's D2 Swin."""
    values = {**(SWIN_PRESETS[name] if name else {}), **overrides}
    return SwinConfig(
        image_size=224,
        patch_size=4,
        mlp_ratio=4.0,
        qkv_bias=True,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        **values,
    )


__all__ = ["DinovConfig", "swin_backbone_config", "SWIN_PRESETS"]
