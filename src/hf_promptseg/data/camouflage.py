"""Synthetic camouflage-like images: one textured object on a texture of nearly the same colour, exact masks.

For tests, the training demo and benchmarks of prompt-free segmentation (SAM-Adapter) where no COD dataset can be
downloaded. The object differs from the background by a small colour shift and its own texture pattern, so it is
found by texture and edges rather than by colour alone.

Example:

```python
from hf_promptseg.data.camouflage import camouflage_dataset

dataset = camouflage_dataset(8, seed=0, size=64)  # columns: image (RGB), mask (L, 0/255)
```
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from hf_promptseg.data.scenes import SHAPES, _colour, _outline, _texture


def make_camouflage_sample(
    seed: int | np.random.Generator, size: int = 128, colour_shift: tuple[float, float] = (0.12, 0.25)
) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) uint8 image and (size, size) boolean mask of one object blended into its background."""
    if size < 32:
        raise ValueError(f"`size` must be at least 32, got {size}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    background = _colour(rng) * 0.7 + 0.15
    canvas = _texture(rng, size, size, background, contrast=0.2)
    direction = rng.normal(size=3)
    shift = rng.uniform(*colour_shift) * direction / np.abs(direction).sum()
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    radius = rng.uniform(0.18, 0.35) * size
    centre = rng.uniform(radius * 0.7, size - radius * 0.7, size=2)
    stencil = Image.new("L", (size, size), 0)
    ImageDraw.Draw(stencil).polygon(_outline(rng, shape, centre, radius), fill=255)
    mask = np.asarray(stencil) > 127
    canvas[mask] = _texture(rng, size, size, np.clip(background + shift, 0, 1), contrast=0.2)[mask]
    return (canvas * 255).round().astype(np.uint8), mask


def camouflage_dataset(count: int, seed: int = 0, size: int = 128):
    """A `datasets.Dataset` of `count` samples with `image` (RGB) and `mask` (L, 0/255) image columns."""
    import datasets

    if count < 1:
        raise ValueError(f"`count` must be positive, got {count}")
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(count):
        image, mask = make_camouflage_sample(rng, size)
        images.append(Image.fromarray(image))
        masks.append(Image.fromarray(mask.astype(np.uint8) * 255))
    features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image()})
    return datasets.Dataset.from_dict({"image": images, "mask": masks}, features=features)
