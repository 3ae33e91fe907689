"""Training prompts for DINOv (spec §6), drawn from a seeded `numpy.random.Generator` so a step is reproducible.

- `sample_referring_prompts` (self-referring, the SA-1B task): per image `num_clicks` instances (the permutation is
  tiled when there are fewer); each gives one positive click inside its mask (a `click_box_size` px box → one
  interactive point with K granularity tokens) whose targets are all masks containing the click (the clicked
  instance first, at most `max_targets_per_click`); `num_negative_clicks` more clicks fall outside every mask and
  have no target (they only compete in the match loss; the reference draws none). The first
  `num_content_prompts` sampled instances become content prompts on the same image, each of a random kind.
- `sample_generic_prompts` (in-context, the COCO task): instances of every image in the batch grouped by category;
  per category 1 … min(`max_train_examples`, count) examples without replacement, whose prompt tokens are averaged
  into that category's query (`aggregation` @ tokens); targets are all instances, labelled by prompt index.

Prompt kinds (rasterised at the padded input size, like `processing_dinov.rasterize_prompts` does for users):
"mask" = the instance mask; "scribble" = 1–5 random strokes through points of the mask, brush 2.5–15 px, cut to the
mask (the reference's training scribbles); "box" = the filled bounding rectangle; "point" = a disk around a pixel
of the instance. Shares per kind are config fields; the defaults follow the reference where it has one (generic:
full masks), and draw the four kinds evenly for referring (the reference only draws scribbles there).

Example:
    >>> import numpy as np
    >>> from hf_promptseg.models.dinov.prompt_sampling_dinov import (
    ...     DinovInstances, DinovPromptSamplingConfig, sample_referring_prompts)
    >>> masks = np.zeros((2, 64, 64), bool); masks[0, 5:30, 5:30] = True; masks[1, 35:60, 30:60] = True
    >>> image = DinovInstances.from_arrays(masks, [1, 2])
    >>> config = DinovPromptSamplingConfig(num_clicks=4, num_content_prompts=2)
    >>> batch = sample_referring_prompts([image], config, rng=0)
    >>> tuple(batch.prompt_masks.shape), tuple(batch.click_boxes.shape)
    ((1, 2, 64, 64), (1, 4, 4))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers.image_transforms import corners_to_center_format

from hf_promptseg.models.dinov.processing_dinov import rasterize_prompts

PROMPT_KINDS = ("mask", "scribble", "box", "point")


def _even_shares() -> dict[str, float]:
    return dict.fromkeys(PROMPT_KINDS, 0.25)


@dataclass
class DinovPromptSamplingConfig:
    """How training prompts are drawn (reference values in brackets where it has one).

    Args:
        referring_kind_shares / generic_kind_shares: relative share of each prompt kind ("mask", "scribble",
            "box", "point"); missing kinds get 0. [referring: scribbles only; generic: full masks]
        max_train_examples: most examples averaged into one generic category query. [4]
        num_clicks: positive clicks (interactive points) per image. [50]
        num_content_prompts: self-referring content prompts per image. [8]
        max_targets_per_click: most target masks per click. [6]
        num_negative_clicks: clicks outside every mask, without targets. [0]
        click_box_size: side in pixels of the box around a click. [6]
        click_box_noise: jitter of click boxes, as a fraction of their size. [0.01 × 0.4]
        point_radius: radius in pixels of "point" prompts. [5, the processor's default]
        num_strokes / stroke_width: inclusive ranges of scribble strokes and brush width in pixels. [1–5, 2.5–15]
    """

    referring_kind_shares: dict[str, float] = field(default_factory=_even_shares)
    generic_kind_shares: dict[str, float] = field(default_factory=lambda: {"mask": 1.0})
    max_train_examples: int = 4
    num_clicks: int = 50
    num_content_prompts: int = 8
    max_targets_per_click: int = 6
    num_negative_clicks: int = 0
    click_box_size: float = 6.0
    click_box_noise: float = 0.004
    point_radius: float = 5.0
    num_strokes: tuple[int, int] = (1, 5)
    stroke_width: tuple[float, float] = (2.5, 15.0)

    def __post_init__(self) -> None:
        for name in ("referring_kind_shares", "generic_kind_shares"):
            shares = getattr(self, name)
            unknown = set(shares) - set(PROMPT_KINDS)
            if unknown or any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
                raise ValueError(
                    f"`{name}` must map kinds among {PROMPT_KINDS} to non-negative shares with a positive sum, "
                    f"got {shares}"
                )
        for name in ("max_train_examples", "num_clicks", "num_content_prompts", "max_targets_per_click"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if self.num_negative_clicks < 0:
            raise ValueError(f"`num_negative_clicks` must be >= 0, got {self.num_negative_clicks}")
        if not 1 <= self.num_strokes[0] <= self.num_strokes[1]:
            raise ValueError(
                f"`num_strokes` must be a (low, high) range with 1 <= low <= high, got {self.num_strokes}"
            )
        if not 0 < self.stroke_width[0] <= self.stroke_width[1]:
            raise ValueError(
                f"`stroke_width` must be a (low, high) range with 0 < low <= high, got {self.stroke_width}"
            )

    def kind_probabilities(self, task: str) -> np.ndarray:
        """Normalised shares of `PROMPT_KINDS` for "referring" or "generic"."""
        shares = self.referring_kind_shares if task == "referring" else self.generic_kind_shares
        values = np.array([float(shares.get(kind, 0.0)) for kind in PROMPT_KINDS])
        return values / values.sum()


@dataclass
class DinovInstances:
    """One training image's instances at the padded model input size.

    Args:
        masks: (T, Hp, Wp) bool, False in the padding.
        category_ids: (T,) int64 dataset category ids.
        image_size: (h, w) of the image before padding (clicks and negatives stay inside it); default the mask size.
    """

    masks: torch.Tensor
    category_ids: torch.Tensor
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.masks.ndim != 3:
            raise ValueError(f"`masks` must have shape (instances, height, width), got {tuple(self.masks.shape)}")
        if self.category_ids.shape != self.masks.shape[:1]:
            raise ValueError(
                f"`category_ids` must have shape ({self.masks.shape[0]},) to match `masks`, "
                f"got {tuple(self.category_ids.shape)}"
            )
        self.masks = self.masks.bool()
        self.category_ids = self.category_ids.long()
        if self.image_size is None:
            self.image_size = tuple(self.masks.shape[-2:])

    @classmethod
    def from_arrays(cls, masks, category_ids, padded_size: tuple[int, int] | None = None) -> DinovInstances:
        """From (T, h, w) masks (e.g. `decode_instances(row)["masks"]`), zero-padded bottom/right to `padded_size`."""
        masks = torch.as_tensor(np.asarray(masks, dtype=bool))
        height, width = masks.shape[-2:]
        if padded_size is not None:
            if padded_size[0] < height or padded_size[1] < width:
                raise ValueError(f"`padded_size` {padded_size} is smaller than the masks ({height}, {width})")
            masks = torch.nn.functional.pad(masks, (0, padded_size[1] - width, 0, padded_size[0] - height))
        return cls(masks, torch.as_tensor(np.asarray(category_ids, dtype=np.int64)), (height, width))


@dataclass
class DinovTargets:
    """Ground truth of one image: `masks` (T, Hp, Wp) float, `boxes` (T, 4) cxcywh normalised by the padded size,
    `labels` (T,) int64 (generic: prompt index; referring: instance index)."""

    masks: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor


@dataclass
class DinovReferringPrompts:
    """Self-referring prompts and targets of a batch (B images, N content prompts, P clicks, M = targets cap).

    `prompt_masks` (B, N, Hp, Wp) float; `prompt_kinds` [B][N]; `content_instances` (B, N) index of the instance
    each prompt refers to; `click_points` (B, P, 2) pixel (x, y); `click_boxes` (B, P, 4) cxcywh normalised;
    `click_targets` (B, P, M) instance indices, -1 = none; `targets` one `DinovTargets` per image.
    """

    prompt_masks: torch.Tensor
    prompt_kinds: list[list[str]]
    content_instances: torch.Tensor
    click_points: torch.Tensor
    click_boxes: torch.Tensor
    click_targets: torch.Tensor
    targets: list[DinovTargets]


@dataclass
class DinovGenericPrompts:
    """In-context prompts and targets of a batch (K categories, N = most examples drawn on one image).

    `prompt_masks` (B, N, Hp, Wp) float, padded with all-ones masks where `prompt_valid` (B, N) is False;
    `prompt_kinds` [B][n_b]; `aggregation` (K, B·N): category query tokens = aggregation @ tokens.flatten(0, 1)
    (the mean of that category's examples); `category_ids` (K,) dataset ids of the prompts; `targets` per image
    with labels in 0..K-1.
    """

    prompt_masks: torch.Tensor
    prompt_valid: torch.Tensor
    prompt_kinds: list[list[str]]
    aggregation: torch.Tensor
    category_ids: torch.Tensor
    targets: list[DinovTargets]


def _generator(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"`rng` must be a numpy Generator or an int seed, got {type(rng).__name__}")


def _check_images(images: Sequence[DinovInstances]) -> tuple[int, int]:
    if not images or not all(isinstance(image, DinovInstances) for image in images):
        raise TypeError("`images` must be a non-empty list of DinovInstances")
    size = tuple(images[0].masks.shape[-2:])
    for index, image in enumerate(images):
        if tuple(image.masks.shape[-2:]) != size:
            raise ValueError(f"`images[{index}]` masks are {tuple(image.masks.shape[-2:])}, expected padded {size}")
    return size


def jitter_boxes(boxes: torch.Tensor, scale: float, rng: np.random.Generator) -> torch.Tensor:
    """cxcywh boxes with centres moved by up to ±scale·size/2 and sizes by ±scale·size, clamped to [0, 1]."""
    spread = torch.cat([boxes[..., 2:] / 2, boxes[..., 2:]], -1)
    noise = torch.from_numpy(rng.uniform(-1.0, 1.0, size=tuple(boxes.shape))).to(boxes)
    return (boxes + noise * spread * scale).clamp(0.0, 1.0)


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(T, 4) cxcywh boxes of (T, H, W) masks in pixel-edge coordinates, normalised by (W, H); empty masks → 0."""
    height, width = masks.shape[-2:]
    boxes = torch.zeros(masks.shape[0], 4)
    for index, mask in enumerate(masks):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(xs):
            boxes[index] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
    return corners_to_center_format(boxes) / torch.tensor([width, height, width, height], dtype=torch.float32)


def _random_pixel(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    pick = int(rng.integers(len(xs)))
    return int(xs[pick]), int(ys[pick])


def _scribble(mask: np.ndarray, config: DinovPromptSamplingConfig, rng: np.random.Generator) -> np.ndarray:
    """Random strokes through pixels of the mask, cut to the mask (never empty: the first point is kept)."""
    height, width = mask.shape
    strokes = []
    for _ in range(int(rng.integers(config.num_strokes[0], config.num_strokes[1] + 1))):
        strokes.append([_random_pixel(mask, rng) for _ in range(int(rng.integers(2, 5)))])
    brush = float(rng.uniform(*config.stroke_width))
    drawn = rasterize_prompts({"scribbles": [strokes]}, height, width, scribble_width=brush)[0] & mask
    x, y = strokes[0][0]
    drawn[y, x] = True
    return drawn


def draw_prompt(
    kind: str, mask: np.ndarray, config: DinovPromptSamplingConfig, rng: np.random.Generator
) -> np.ndarray:
    """(H, W) bool prompt of `kind` for one non-empty instance mask."""
    height, width = mask.shape
    if kind == "mask":
        return mask.copy()
    if kind == "scribble":
        return _scribble(mask, config, rng)
    if kind == "box":
        ys, xs = np.nonzero(mask)
        return rasterize_prompts({"boxes": [[xs.min(), ys.min(), xs.max(), ys.max()]]}, height, width)[0]
    if kind == "point":
        return rasterize_prompts({"points": [_random_pixel(mask, rng)]}, height, width, config.point_radius)[0]
    raise ValueError(f"unknown prompt kind {kind!r}; expected one of {PROMPT_KINDS}")


def _kinds(count: int, probabilities: np.ndarray, rng: np.random.Generator) -> list[str]:
    return [PROMPT_KINDS[i] for i in rng.choice(len(PROMPT_KINDS), size=count, p=probabilities)]


def _click_box(x: float, y: float, size: float, padded: tuple[int, int]) -> list[float]:
    height, width = padded
    return [x / width, y / height, size / width, size / height]


def sample_referring_prompts(
    images: Sequence[DinovInstances], config: DinovPromptSamplingConfig, rng: np.random.Generator | int
) -> DinovReferringPrompts:
    """Self-referring prompts, clicks and targets for a batch (every image needs one non-empty instance)."""
    rng = _generator(rng)
    padded = _check_images(images)
    probabilities = config.kind_probabilities("referring")
    prompt_masks, kinds, contents, points, boxes, click_targets, targets = [], [], [], [], [], [], []
    for index, image in enumerate(images):
        masks = image.masks.numpy()
        present = np.flatnonzero(masks.reshape(len(masks), -1).any(1))
        if len(present) == 0:
            raise ValueError(f"`images[{index}]` has no non-empty instance mask; referring prompts need one")
        order = present[rng.permutation(len(present))]
        needed = max(config.num_clicks, config.num_content_prompts)
        order = np.tile(order, -(-needed // len(order)))[:needed]
        areas = masks.reshape(len(masks), -1).sum(1)
        image_points, image_targets = [], []
        for instance in order[: config.num_clicks]:
            x, y = _random_pixel(masks[instance], rng)
            containing = [t for t in np.argsort(areas, kind="stable") if masks[t, y, x] and t != instance]
            image_points.append((x + 0.5, y + 0.5))
            image_targets.append([int(instance), *map(int, containing)][: config.max_targets_per_click])
        valid = np.zeros(padded, dtype=bool)
        valid[: image.image_size[0], : image.image_size[1]] = True
        background = valid & ~masks.any(0) if len(masks) else valid
        for _ in range(config.num_negative_clicks):
            x, y = _random_pixel(background if background.any() else valid, rng)
            image_points.append((x + 0.5, y + 0.5))
            image_targets.append([int(t) for t in np.flatnonzero(masks[:, y, x])][: config.max_targets_per_click])
        chosen = order[: config.num_content_prompts]
        image_kinds = _kinds(len(chosen), probabilities, rng)
        prompt_masks.append(np.stack([draw_prompt(k, masks[i], config, rng) for k, i in zip(image_kinds, chosen)]))
        kinds.append(image_kinds)
        contents.append(chosen)
        points.append(image_points)
        boxes.append([_click_box(x, y, config.click_box_size, padded) for x, y in image_points])
        padded_targets = np.full((len(image_targets), config.max_targets_per_click), -1, dtype=np.int64)
        for row, values in enumerate(image_targets):
            padded_targets[row, : len(values)] = values
        click_targets.append(padded_targets)
        instance_masks = image.masks.float()
        targets.append(DinovTargets(instance_masks, mask_boxes(image.masks), torch.arange(len(masks))))
    click_boxes = jitter_boxes(torch.tensor(boxes, dtype=torch.float32), config.click_box_noise, rng)
    return DinovReferringPrompts(
        prompt_masks=torch.from_numpy(np.stack(prompt_masks)).float(),
        prompt_kinds=kinds,
        content_instances=torch.from_numpy(np.stack(contents)).long(),
        click_points=torch.tensor(points, dtype=torch.float32),
        click_boxes=click_boxes,
        click_targets=torch.from_numpy(np.stack(click_targets)),
        targets=targets,
    )


def sample_generic_prompts(
    images: Sequence[DinovInstances], config: DinovPromptSamplingConfig, rng: np.random.Generator | int
) -> DinovGenericPrompts:
    """In-context prompts from the whole batch's instances, one aggregated query per category present."""
    rng = _generator(rng)
    padded = _check_images(images)
    probabilities = config.kind_probabilities("generic")
    by_category: dict[int, list[tuple[int, int]]] = {}
    for b, image in enumerate(images):
        nonempty = image.masks.flatten(1).any(1).tolist()
        for t, (category, keep) in enumerate(zip(image.category_ids.tolist(), nonempty)):
            if keep:
                by_category.setdefault(int(category), []).append((b, t))
    if not by_category:
        raise ValueError("`images` have no non-empty instance mask: generic prompts need at least one instance")
    categories = sorted(by_category)
    per_image: list[list[tuple[int, int]]] = [[] for _ in images]
    for prompt_index, category in enumerate(categories):
        members = by_category[category]
        count = int(rng.integers(1, min(config.max_train_examples, len(members)) + 1))
        for pick in rng.choice(len(members), size=count, replace=False):
            b, t = members[int(pick)]
            per_image[b].append((prompt_index, t))
    width = max(1, max(len(entries) for entries in per_image))
    prompt_masks = torch.ones(len(images), width, *padded)
    valid = torch.zeros(len(images), width, dtype=torch.bool)
    aggregation = torch.zeros(len(categories), len(images) * width)
    kinds = []
    for b, (image, entries) in enumerate(zip(images, per_image)):
        image_kinds = _kinds(len(entries), probabilities, rng)
        masks = image.masks.numpy()
        for slot, ((prompt_index, t), kind) in enumerate(zip(entries, image_kinds)):
            prompt_masks[b, slot] = torch.from_numpy(draw_prompt(kind, masks[t], config, rng))
            valid[b, slot] = True
            aggregation[prompt_index, b * width + slot] = 1.0
        kinds.append(image_kinds)
    aggregation = aggregation / aggregation.sum(1, keepdim=True)
    label_of = {category: index for index, category in enumerate(categories)}
    targets = []
    for image in images:
        keep = image.masks.flatten(1).any(1)
        labels = torch.tensor([label_of[int(c)] for c in image.category_ids[keep].tolist()], dtype=torch.long)
        masks = image.masks[keep]
        targets.append(DinovTargets(masks.float(), mask_boxes(masks), labels))
    return DinovGenericPrompts(
        prompt_masks=prompt_masks,
        prompt_valid=valid,
        prompt_kinds=kinds,
        aggregation=aggregation,
        category_ids=torch.tensor(categories, dtype=torch.long),
        targets=targets,
    )


def kind_counts(kinds: Sequence[Sequence[str]]) -> dict[str, int]:
    """How many prompts of each kind a batch drew (`prompt_kinds` of either task), for logging and share checks."""
    flat = [kind for row in kinds for kind in row]
    return {kind: flat.count(kind) for kind in PROMPT_KINDS}


__all__ = [
    "PROMPT_KINDS",
    "DinovGenericPrompts",
    "DinovInstances",
    "DinovPromptSamplingConfig",
    "DinovReferringPrompts",
    "DinovTargets",
    "draw_prompt",
    "jitter_boxes",
    "kind_counts",
    "mask_boxes",
    "sample_generic_prompts",
    "sample_referring_prompts",
]
