"""The Prompt tab's logic, without Gradio: clicks and a two-corner box for one object, undo, candidates, rendering.

The state is a plain dataclass that Gradio keeps per browser session (`gr.State`); every function returns a new
state, so undo is a pop of the previous one.

Example:

```python
from hf_promptseg.app.prompt import PromptState, add_click, predict_masks
from hf_promptseg.assets import demo_sam_path
from hf_promptseg.data.scenes import make_scene
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter

scene = make_scene(0, 128, 128)
segmenter = PromptedSegmenter(demo_sam_path())
state = add_click(PromptState(), 64, 64, "positive")
result = predict_masks(segmenter, scene.image, state)
result.masks.shape  # (3, 128, 128): the three candidates, best predicted IoU first in `order`
```
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw

from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter
from hf_promptseg.utils.overlays import overlay

MODES = ("positive", "negative", "box")


@dataclass(frozen=True)
class PromptState:
    """One object's prompts: points with labels (1 positive, 0 negative), a box, a pending first box corner."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    corner: tuple[float, float] | None = None
    candidate: int | None = None  # the candidate the user picked; None = the best predicted IoU
    history: tuple[PromptState, ...] = field(default=(), repr=False)

    @property
    def has_prompt(self) -> bool:
        return bool(self.points) or self.box is not None


def add_click(state: PromptState, x: float, y: float, mode: str) -> PromptState:
    """A click at image pixel (x, y): a positive / negative point, or a box corner (two clicks make a box)."""
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
    previous = (*state.history, state)
    if mode == "box":
        if state.corner is None:
            return replace(state, corner=(float(x), float(y)), history=previous)
        (x0, y0), (x1, y1) = state.corner, (float(x), float(y))
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            raise ValueError(f"the box corners {state.corner} and {(x, y)} are too close: click two opposite corners")
        return replace(state, box=box, corner=None, candidate=None, history=previous)
    label = 1 if mode == "positive" else 0
    return replace(state, points=(*state.points, (float(x), float(y))), labels=(*state.labels, label),
                   candidate=None, history=previous)  # fmt: skip


def undo(state: PromptState) -> PromptState:
    """The state before the last click (or the empty state)."""
    return state.history[-1] if state.history else PromptState()


def pick_candidate(state: PromptState, index: int) -> PromptState:
    return replace(state, candidate=int(index))


@dataclass
class PromptResult:
    """The candidates of the current prompts: (K, H, W) bool masks, (K,) predicted IoU, the shown index."""

    masks: np.ndarray
    iou_scores: np.ndarray
    chosen: int

    @property
    def mask(self) -> np.ndarray:
        return self.masks[self.chosen]


def predict_masks(segmenter: PromptedSegmenter, image: np.ndarray, state: PromptState) -> PromptResult | None:
    """Decode the state's prompts (None when there are none); several candidates only for a single point."""
    if not state.has_prompt:
        return None
    segmenter.set_image(image)  # a no-op unless the image changed
    multimask = state.box is None and len(state.points) == 1
    prediction = segmenter.predict(
        points=list(state.points) or None,
        labels=list(state.labels) or None,
        box=state.box,
        multimask=multimask,
    )
    scores = prediction.iou_scores
    chosen = int(np.argmax(scores)) if state.candidate is None or state.candidate >= len(scores) else state.candidate
    return PromptResult(masks=prediction.masks, iou_scores=scores, chosen=chosen)


def render(image: np.ndarray, state: PromptState, result: PromptResult | None) -> Image.Image:
    """The image with the shown mask tinted, points (green positive, red negative), the box and a pending corner."""
    masks = [] if result is None else [result.mask]
    picture = overlay(image, masks, boxes=[state.box] if state.box is not None else [])
    draw = ImageDraw.Draw(picture)
    for (x, y), label in zip(state.points, state.labels):
        colour = (40, 220, 40) if label == 1 else (230, 30, 30)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour, outline=(255, 255, 255), width=1)
    if state.corner is not None:
        x, y = state.corner
        draw.line([x - 6, y, x + 6, y], fill=(255, 255, 255), width=2)
        draw.line([x, y - 6, x, y + 6], fill=(255, 255, 255), width=2)
    return picture


def candidate_gallery(image: np.ndarray, result: PromptResult | None) -> list[tuple[Image.Image, str]]:
    """One (overlay, caption) per candidate, captioned with its predicted IoU (for a Gradio Gallery)."""
    if result is None:
        return []
    return [
        (
            overlay(image, [mask]),
            f"candidate {index + 1}: predicted IoU {score:.3f}" + (" (shown)" if index == result.chosen else ""),
        )
        for index, (mask, score) in enumerate(zip(result.masks, result.iou_scores))
    ]


__all__ = ["MODES", "PromptResult", "PromptState", "add_click", "candidate_gallery", "pick_candidate",
           "predict_masks", "render", "undo"]  # fmt: skip
