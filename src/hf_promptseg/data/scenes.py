"""Procedural scenes for promptable segmentation: textured shapes on textured backgrounds, with occlusions.

Every scene comes with the exact mask of each object's *visible* part, so point and box prompts have one right
answer. Used to train and evaluate the embedded demo SAM (`hf-promptseg demo`) with no download. Scenes are a pure
function of the seed (NumPy `Generator`), so a held-out set is reproducible from its seed alone.

Example:

```python
from hf_promptseg.data.scenes import make_scene

scene = make_scene(seed=0, height=256, width=256)
scene.image.shape, len(scene.masks)  # ((256, 256, 3), 3)
```
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("ellipse", "rectangle", "triangle", "polygon", "star")


@dataclass
class Scene:
    """An RGB image (H, W, 3) uint8 and one boolean (H, W) mask per visible object, back to front."""

    image: np.ndarray
    masks: list[np.ndarray]
    shapes: list[str]


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.05, 0.95, size=3)


def _texture(
    rng: np.random.Generator, height: int, width: int, base: np.ndarray, contrast: float = 0.15
) -> np.ndarray:
    """A (H, W, 3) float texture around colour `base`: noise, stripes, checks or blobs of amplitude `contrast`."""
    second = np.clip(base + rng.uniform(-contrast, contrast, size=3), 0, 1)
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    side = min(height, width)
    if kind == 0:
        weight = np.zeros((height, width), np.float32)
    elif kind == 1:
        angle, period = rng.uniform(0, np.pi), side * rng.uniform(0.025, 0.09)
        weight = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    elif kind == 2:
        cell = max(2, int(side * rng.uniform(0.02, 0.07)))
        weight = ((yy // cell + xx // cell) % 2).astype(np.float32)
    else:
        coarse = rng.uniform(0, 1, size=(int(rng.integers(3, 8)), int(rng.integers(3, 8))))
        blob = Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
        weight = np.asarray(blob, np.float32) / 255.0
    texture = base * (1 - weight[..., None]) + second * weight[..., None]
    return np.clip(texture + rng.normal(0, 0.03, size=(height, width, 3)), 0, 1)


def _outline(rng: np.random.Generator, shape: str, centre: np.ndarray, radius: float) -> list[tuple[float, float]]:
    """Vertices of a rotated, randomly proportioned shape around `centre`."""
    rotation = rng.uniform(0, 2 * np.pi)
    aspect = rng.uniform(0.55, 1.0)
    if shape == "ellipse":
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        radii = np.ones_like(angles)
    elif shape == "rectangle":
        half = np.arctan(rng.uniform(0.5, 1.5))
        angles = np.array([half, np.pi - half, np.pi + half, 2 * np.pi - half])
        radii = np.ones_like(angles)
    elif shape == "triangle":
        angles = np.sort(rng.uniform(0, 2 * np.pi, 3)) if rng.random() < 0.3 else np.array([0, 2.1, 4.2])
        radii = np.ones_like(angles)
    elif shape == "polygon":
        count = int(rng.integers(5, 9))
        angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
        radii = rng.uniform(0.7, 1.0, count)
    else:
        points = int(rng.integers(4, 7))
        angles = np.linspace(0, 2 * np.pi, 2 * points, endpoint=False)
        radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, rng.uniform(0.4, 0.6))
    x = radii * np.cos(angles) * radius
    y = radii * np.sin(angles) * radius * aspect
    cos, sin = np.cos(rotation), np.sin(rotation)
    return [(centre[0] + cos * a - sin * b, centre[1] + sin * a + cos * b) for a, b in zip(x, y)]


def make_scene(
    seed: int | np.random.Generator,
    height: int = 256,
    width: int = 256,
    num_objects: tuple[int, int] = (2, 5),
    min_visible_fraction: float = 0.01,
) -> Scene:
    """Draw one scene: a textured background and `num_objects` (inclusive range) textured shapes, back to front.

    Objects drawn later occlude earlier ones; masks keep only what stays visible, and objects with less than
    `min_visible_fraction` of the image area visible are dropped (so no prompt targets a sliver).
    """
    if height < 32 or width < 32:
        raise ValueError(f"`height` and `width` must be at least 32, got {height}×{width}")
    low, high = num_objects
    if not 1 <= low <= high:
        raise ValueError(f"`num_objects` must be a (low, high) range with 1 <= low <= high, got {num_objects}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    background_colour = _colour(rng)
    canvas = _texture(rng, height, width, background_colour)
    owner = np.full((height, width), -1, np.int32)
    shapes: list[str] = []
    side = min(height, width)
    for index in range(int(rng.integers(low, high + 1))):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        radius = rng.uniform(0.1, 0.28) * side
        centre = rng.uniform([radius * 0.6, radius * 0.6], [width - radius * 0.6, height - radius * 0.6])
        stencil = Image.new("L", (width, height), 0)
        ImageDraw.Draw(stencil).polygon(_outline(rng, shape, centre, radius), fill=255)
        inside = np.asarray(stencil) > 127
        colour = _colour(rng)
        while np.abs(colour - background_colour).sum() < 0.45:
            colour = _colour(rng)
        canvas[inside] = _texture(rng, height, width, colour)[inside]
        owner[inside] = index
        shapes.append(shape)
    minimum = min_visible_fraction * height * width
    masks, kept = [], []
    for index, shape in enumerate(shapes):
        mask = owner == index
        if mask.sum() >= minimum:
            masks.append(mask)
            kept.append(shape)
    image = (canvas * 255).round().astype(np.uint8)
    return Scene(image=image, masks=masks, shapes=kept)


def make_scene_with_objects(seed: int | np.random.Generator, height: int, width: int, objects: list[tuple]) -> Scene:
    """A scene with one textured shape per `(x, y, radius)` or `(x, y, radius, shape)` of `objects`, at those places (e.g. across the borders
    of tiles, to test tiled inference); shapes and textures are drawn from the seed, masks are exact. Objects must
    not overlap for every mask to stay whole (overlapping ones occlude, as in `make_scene`).

    Example:
        >>> scene = make_scene_with_objects(0, 200, 300, [(100, 100, 30), (250, 60, 20)])
        >>> scene.image.shape, len(scene.masks)
        ((200, 300, 3), 2)
    """
    if height < 32 or width < 32:
        raise ValueError(f"`height` and `width` must be at least 32, got {height}×{width}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    background_colour = _colour(rng)
    canvas = _texture(rng, height, width, background_colour)
    owner = np.full((height, width), -1, np.int32)
    shapes = []
    for index, (x, y, radius, *named) in enumerate(objects):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        if named:
            if named[0] not in SHAPES:
                raise ValueError(f"`objects`[{index}] names shape {named[0]!r}; expected one of {SHAPES}")
            shape = named[0]
        # drawn in the object's own patch, so large images with many objects stay cheap
        y0, y1 = max(0, int(y - radius) - 1), min(height, int(y + radius) + 2)
        x0, x1 = max(0, int(x - radius) - 1), min(width, int(x + radius) + 2)
        outline = [(px - x0, py - y0) for px, py in _outline(rng, shape, np.array([x, y], float), radius)]
        stencil = Image.new("L", (max(1, x1 - x0), max(1, y1 - y0)), 0)
        ImageDraw.Draw(stencil).polygon(outline, fill=255)
        region = np.asarray(stencil)[: y1 - y0, : x1 - x0] > 127
        colour = _colour(rng)
        while np.abs(colour - background_colour).sum() < 0.45:
            colour = _colour(rng)
        patch = _texture(rng, y1 - y0, x1 - x0, colour)
        canvas[y0:y1, x0:x1][region] = patch[region]
        owner[y0:y1, x0:x1][region] = index
        shapes.append(shape)
    masks = [owner == index for index in range(len(shapes))]
    image = (canvas * 255).round().astype(np.uint8)
    return Scene(image=image, masks=masks, shapes=shapes)


def make_scenes(count: int, seed: int, height: int = 256, width: int = 256) -> list[Scene]:
    """`count` scenes drawn from one seeded stream (the same seed always gives the same list)."""
    if count < 1:
        raise ValueError(f"`count` must be positive, got {count}")
    rng = np.random.default_rng(seed)
    return [make_scene(rng, height, width) for _ in range(count)]


def instance_examples(scenes: list[Scene]) -> dict[str, list]:
    """Columns for a `datasets.Dataset` with one row per object: `image` (PIL) and `mask` (PIL, 0/255)."""
    images, masks = [], []
    for scene in scenes:
        picture = Image.fromarray(scene.image)
        for mask in scene.masks:
            images.append(picture)
            masks.append(Image.fromarray(mask.astype(np.uint8) * 255))
    return {"image": images, "mask": masks}
