"""The DINOv part of `hf-promptseg demo`: in-context segmentation across procedural scenes with the embedded DINOv.

- *Referring*: four instances of a reference scene are prompted, one with each prompt kind (mask, scribble, box,
  point); the referring head finds, in a different scene, the object matching each prompt. A found object counts
  when it is of the prompted shape kind (the scenes' category), so the IoU is taken with the target's instance of
  that kind.
- *Generic*: a prompt bank of every instance of a few reference scenes, labelled by shape kind; every object of
  the bank's categories is found in a different scene (left: the scene's objects and kinds; right: what was found).

Both pictures are upscaled ×4 (the embedded model works at 64², the size it was trained at).

Example:

```python
from hf_promptseg.models.dinov.demo_dinov import run_dinov_demo

summary = run_dinov_demo("demo_output")
print(summary["referring_miou"], summary["generic_found"])
```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from hf_promptseg.data.scenes import SHAPES, Scene, make_scene_with_objects, make_scenes
from hf_promptseg.utils.boxes import nms
from hf_promptseg.utils.masks import mask_iou
from hf_promptseg.utils.overlays import PALETTE, overlay
from hf_promptseg.utils.prompt_geometry import bounding_box, interior_point

DEMO_DINOV_SEED = 20261204
PROMPT_KINDS = ("mask", "scribble", "box", "point")
UPSCALE = 4
# The embedded model's card set: scenes of `DEMO_DINOV_CARD_SEED` at 64²; the generic bank from the first images.
DEMO_DINOV_CARD_SCENES = 100
DEMO_DINOV_CARD_BANK_IMAGES = 16
# Its focal-trained class scores stay low (most below 0.3): semantic maps and the demo keep instances scored >= 0.1.
DEMO_DINOV_SCORE_THRESHOLD = 0.1
# (x, y, radius) of the four objects of the referring scenes at 64² (apart, so every mask stays whole)
REFERRING_LAYOUT = ((16, 16, 11), (48, 17, 11), (17, 48, 11), (47, 47, 11))


def _scribble(mask: np.ndarray) -> list[list[float]]:
    """A short stroke through the mask's interior point along its longer side, kept inside the mask."""
    x, y = interior_point(mask)
    x0, y0, x1, y1 = bounding_box(mask)
    horizontal = (x1 - x0) >= (y1 - y0)
    stroke = []
    for offset in (-0.25, 0.0, 0.25):
        px = x + offset * (x1 - x0) if horizontal else x
        py = y if horizontal else y + offset * (y1 - y0)
        if mask[min(int(py), mask.shape[0] - 1), min(int(px), mask.shape[1] - 1)]:
            stroke.append([px, py])
    return stroke if len(stroke) >= 2 else [[x - 1, y], [x + 1, y]]


def referring_scenes(seed: int = DEMO_DINOV_SEED, size: int = 64) -> tuple[Scene, Scene]:
    """A reference and a target scene holding the same four shape kinds, at different places and in other
    colours / textures: the first seed from `seed` on whose eight objects all cover ≥ 3% of the image (random
    triangles can be slivers)."""
    scale = size / 64
    layout = [(x * scale, y * scale, r * scale) for x, y, r in REFERRING_LAYOUT]
    for attempt in range(seed, seed + 1000):
        rng = np.random.default_rng(attempt)
        kinds = [str(kind) for kind in rng.permutation(SHAPES)[: len(PROMPT_KINDS)]]
        shuffled = kinds[1:] + kinds[:1]  # every kind moves to another place
        reference = make_scene_with_objects(attempt, size, size, [(*at, kind) for at, kind in zip(layout, kinds)])
        target = make_scene_with_objects(attempt + 1, size, size, [(*at, k) for at, k in zip(layout, shuffled)])
        if min(int(m.sum()) for m in reference.masks + target.masks) >= 0.03 * size * size:
            return reference, target
    raise RuntimeError(f"no seed in [{seed}, {seed + 1000}) gives whole objects")  # unreachable in practice


