"""DINOv: visual in-context prompting for generic and referring segmentation, built from transformers parts.

Reused as-is: `SwinBackbone` (via `load_backbone`), Mask2Former's multi-scale deformable attention and sine position
embedding, Grounding DINO's sinusoidal box embedding and Deformable DETR's MLP head. Written here: the deformable
pixel decoder with its extra stride-64 level and high→low level order, the masked cross-attention visual prompt
encoder, the decoder with box refinement and boolean self-attention masks, and the generic/referring heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.backbone_utils import load_backbone
from transformers.models.deformable_detr.modeling_deformable_detr import DeformableDetrMLPPredictionHead
from transformers.models.grounding_dino.modeling_grounding_dino import encode_sinusoidal_position_embedding
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention,
    Mask2FormerSinePositionEmbedding,
)
from transformers.utils import ModelOutput

from hf_promptseg.models.dinov.configuration_dinov import DinovConfig

INVERSE_SIGMOID_EPS = 1e-5


def inverse_sigmoid(x: torch.Tensor, eps: float = INVERSE_SIGMOID_EPS) -> torch.Tensor:
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def content_boxes(queries: torch.Tensor) -> torch.Tensor:
    """(B, N, 4) unsigmoided reference boxes of content queries: the whole image, `inverse_sigmoid([0, 0, 1, 1])`."""
    return inverse_sigmoid(queries.new_tensor([0.0, 0.0, 1.0, 1.0])).expand(*queries.shape[:2], 4)


def _flatten_levels(maps) -> tuple[torch.Tensor, list[tuple[int, int]], torch.Tensor]:
    """(B, C, h, w) maps → (B, Σhw, C) tokens, their spatial shapes and each level's first token index."""
    shapes = [tuple(level.shape[-2:]) for level in maps]
    tokens = torch.cat([level.flatten(2).transpose(1, 2) for level in maps], 1)
    sizes = [h * w for h, w in shapes]
    return tokens, shapes, torch.tensor([0, *sizes[:-1]], device=tokens.device).cumsum(0)


@dataclass
class DinovImageFeatures(ModelOutput):
    """Backbone + pixel decoder output for one batch of images.

    Args:
        multi_scale_features: encoder levels, high → low resolution (strides 8..64 for Swin-T), (B, C, h, w) each.
        mask_features: (B, mask_dim, H/4, W/4) per-pixel embeddings.
        backbone_features: the four Swin stage maps.
    """

    multi_scale_features: tuple[torch.Tensor, ...] | None = None
    mask_features: torch.Tensor | None = None
    backbone_features: tuple[torch.Tensor, ...] | None = None


@dataclass
class DinovVisualPrompts(ModelOutput):
    """Encoded visual prompts: content queries (B, N, C), their unsigmoided boxes (B, N, 4) and the raw tokens."""

    content_queries: torch.Tensor | None = None
    content_boxes: torch.Tensor | None = None
    tokens: torch.Tensor | None = None
    mask_pyramid: tuple[torch.Tensor, ...] | None = None


@dataclass
class DinovDecoderOutput(ModelOutput):
    """`hidden_states`: decoder.layer_norm of every layer's output; `reference_boxes`: sigmoid boxes, one more entry."""

    hidden_states: tuple[torch.Tensor, ...] | None = None
    reference_boxes: tuple[torch.Tensor, ...] | None = None


@dataclass
class DinovSegmentationOutput(ModelOutput):
    """Raw predictions of one task.

    Generic: `logits` (B, Q, C) category scores (sigmoid at use), `pred_masks` (B, Q, H/4, W/4), `pred_boxes`
    (B, Q, 4) cxcywh. Referring: `match_scores` (B, N, P·K) prompt-to-proposal scores, `pred_masks` (B, P·K, H/4, W/4),
    `pred_boxes` (B, P·K, 4), `iou_scores` (B, P, K).
    """

    logits: torch.Tensor | None = None
    match_scores: torch.Tensor | None = None
    pred_masks: torch.Tensor | None = None
    pred_boxes: torch.Tensor | None = None
    iou_scores: torch.Tensor | None = None
    decoder: DinovDecoderOutput | None = None


def _conv_norm(in_channels: int, out_channels: int, config: DinovConfig, **conv_kwargs) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, **conv_kwargs), nn.GroupNorm(config.group_norm_groups, out_channels)
    )


