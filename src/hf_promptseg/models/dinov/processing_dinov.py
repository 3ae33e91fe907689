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

from hf_promptseg.utils.validation import as_array, check_finite, check_last_dim, check_rank, where

PROMPT_KINDS = ("masks", "boxes", "points", "scribbles")


def validate_prompts(prompts: Any, height: int, width: int, image_index: int | None = None) -> None:
    """Kinds, shapes and finiteness of one image's prompt dict; errors name `prompts`[image][kind][prompt]."""
    name = where("prompts", image_index)
    if not isinstance(prompts, dict) or not prompts:
        raise TypeError(f"{name} must be a non-empty dict with keys among {PROMPT_KINDS}, got {prompts!r:.80}")
    unknown = set(prompts) - set(PROMPT_KINDS)
    if unknown:
        raise ValueError(f"{name}: unknown prompt kind(s) {sorted(unknown)}; expected keys among {PROMPT_KINDS}")
    argument = f"prompts{'' if image_index is None else f'[{image_index}]'}"
    if prompts.get("masks") is not None:
        masks = as_array(prompts["masks"], f"{argument}['masks']")
        if masks.ndim not in (2, 3) or masks.shape[-2:] != (height, width):
            raise ValueError(
                f"`{argument}['masks']` must have shape (N, {height}, {width}) to match its image, got {masks.shape}"
            )
        check_finite(masks, f"{argument}['masks']")
    for kind, size, layout in (("boxes", 4, "[x0, y0, x1, y1]"), ("points", 2, "[x, y]")):
        for index, item in enumerate(prompts.get(kind) or []):
            array = as_array(item, f"{argument}['{kind}']", index)
            check_rank(array, f"{argument}['{kind}']", (1,), layout, index)
            check_last_dim(array, f"{argument}['{kind}']", size, layout, index)
            check_finite(array, f"{argument}['{kind}']", index)
            if kind == "boxes" and (array[2] < array[0] or array[3] < array[1]):
                raise ValueError(
                    f"`{argument}['boxes']`[{index}] is {array.tolist()}; expected [x0, y0, x1, y1] with x1 >= x0 "
                    "and y1 >= y0"
                )
    for index, strokes in enumerate(prompts.get("scribbles") or []):
        label = f"{argument}['scribbles']"
        strokes = [strokes] if strokes is not None and len(strokes) and np.ndim(strokes[0]) == 1 else strokes
        if not strokes:
            raise ValueError(f"`{label}`[{index}] is empty; expected a list of strokes, each a list of [x, y]")
        for stroke in strokes:
            array = as_array(stroke, label, index)
            check_rank(array, label, (2,), "strokes of [x, y] points", index)
            check_last_dim(array, label, 2, "strokes of [x, y] points", index)
            check_finite(array, label, index)


def rasterize_prompts(
    prompts: dict[str, Any],
    height: int,
    width: int,
    point_radius: float = 5.0,
    scribble_width: float = 5.0,
    image_index: int | None = None,
) -> np.ndarray:
    """(N, height, width) bool masks for one image's prompts: `{"masks" | "boxes" | "points" | "scribbles": [...]}`.

    Several kinds may be combined; prompts are ordered masks, boxes, points, scribbles. Checked first by
    `validate_prompts` (NaN / inf coordinates, wrong shapes and empty prompts are refused).
    """
    validate_prompts(prompts, height, width, image_index)
    layers: list[np.ndarray] = []
    if prompts.get("masks") is not None:
        masks = np.asarray(prompts["masks"])
        layers.extend((masks[None] if masks.ndim == 2 else masks) > 0)

    def draw(paint) -> np.ndarray:
        canvas = Image.new("L", (width, height), 0)
        paint(ImageDraw.Draw(canvas))
        return np.asarray(canvas) > 0

    for box in prompts.get("boxes") or []:
        layers.append(draw(lambda d, b=box: d.rectangle([float(v) for v in b], fill=255)))
    for point in prompts.get("points") or []:
        x, y = (float(v) for v in point)
        disk = [x - point_radius, y - point_radius, x + point_radius, y + point_radius]
        layers.append(draw(lambda d, disk=disk: d.ellipse(disk, fill=255)))
    for strokes in prompts.get("scribbles") or []:
        strokes = [strokes] if np.ndim(strokes[0]) == 1 else strokes

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
            raise ValueError(
                f"{where('prompts', image_index)}: prompt {index} covers no pixel of the {width}x{height} image "
                "(outside or empty)"
            )
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
        from hf_promptseg.models.dinov.image_processing_dinov import _as_uint8_hwc

        prompted_images = images if reference_images is None else reference_images
        argument = "images" if reference_images is None else "reference_images"
        image_list = list(prompted_images) if isinstance(prompted_images, (list, tuple)) else [prompted_images]
        prompt_list = list(prompts) if isinstance(prompts, (list, tuple)) else [prompts]
        if len(prompt_list) != len(image_list):
            raise ValueError(
                f"`prompts` holds {len(prompt_list)} prompt dict(s) for {len(image_list)} `{argument}`; give one "
                "prompt dict per prompted image"
            )
        image_list = [
            _as_uint8_hwc(image, argument, index if len(image_list) > 1 else None)
            for index, image in enumerate(image_list)
        ]
        sizes = [image.shape[:2] for image in image_list]
        target = self.image_processor(images, return_tensors="pt")
        prompted = target if reference_images is None else None
        many = len(prompt_list) > 1
        masks = [
            rasterize_prompts(p, int(h), int(w), self.point_radius, self.scribble_width, index if many else None)
            for index, (p, (h, w)) in enumerate(zip(prompt_list, sizes))
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


__all__ = ["DinovProcessor", "PROMPT_KINDS", "rasterize_prompts", "validate_prompts"]