def referring_prompts(scene: Scene) -> dict[str, list]:
    """The pipeline's prompt dict: instance i of `scene` prompted with `PROMPT_KINDS[i]`."""
    masks = scene.masks
    return {
        "masks": [masks[0]],
        "scribbles": [_scribble(masks[1])],
        "boxes": [list(bounding_box(masks[2]))],
        "points": [list(interior_point(masks[3]))],
    }


def card_metrics(model_dir: str | os.PathLike, seed: int | None = None) -> dict[str, Any]:
    """The embedded DINOv's card numbers for the model in `model_dir`: cross-image referring over every prompt kind
    (`evaluate_referring`) and generic segmentation from a bank (`evaluate_generic`) on the card's held-out scenes."""
    from hf_promptseg.assets import DEMO_DINOV_CARD_SEED
    from hf_promptseg.models.dinov.evaluation_dinov import evaluate_generic, evaluate_referring, load_for_evaluation

    data = f"scenes:{DEMO_DINOV_CARD_SCENES}:{DEMO_DINOV_CARD_SEED if seed is None else seed}:64"
    model, processor = load_for_evaluation(str(model_dir))
    referring = evaluate_referring(model, processor, data, seed=0, progress=False)
    generic = evaluate_generic(model, processor, data, bank_images=DEMO_DINOV_CARD_BANK_IMAGES,
                               score_threshold=DEMO_DINOV_SCORE_THRESHOLD, progress=False)  # fmt: skip
    return {**referring, **generic}


def _upscaled(picture: Image.Image) -> Image.Image:
    return picture.resize((picture.width * UPSCALE, picture.height * UPSCALE), Image.NEAREST)


def _distinct(instances: list[dict]) -> list[dict]:
    """Drop detections whose box overlaps a higher-scoring one's by IoU > 0.5 (the generic head has no NMS)."""
    if not instances:
        return []
    boxes = torch.tensor([bounding_box(r["mask"]) if r["mask"].any() else (0, 0, 0, 0) for r in instances])
    keep = nms(boxes, torch.tensor([r["score"] for r in instances]), 0.5)
    return [instances[int(i)] for i in keep if instances[int(i)]["mask"].any()]


def _labelled(picture: Image.Image, masks: list[np.ndarray], labels: list[str]) -> Image.Image:
    """Upscaled `picture` with each mask's label written at its interior point."""
    picture = _upscaled(picture)
    draw = ImageDraw.Draw(picture)
    for mask, label in zip(masks, labels):
        x, y = interior_point(mask)
        draw.text((UPSCALE * x, UPSCALE * y), str(label), fill=(0, 0, 0), anchor="mm", stroke_width=2,
                  stroke_fill=(255, 255, 255))  # fmt: skip
    return picture


def _side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (left.width + right.width + 8, max(left.height, right.height)), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 8, 0))
    return canvas


def _reference_picture(scene: Scene, prompts: dict[str, list]) -> Image.Image:
    """The reference scene with its four prompts drawn in their instance colours (at the upscaled size)."""
    picture = _upscaled(overlay(scene.image, [scene.masks[0]]))
    draw = ImageDraw.Draw(picture)
    scaled = [[UPSCALE * x, UPSCALE * y] for x, y in prompts["scribbles"][0]]
    draw.line([tuple(p) for p in scaled], fill=tuple(int(c) for c in PALETTE[1]), width=UPSCALE * 2)
    draw.rectangle([UPSCALE * v for v in prompts["boxes"][0]], outline=tuple(int(c) for c in PALETTE[2]), width=3)
    x, y = (UPSCALE * v for v in prompts["points"][0])
    draw.ellipse([x - 8, y - 8, x + 8, y + 8], fill=tuple(int(c) for c in PALETTE[3]), outline=(0, 0, 0), width=2)
    return picture


