"""Checks on what users upload to the app: an image, of a size the app accepts, with messages that say what to do."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # the server refuses larger request bodies (`launch(max_file_size=...)`)
MAX_PIXELS = 4096 * 4096
MIN_SIDE = 8


def load_upload(image: str | os.PathLike | np.ndarray | Image.Image | None, argument: str = "image",
                max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:  # fmt: skip
    """An uploaded image (a file path, array or PIL image) as an (H, W, 3) uint8 array, or a ValueError that says
    what is wrong: nothing uploaded, not an image, too many bytes, too many pixels, too small."""
    if image is None:
        raise ValueError(f"no {argument}: upload a PNG or JPEG first")
    if isinstance(image, (str, os.PathLike)):
        size = os.path.getsize(image)
        if size > max_bytes:
            raise ValueError(f"the {argument} file is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
        try:
            with Image.open(image) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise ValueError(_too_large(argument, width, height, max_pixels))
                image = opened.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"the {argument} file is not an image PIL can read (PNG, JPEG, ...): {err}") from None
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"`{argument}` must be a file path, PIL image or array, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"the {argument} must be (H, W, 3) RGB, got shape {image.shape}")
    height, width = image.shape[:2]
    if height * width > max_pixels:
        raise ValueError(_too_large(argument, width, height, max_pixels))
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"the {argument} is {width}×{height}; both sides must be at least {MIN_SIDE} pixels")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def _too_large(argument: str, width: int, height: int, max_pixels: int) -> str:
    return (
        f"the {argument} is {width}×{height} = {width * height / 1e6:.1f} megapixels; the limit is "
        f"{max_pixels / 1e6:.1f} megapixels: downscale it first"
    )


__all__ = ["MAX_PIXELS", "MAX_UPLOAD_BYTES", "load_upload"]