class DinovEncoderLayer(nn.Module):
    """Post-norm deformable self-attention + ReLU FFN over all levels' tokens."""

    def __init__(self, config: DinovConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.self_attn = Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention(
            width, config.encoder_attention_heads, config.num_feature_levels, config.encoder_n_points
        )
        self.self_attn_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(width, config.feedforward_dim)
        self.fc2 = nn.Linear(config.feedforward_dim, width)
        self.final_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)

    def forward(self, hidden_states, position_embeddings, reference_points, spatial_shapes, level_start_index):
        attended, _ = self.self_attn(
            hidden_states,
            encoder_hidden_states=hidden_states,
            position_embeddings=position_embeddings,
            reference_points=reference_points,
            spatial_shapes_list=spatial_shapes,
            level_start_index=level_start_index,
        )
        hidden_states = self.self_attn_layer_norm(hidden_states + attended)
        return self.final_layer_norm(hidden_states + self.fc2(F.relu(self.fc1(hidden_states))))


class DinovPixelDecoder(nn.Module):
    """MaskDINO-style pixel decoder: deformable encoder over the chosen stages + an extra level, then one FPN step.

    Levels are ordered high → low resolution (the reverse of Mask2Former's pixel decoder).
    """

    def __init__(self, config: DinovConfig, stage_channels: list[int]) -> None:
        super().__init__()
        width = config.hidden_size
        self.stages = config.encoder_stages
        self.input_projections = nn.ModuleList(
            [_conv_norm(stage_channels[i], width, config, kernel_size=1) for i in self.stages]
            + [_conv_norm(stage_channels[self.stages[-1]], width, config, kernel_size=3, stride=2, padding=1)]
        )
        self.level_embed = nn.Parameter(torch.zeros(config.num_feature_levels, width))
        self.position_embedding = Mask2FormerSinePositionEmbedding(num_position_features=width // 2, normalize=True)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([DinovEncoderLayer(config) for _ in range(config.encoder_layers)])
        self.adapter_1 = _conv_norm(stage_channels[0], width, config, kernel_size=1, bias=False)
        self.layer_1 = nn.Sequential(
            nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(config.group_norm_groups, width),
            nn.ReLU(),
        )
        self.mask_projection = nn.Conv2d(width, config.mask_dim, kernel_size=1)

    @staticmethod
    def _reference_points(spatial_shapes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
        """Pixel centres of every level, normalised to [0, 1] (no padding mask: valid ratios are 1)."""
        points = []
        for height, width in spatial_shapes:
            y, x = torch.meshgrid(
                torch.linspace(0.5, height - 0.5, height, dtype=torch.float32, device=device),
                torch.linspace(0.5, width - 0.5, width, dtype=torch.float32, device=device),
                indexing="ij",
            )
            points.append(torch.stack((x.reshape(-1) / width, y.reshape(-1) / height), -1))
        return torch.cat(points)[None, :, None].expand(-1, -1, len(spatial_shapes), -1)

    def forward(self, stage_maps: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        stage_maps = tuple(feature.float() for feature in stage_maps)
        sources = [self.input_projections[i](stage_maps[s]) for i, s in enumerate(self.stages)]
        sources.append(self.input_projections[-1](stage_maps[self.stages[-1]]))
        hidden_states, spatial_shapes, level_start_index = _flatten_levels(sources)
        batch = sources[0].shape[0]
        position_embeddings = torch.cat(
            [
                self.position_embedding(source.shape, source.device, source.dtype).flatten(2).transpose(1, 2)
                + self.level_embed[level]
                for level, source in enumerate(sources)
            ],
            1,
        )
        sizes = [h * w for h, w in spatial_shapes]
        reference_points = self._reference_points(spatial_shapes, hidden_states.device).expand(batch, -1, -1, -1)
        for layer in self.encoder.layers:
            hidden_states = layer(
                hidden_states, position_embeddings, reference_points, spatial_shapes, level_start_index
            )
        levels = [
            part.transpose(1, 2).reshape(batch, -1, h, w)
            for part, (h, w) in zip(hidden_states.split(sizes, dim=1), spatial_shapes)
        ]
        finest = self.adapter_1(stage_maps[0])
        upsampled = F.interpolate(levels[0], size=finest.shape[-2:], mode="bilinear", align_corners=False)
        mask_features = self.mask_projection(self.layer_1(finest + upsampled))
        return tuple(levels), mask_features


class DinovPromptEncoderLayer(nn.Module):
    """Masked cross-attention from prompt tokens to one feature level (post-norm, no FFN, no key position)."""

    def __init__(self, config: DinovConfig) -> None:
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(config.hidden_size, config.prompt_attention_heads, batch_first=True)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, tokens, query_position, memory, blocked):
        attended = self.cross_attn(tokens + query_position, memory, memory, attn_mask=blocked, need_weights=False)[0]
        return self.layer_norm(tokens + attended)


class DinovPromptEncoder(nn.Module):
    """Visual prompt encoder: each prompt mask pools the reference image's features, coarse level first."""

    def __init__(self, config: DinovConfig) -> None:
        super().__init__()
        self.heads = config.prompt_attention_heads
        self.query_tokens = nn.Embedding(1, config.hidden_size)
        self.query_position = nn.Embedding(1, config.hidden_size)
        self.layers = nn.ModuleList([DinovPromptEncoderLayer(config) for _ in range(config.num_feature_levels)])

    @staticmethod
    def mask_pyramid(masks: torch.Tensor, level_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Cascaded bilinear downsampling of (B, N, Hp, Wp) masks: halvings down to the finest level, then each level.

        Each step starts from the previous result (not from the full-size mask), as the reference does.
        """
        height, width = masks.shape[-2:]
        halvings = int(math.log2(height / level_sizes[0][0])) - 1
        sizes = [(int(height / 2**i), int(width / 2**i)) for i in range(1, halvings + 1)] + list(level_sizes)
        pyramid, current = [], masks.float()
        for size in sizes:
            current = F.interpolate(current, size=size, mode="bilinear", align_corners=False)
            pyramid.append(current)
        return pyramid

    def forward(self, multi_scale_features: tuple[torch.Tensor, ...], masks: torch.Tensor):
        """Tokens (B, N, C) for (B, N, Hp, Wp) masks (> 0 = prompt) on images whose features are given."""
        levels = len(multi_scale_features)
        pyramid = self.mask_pyramid(masks, [tuple(f.shape[-2:]) for f in multi_scale_features])
        batch, prompts = masks.shape[:2]
        tokens = self.query_tokens.weight[None].expand(batch, prompts, -1)
        for index, layer in enumerate(self.layers):
            memory = multi_scale_features[levels - 1 - index].flatten(2).transpose(1, 2)
            blocked = pyramid[-(index + 1)].flatten(2) <= 0
            blocked = blocked & ~blocked.all(-1, keepdim=True)  # an empty prompt attends to the whole image
            blocked = blocked.repeat_interleave(self.heads, dim=0)
            tokens = layer(tokens, self.query_position.weight, memory, blocked)
        return tokens, tuple(pyramid)


class DinovDecoderLayer(nn.Module):
    """Self-attention (boolean mask) → deformable cross-attention on box references → ReLU FFN, post-norm."""

    def __init__(self, config: DinovConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.self_attn = nn.MultiheadAttention(width, config.decoder_attention_heads, batch_first=True)
        self.self_attn_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.encoder_attn = Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention(
            width, config.decoder_attention_heads, config.num_feature_levels, config.decoder_n_points
        )
        self.encoder_attn_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(width, config.feedforward_dim)
        self.fc2 = nn.Linear(config.feedforward_dim, width)
        self.final_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)

    def forward(self, hidden_states, query_position, self_attn_mask, memory, reference_points, spatial_shapes, starts):
        query = hidden_states + query_position
        attended = self.self_attn(query, query, hidden_states, attn_mask=self_attn_mask, need_weights=False)[0]
        hidden_states = self.self_attn_layer_norm(hidden_states + attended)
        attended, _ = self.encoder_attn(
            hidden_states,
            encoder_hidden_states=memory,
            position_embeddings=query_position,
            reference_points=reference_points,
            spatial_shapes_list=spatial_shapes,
            level_start_index=starts,
        )
        hidden_states = self.encoder_attn_layer_norm(hidden_states + attended)
        return self.final_layer_norm(hidden_states + self.fc2(F.relu(self.fc1(hidden_states))))


class DinovDecoder(nn.Module):
    """DINO-style decoder: query positions from sine-embedded boxes, iterative box refinement with a shared head."""

    def __init__(self, config: DinovConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.layers = nn.ModuleList([DinovDecoderLayer(config) for _ in range(config.decoder_layers)])
        self.reference_points_head = DeformableDetrMLPPredictionHead(2 * width, width, width, 2)
        self.layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.bbox_head = DeformableDetrMLPPredictionHead(width, width, 4, 3)

    def forward(self, queries, boxes_unsigmoid, self_attn_mask, multi_scale_features) -> DinovDecoderOutput:
        """`queries` (B, Q, C), `boxes_unsigmoid` (B, Q, 4); memory levels are read low → high resolution."""
        levels = list(reversed(multi_scale_features))
        memory, spatial_shapes, starts = _flatten_levels(levels)
        reference = boxes_unsigmoid.sigmoid()
        references, hidden = [reference], []
        hidden_states = queries
        width = queries.shape[-1]
        for layer in self.layers:
            reference_in = reference[:, :, None].expand(-1, -1, len(levels), -1)
            query_position = self.reference_points_head(encode_sinusoidal_position_embedding(reference, width // 2))
            hidden_states = layer(
                hidden_states, query_position, self_attn_mask, memory, reference_in, spatial_shapes, starts
            )
            refined = (self.bbox_head(hidden_states) + inverse_sigmoid(reference)).sigmoid()
            reference = refined.detach()
            references.append(refined)
            hidden.append(self.layer_norm(hidden_states))
        return DinovDecoderOutput(hidden_states=tuple(hidden), reference_boxes=tuple(references))


class DinovPreTrainedModel(PreTrainedModel):
    config_class = DinovConfig
    base_model_prefix = "model"
    main_input_name = "pixel_values"
    _no_split_modules = ["DinovDecoderLayer", "DinovEncoderLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, DinovPixelDecoder):
            nn.init.normal_(module.level_embed)
        # The reference keeps PyTorch's N(0, 1) for its query and prompt embeddings; transformers' std-0.02 default
        # starts every proposal from nearly the same anchor box and content, and training stays collapsed there.
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight)
        if getattr(
            module, "zero_init_last_layer", False
        ):  # the box head starts as "no refinement", as in the reference
            nn.init.zeros_(module.layers[-1].weight)
            nn.init.zeros_(module.layers[-1].bias)


class DinovModel(DinovPreTrainedModel):
    """Backbone + pixel decoder + visual prompt encoder + decoder, with the query embeddings of both tasks."""

    def __init__(self, config: DinovConfig) -> None:
        super().__init__(config)
        self.backbone = load_backbone(config)
        self.pixel_decoder = DinovPixelDecoder(config, list(self.backbone.num_features[1:]))
        self.prompt_encoder = DinovPromptEncoder(config)
        self.decoder = DinovDecoder(config)
        width = config.hidden_size
        self.query_content = nn.Embedding(config.num_queries, width)
        self.query_anchor_boxes = nn.Embedding(config.num_queries, 4)
        self.label_enc = nn.Embedding(2, width)
        self.pb_embedding = nn.Embedding(2, width)
        self.granularity_tokens = nn.Embedding(config.num_granularity_tokens, width)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor) -> DinovImageFeatures:
        """Swin stage maps → deformable pixel decoder (multi-scale features and 1/4 mask features)."""
        stage_maps = self.backbone(pixel_values).feature_maps
        multi_scale_features, mask_features = self.pixel_decoder(stage_maps)
        return DinovImageFeatures(
            multi_scale_features=multi_scale_features, mask_features=mask_features, backbone_features=stage_maps
        )

    def encode_visual_prompts(
        self, multi_scale_features: tuple[torch.Tensor, ...], prompt_masks: torch.Tensor
    ) -> DinovVisualPrompts:
        """Content queries for (B, N, Hp, Wp) prompt masks drawn on the images the features come from.

        A mask with no positive pixel at a level attends to the whole image at that level (the reference's rule).
        """
        if prompt_masks.ndim != 4:
            raise ValueError(
                f"`prompt_masks` must have shape (batch, prompts, height, width), got {tuple(prompt_masks.shape)}"
            )
        if not 1 <= prompt_masks.shape[1] <= self.config.max_prompts:
            raise ValueError(
                f"got {prompt_masks.shape[1]} visual prompts; between 1 and `config.max_prompts`="
                f"{self.config.max_prompts} are supported per image"
            )
        tokens, pyramid = self.prompt_encoder(multi_scale_features, prompt_masks)
        queries, boxes = self.prompt_queries(tokens)
        return DinovVisualPrompts(content_queries=queries, content_boxes=boxes, tokens=tokens, mask_pyramid=pyramid)

    def prompt_queries(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder content queries for (B, N, C) prompt tokens (tokens + prompt embeddings) and their boxes."""
        queries = tokens + self.label_enc.weight[0] + self.pb_embedding.weight[1]
        return queries, content_boxes(queries)

    def point_boxes(self, padded_size: tuple[int, int], device=None) -> torch.Tensor:
        """(P, 4) cxcywh boxes of the interactive point grid, normalised by the padded image size (H, W)."""
        height, width = padded_size
        side = self.config.points_per_side
        centres = (torch.arange(side, dtype=torch.float32, device=device) + 0.5) / side
        y, x = torch.meshgrid(centres, centres, indexing="ij")
        half = self.config.point_box_size / 2
        x, y = x.reshape(-1) * width, y.reshape(-1) * height
        corners = torch.stack([x - half, y - half, x + half, y + half], -1)
        centre = (corners[:, :2] + corners[:, 2:]) / 2
        size = corners[:, 2:] - corners[:, :2]
        return torch.cat([centre, size], -1) / torch.tensor([width, height, width, height], device=device)

    @staticmethod
    def generic_attention_mask(num_queries: int, num_categories: int, device=None) -> torch.Tensor:
        """True = blocked: proposals see proposals; a category query sees only itself and no proposal sees it."""
        total = num_queries + num_categories
        blocked = torch.ones(total, total, dtype=torch.bool, device=device)
        blocked[:num_queries, :num_queries] = False
        blocked[num_queries:, num_queries:] = ~torch.eye(num_categories, dtype=torch.bool, device=device)
        return blocked

    @staticmethod
    def referring_attention_mask(points: int, tokens: int, prompts: int, device=None) -> torch.Tensor:
        """True = blocked: the tokens of one point see each other; a prompt sees only itself; no cross-talk."""
        blocks = [torch.ones(tokens, tokens, dtype=torch.bool, device=device)] * points
        allowed = torch.block_diag(*blocks, torch.eye(prompts, dtype=torch.bool, device=device))
        return ~allowed


def _heads_input(model: DinovModel, hidden: torch.Tensor) -> torch.Tensor:
    """The heads normalise the (already normalised) decoder output once more, as the reference does."""
    return model.decoder.layer_norm(hidden)


class DinovForVisualPromptSegmentation(DinovPreTrainedModel):
    """DINOv with its generic (category) and referring (instance) heads.

    Example:
        >>> import torch
        >>> from hf_promptseg.models.dinov import DinovConfig, DinovForVisualPromptSegmentation
        >>> config = DinovConfig.from_preset("swin-t", hidden_size=64, mask_dim=64, feedforward_dim=128,
        ...     decoder_layers=2, encoder_layers=1, num_queries=10, points_per_side=3)
        >>> model = DinovForVisualPromptSegmentation(config).eval()
        >>> image, reference = torch.randn(1, 3, 128, 160), torch.randn(1, 3, 96, 128)
        >>> masks = torch.zeros(1, 2, 96, 128); masks[0, 0, 10:40, 10:50] = 1; masks[0, 1, 50:90, 60:120] = 1
        >>> with torch.no_grad():
        ...     out = model(image, reference_pixel_values=reference, prompt_masks=masks, task="referring")
        >>> tuple(out.match_scores.shape)
        (1, 2, 54)
    """

    def __init__(self, config: DinovConfig) -> None:
        super().__init__(config)
        self.model = DinovModel(config)
        width = config.hidden_size
        self.mask_embed = DeformableDetrMLPPredictionHead(width, width, config.mask_dim, 3)
        self.iou_head = DeformableDetrMLPPredictionHead(width, width, 1, 3)
        self.referring_projection = nn.Parameter(torch.empty(width, config.projection_dim))
        self.generic_projection = nn.Parameter(torch.empty(width, config.projection_dim))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, DinovForVisualPromptSegmentation):
            nn.init.normal_(module.referring_projection, std=0.02)
            nn.init.normal_(module.generic_projection, std=0.02)

    def encode_visual_prompts(self, pixel_values: torch.Tensor, prompt_masks: torch.Tensor) -> DinovVisualPrompts:
        """Prompt tokens (and their content queries) of (B, N, Hp, Wp) prompt masks drawn on `pixel_values`.

        The tokens of several reference images can be concatenated (or averaged per category) and passed to
        `forward(..., prompt_tokens=...)`; a prompt bank stores them per category.
        """
        features = self.model.get_image_features(pixel_values)
        return self.model.encode_visual_prompts(features.multi_scale_features, prompt_masks)

    def forward(
        self,
        pixel_values: torch.Tensor,
        reference_pixel_values: torch.Tensor | None = None,
        prompt_masks: torch.Tensor | None = None,
        content_queries: torch.Tensor | None = None,
        task: str = "referring",
        reference_padded_size: tuple[int, int] | None = None,
        prompt_tokens: torch.Tensor | None = None,
    ) -> DinovSegmentationOutput:
        """Segment `pixel_values` given visual prompts.

        Args:
            pixel_values: (B, 3, Hp, Wp) target images (normalised, padded to a multiple of 32).
            reference_pixel_values, prompt_masks: reference images and (B, N, Hp', Wp') prompt masks on them;
                with no reference image the prompts are drawn on the target itself.
            prompt_tokens: (B, N, C) prompt tokens already encoded (`encode_visual_prompts`, possibly from several
                reference images, category means of `category_prompt_tokens`, or a prompt bank's samples), instead.
            content_queries: (B, N, C) decoder content queries (prompt tokens plus the prompt embeddings), instead.
            task: "referring" (one instance per prompt) or "generic" (each query row is a category).
            reference_padded_size: normalise the point grid by this (H, W) instead of the target's padded size —
                the reference implementation's behaviour in cross-image referring (off by default).
        """
        if task not in ("referring", "generic"):
            raise ValueError(f"`task` must be 'referring' or 'generic', got {task!r}")
        given = [name for name, value in (("prompt_masks", prompt_masks), ("prompt_tokens", prompt_tokens),
                                          ("content_queries", content_queries)) if value is not None]  # fmt: skip
        if len(given) != 1:
            raise ValueError(
                "pass exactly one of `prompt_masks` (with or without `reference_pixel_values`), `prompt_tokens` or "
                f"`content_queries`; got {given or 'none'}"
            )
        model = self.model
        target = model.get_image_features(pixel_values)
        if prompt_masks is not None:
            features = target if reference_pixel_values is None else model.get_image_features(reference_pixel_values)
            prompts = model.encode_visual_prompts(features.multi_scale_features, prompt_masks)
            content_queries, boxes = prompts.content_queries, prompts.content_boxes
        elif prompt_tokens is not None:
            if prompt_tokens.ndim != 3 or prompt_tokens.shape[-1] != self.config.hidden_size:
                raise ValueError(
                    f"`prompt_tokens` must have shape (batch, prompts, {self.config.hidden_size}), got "
                    f"{tuple(prompt_tokens.shape)}"
                )
            content_queries, boxes = model.prompt_queries(prompt_tokens.to(model.label_enc.weight))
        else:
            boxes = content_boxes(content_queries)
        if not 1 <= content_queries.shape[1] <= self.config.max_prompts:
            raise ValueError(
                f"got {content_queries.shape[1]} content queries; between 1 and `config.max_prompts`="
                f"{self.config.max_prompts} are supported"
            )
        if task == "generic":
            return self.generic(target, content_queries, boxes)
        padded = reference_padded_size or tuple(pixel_values.shape[-2:])
        return self.referring(target, content_queries, boxes, padded)

    def _masks(self, hidden: torch.Tensor, mask_features: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bqc,bchw->bqhw", self.mask_embed(hidden), mask_features)

    def generic(self, target: DinovImageFeatures, content_queries, content_boxes) -> DinovSegmentationOutput:
        model, config = self.model, self.config
        batch, categories = content_queries.shape[:2]
        queries = torch.cat([model.query_content.weight[None].expand(batch, -1, -1), content_queries], 1)
        boxes = torch.cat([model.query_anchor_boxes.weight[None].expand(batch, -1, -1), content_boxes], 1)
        mask = model.generic_attention_mask(config.num_queries, categories, queries.device)
        decoded = model.decoder(queries, boxes, mask, target.multi_scale_features)
        last, reference = decoded.hidden_states[-1], decoded.reference_boxes[-2]
        normed = _heads_input(model, last)
        embedded = normed @ self.generic_projection
        proposals = config.num_queries
        logits = embedded[:, :proposals] @ embedded[:, proposals:].transpose(1, 2)
        boxes = (model.decoder.bbox_head(last[:, :proposals]) + inverse_sigmoid(reference[:, :proposals])).sigmoid()
        return DinovSegmentationOutput(
            logits=logits,
            pred_masks=self._masks(normed[:, :proposals], target.mask_features),
            pred_boxes=boxes,
            decoder=decoded,
        )

    def referring(self, target: DinovImageFeatures, content_queries, content_boxes, padded_size):
        model, config = self.model, self.config
        batch, prompts = content_queries.shape[:2]
        tokens = config.num_granularity_tokens
        point_boxes = model.point_boxes(padded_size, content_queries.device)
        points = point_boxes.shape[0]
        base = model.label_enc.weight[0] + model.pb_embedding.weight[1]
        position_queries = (
            (base + model.granularity_tokens.weight)[None].expand(points, -1, -1).reshape(-1, base.shape[0])
        )
        position_boxes = inverse_sigmoid(point_boxes).repeat_interleave(tokens, dim=0)
        queries = torch.cat([position_queries[None].expand(batch, -1, -1), content_queries], 1)
        boxes = torch.cat([position_boxes[None].expand(batch, -1, -1), content_boxes], 1)
        mask = model.referring_attention_mask(points, tokens, prompts, queries.device)
        decoded = model.decoder(queries, boxes, mask, target.multi_scale_features)
        last, reference = decoded.hidden_states[-1], decoded.reference_boxes[-2]
        normed = _heads_input(model, last)
        count = points * tokens
        embedded = normed @ self.referring_projection
        match_scores = embedded[:, count:] @ embedded[:, :count].transpose(1, 2)
        boxes = (model.decoder.bbox_head(normed[:, :count]) + inverse_sigmoid(reference[:, :count])).sigmoid()
        return DinovSegmentationOutput(
            match_scores=match_scores,
            pred_masks=self._masks(normed[:, :count], target.mask_features),
            pred_boxes=boxes,
            iou_scores=self.iou_head(normed[:, :count]).view(batch, points, tokens),
            decoder=decoded,
        )


def category_prompt_tokens(tokens: torch.Tensor, labels: list) -> tuple[torch.Tensor, list]:
    """(C, hidden) mean token per category of (N, hidden) prompt tokens labelled by `labels` (first-seen order).

    Generic segmentation takes one query per category; several examples of a category are averaged into it.
    """
    if len(labels) != len(tokens):
        raise ValueError(f"`labels` names {len(labels)} prompts but there are {len(tokens)} prompt tokens")
    categories = list(dict.fromkeys(labels))
    means = [tokens[[i for i, label in enumerate(labels) if label == category]].mean(0) for category in categories]
    return torch.stack(means), categories


def register_dinov() -> None:
    """AutoConfig / AutoModel / AutoImageProcessor learn the `dinov` model type."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    from hf_promptseg.models.dinov.image_processing_dinov import DinovImageProcessor

    AutoConfig.register(DinovConfig.model_type, DinovConfig, exist_ok=True)
    AutoModel.register(DinovConfig, DinovModel, exist_ok=True)
    AutoImageProcessor.register(DinovConfig, image_processor_classes={"pil": DinovImageProcessor}, exist_ok=True)


__all__ = [
    "DinovDecoderOutput",
    "DinovForVisualPromptSegmentation",
    "DinovImageFeatures",
    "DinovModel",
    "DinovPreTrainedModel",
    "DinovSegmentationOutput",
    "DinovVisualPrompts",
    "category_prompt_tokens",
    "content_boxes",
    "inverse_sigmoid",
]
