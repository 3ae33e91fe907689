"""DINOv processor: a target image, reference image(s) and visual prompts of four kinds → model inputs; outputs → masks.

DINOv itself only consumes masks. The other kinds are rasterised on the reference image (original pixels):
- `boxes` `[x0, y0, x1, y1]` → filled rectangles;
- `points` `[x, y]` → filled disks of radius `point_radius` (default 5 px);
- `scribbles` (a list of strokes, each a list of `[x, y]`) → polylines of width `scribble_width` (default 5 px), the
  way the reference trains on scribbles (random strokes drawn with a brush) and its demo reads sketches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from transformers import ProcessorMixin
from transformers.image_processing_utils import BatchFeature

PROMPT_KINDS = ("masks", "boxes", "points", "scribbles")


def rasterize_prompts(
    prompts: dict[str, Any], height: int, width: int, point_radius: float = 5.0, scribble_width: float = 5.0
) -> np.ndarray:
    """(N, height, width) bool masks for one image's prompts: `{"masks" | "boxes" | "points" | "scribbles": [...]}`.

    Several kinds may be combined; prompts are ordered masks, boxes, points, scribbles.
    """
    if not isinstance(prompts, dict) or not prompts:
        raise TypeError(f"prompts must be a non-empty dict with keys among {PROMPT_KINDS}, got {prompts!r}")
    unknown = set(prompts) - set(PROMPT_KINDS)
    if unknown:
        raise ValueError(f"unknown prompt kind(s) {sorted(unknown)}; expected keys among {PROMPT_KINDS}")
    layers: list[np.ndarray] = []
    if prompts.get("masks") is not None:
        masks = np.asarray(prompts["masks"])
        if masks.ndim == 2:
            masks = masks[None]
        if masks.ndim != 3 or masks.shape[1:] != (height, width):
            raise ValueError(
                f"prompt `masks` must have shape (N, {height}, {width}) to match their image, got {masks.shape}"
            )
        layers.extend(masks > 0)

    def draw(paint) -> np.ndarray:
        canvas = Image.new("L", (width, height), 0)
        paint(ImageDraw.Draw(canvas))
        return np.asarray(canvas) > 0

    for box in prompts.get("boxes") or []:
        if len(box) != 4 or box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"prompt boxes must be [x0, y0, x1, y1] with x1 >= x0 and y1 >= y0, got {list(box)}")
        layers.append(draw(lambda d, b=box: d.rectangle([float(v) for v in b], fill=255)))
    for point in prompts.get("points") or []:
        if len(point) != 2:
            raise ValueError(f"prompt points must be [x, y], got {list(point)}")
        x, y = (float(v) for v in point)
        disk = [x - point_radius, y - point_radius, x + point_radius, y + point_radius]
        layers.append(draw(lambda d, disk=disk: d.ellipse(disk, fill=255)))
    for strokes in prompts.get("scribbles") or []:
        strokes = [strokes] if strokes and np.ndim(strokes[0]) == 1 else strokes
        if not strokes or any(np.ndim(stroke) != 2 or np.shape(stroke)[-1] != 2 for stroke in strokes):
            raise ValueError("a scribble is a list of strokes, each a list of [x, y] points")

        def paint(d, strokes=strokes):
            for stroke in strokes:
                coordinates = [tuple(float(v) for v in p) for p in stroke]
                if len(coordinates) == 1:
                    (x, y), r = coordinates[0], scribble_width / 2
                    d.ellipse([x - r, y - r, x + r, y + r], fill=255)
                else:
                    d.line(coordinates, fill=255, width=max(1, int(round(scribble_width))), joint="curve")

        layers.append(draw(paint))
    for index, layer in enumerate(layers):
        if not layer.any():
            raise ValueError(f"prompt {index} covers no pixel of the {width}x{height} image (outside or empty)")
    return np.stack(layers)


class DinovProcessor(ProcessorMixin):
    """Prepares target images, reference images and visual prompts for `DinovForVisualPromptSegmentation`.

    Example:
        >>> import numpy as np
        >>> from hf_promptseg.models.dinov import DinovImageProcessor, DinovProcessor
        >>> processor = DinovProcessor(DinovImageProcessor(do_resize=False))
        >>> target, reference = np.zeros((100, 120, 3), np.uint8), np.zeros((90, 100, 3), np.uint8)
        >>> inputs = processor(target, reference_images=reference,
        ...                    prompts={"boxes": [[10, 10, 40, 50]], "points": [[70, 60]]})
        >>> tuple(inputs["prompt_masks"].shape), tuple(inputs["reference_pixel_values"].shape)
        ((1, 2, 96, 128), (1, 3, 96, 128))
    """

    def __init__(self, image_processor, point_radius: float = 5.0, scribble_width: float = 5.0) -> None:
        super().__init__(image_processor)
        self.point_radius = point_radius
        self.scribble_width = scribble_width

    def __call__(
        self,
        images: Any,
        reference_images: Any = None,
        prompts: dict | list[dict] | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """`pixel_values` etc. for the target image(s); prompts on `reference_images` (one prompt dict per
        reference image) or, without references, on the target images themselves."""
        if prompts is None:
            raise ValueError(f"`prompts` is required: a dict with keys among {PROMPT_KINDS} per prompted image")
        target = self.image_processor(images, return_tensors="pt")
        prompted = target if reference_images is None else None
        prompted_images = images if reference_images is None else reference_images
        image_list = list(prompted_images) if isinstance(prompted_images, (list, tuple)) else [prompted_images]
        prompt_list = prompts if isinstance(prompts, (list, tuple)) else [prompts]
        if len(prompt_list) != len(image_list):
            raise ValueError(
                f"give one prompt dict per prompted image: {len(prompt_list)} for {len(image_list)} images"
            )
        sizes = [
            np.asarray(image).shape[:2] if not isinstance(image, Image.Image) else image.size[::-1]
            for image in image_list
        ]
        masks = [
            rasterize_prompts(p, int(h), int(w), self.point_radius, self.scribble_width)
            for p, (h, w) in zip(prompt_list, sizes)
        ]
        encoded = self.image_processor(image_list, prompt_masks=masks, return_tensors="pt")
        data = dict(target)
        if prompted is None:
            data["reference_pixel_values"] = encoded["pixel_values"]
            data["reference_image_sizes"] = encoded["image_sizes"]
        data["prompt_masks"] = encoded["prompt_masks"]
        return BatchFeature(data=data, tensor_type=return_tensors)

    def post_process_referring(self, *args: Any, **kwargs: Any):
        return self.image_processor.post_process_referring(*args, **kwargs)

    def post_process_semantic(self, *args: Any, **kwargs: Any):
        return self.image_processor.post_process_semantic(*args, **kwargs)

    def post_process_instance(self, *args: Any, **kwargs: Any):
        return self.image_processor.post_process_instance(*args, **kwargs)

    def post_process_panoptic(self, *args: Any, **kwargs: Any):
        return self.image_processor.post_process_panoptic(*args, **kwargs)


def register_dinov_processor() -> None:
    from transformers import AutoProcessor

    from hf_promptseg.models.dinov.configuration_dinov import DinovConfig

    AutoProcessor.register(DinovConfig, DinovProcessor, exist_ok=True)


__all__ = ["DinovProcessor", "PROMPT_KINDS", "rasterize_prompts"]
