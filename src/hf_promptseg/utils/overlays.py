"""Pictures of segmentation results: masks tinted over the image, with the prompts that produced them."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
     [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255]],
    dtype=np.float32,
)  # fmt: skip


def overlay(image: np.ndarray, masks: np.ndarray | list, points=(), boxes=(), alpha: float = 0.55) -> Image.Image:
    """The image with each mask tinted in its own colour, its outline, and the prompts drawn on top."""
    canvas = image.astype(np.float32).copy()
    for index, mask in enumerate(masks):
        colour = PALETTE[index % len(PALETTE)]
        canvas[mask] = canvas[mask] * (1 - alpha) + colour * alpha
        edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
        canvas[edge] = colour
    picture = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for x, y in points:
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(255, 255, 255), outline=(0, 0, 0), width=2)
    for box in boxes:
        draw.rectangle(list(box), outline=(255, 255, 255), width=2)
    return picture


__all__ = ["PALETTE", "overlay"]