def run_dinov_demo(
    out_dir: str | os.PathLike, model: str | os.PathLike | None = None, seed: int = DEMO_DINOV_SEED,
    num_bank_scenes: int = 8, generic_threshold: float = DEMO_DINOV_SCORE_THRESHOLD, device: str = "cpu",
) -> dict[str, Any]:  # fmt: skip
    """Write `dinov_referring.png` and `dinov_generic.png` to `out_dir`; returns their numbers."""
    from transformers import pipeline

    from hf_promptseg.assets import demo_dinov_path
    from hf_promptseg.models.dinov import DinovProcessor, DinovPromptBank

    if num_bank_scenes < 1:
        raise ValueError(f"`num_bank_scenes` must be positive, got {num_bank_scenes}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = str(model or demo_dinov_path())
    segmenter = pipeline("visual-prompt-segmentation", model=model, device=device)
    size = int(segmenter.image_processor.size["longest_edge"])

    reference, target = referring_scenes(seed, size)
    prompts = referring_prompts(reference)
    found = segmenter(target.image, reference_images=reference.image, prompts=prompts, task="referring")
    # the pipeline answers in its prompt-kind order (masks, boxes, points, scribbles): instances 0, 2, 3, 1
    per_kind, found_masks = {}, [None] * len(PROMPT_KINDS)
    for result, instance in zip(found, (0, 2, 3, 1)):
        same_kind = [m for m, s in zip(target.masks, target.shapes) if s == reference.shapes[instance]]
        per_kind[PROMPT_KINDS[instance]] = max(mask_iou(result["mask"], m) for m in same_kind)
        found_masks[instance] = result["mask"]
    right = _upscaled(overlay(target.image, found_masks))
    _side_by_side(_reference_picture(reference, prompts), right).save(out_dir / "dinov_referring.png")

    bank_scenes = make_scenes(num_bank_scenes + 1, seed + 2, size, size)
    generic_target = bank_scenes.pop()
    bank = DinovPromptBank.build(
        segmenter.model,
        DinovProcessor(segmenter.image_processor),
        {"image": [s.image for s in bank_scenes], "mask": [np.stack(s.masks) for s in bank_scenes],
         "label": [s.shapes for s in bank_scenes]},
    )  # fmt: skip
    instances = _distinct(
        [
            r
            for r in segmenter(generic_target.image, prompt_bank=bank, task="generic")
            if r["score"] >= generic_threshold
        ]
    )
    matched = []
    for mask, kind in zip(generic_target.masks, generic_target.shapes):
        ious = [mask_iou(r["mask"], mask) for r in instances if r["label"] == kind]
        matched.append(max(ious, default=0.0))
    truth = _labelled(overlay(generic_target.image, generic_target.masks), generic_target.masks, generic_target.shapes)
    detections = [r["mask"] for r in instances]
    found_picture = _labelled(overlay(generic_target.image, detections), detections, [r["label"] for r in instances])
    _side_by_side(truth, found_picture).save(out_dir / "dinov_generic.png")
    return {
        "dinov_model": model,
        "referring_iou": per_kind,
        "referring_miou": float(np.mean(list(per_kind.values()))),
        "generic_objects": len(generic_target.masks),
        "generic_found": int(sum(iou >= 0.5 for iou in matched)),
        "generic_detections": len(instances),
        "generic_mean_best_iou": float(np.mean(matched)),
        "generic_bank_scenes": num_bank_scenes,
        "dinov_outputs": {name: str(out_dir / f"{name}.png") for name in ("dinov_referring", "dinov_generic")},
    }


__all__ = [
    "DEMO_DINOV_CARD_BANK_IMAGES",
    "DEMO_DINOV_CARD_SCENES",
    "DEMO_DINOV_SEED",
    "card_metrics",
    "referring_prompts",
    "referring_scenes",
    "run_dinov_demo",
]
