"""The torchvision image operations transformers' torchvision backend uses, as the same torch calls.

`TorchvisionBackend` resizes with `torchvision.transforms.v2.functional.resize`, normalises with its `normalize` and
converts grayscale/RGBA with `grayscale_to_rgb` / `to_dtype`. Each of those is a thin layer over torch
(`F.interpolate` plus dtype rules, a subtract and a divide); these functions apply the same calls in the same order, so
results are bitwise those of torchvision on the same torch, without importing it (PyPI's torchvision does not import
beside the CPU build of torch).
"""

from __future__ import annotations

import platform
from collections.abc import Sequence

import torch
import torch.nn.functional as F

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
INTERPOLATION_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic")


def _native_uint8_on_cpu(mode: str) -> bool:
    """Whether torchvision hands uint8 images to `F.interpolate` as they are (it casts to float32 otherwise)."""
    if mode == "bilinear":
        return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or platform.machine() in (
            "aarch64",
            "arm64",
        )
    return mode == "bicubic"


def resize_image(image: torch.Tensor, size: Sequence[int], mode: str = "bilinear", antialias: bool = True):
    """(..., C, H, W) -> (..., C, size[0], size[1]), as `torchvision.transforms.v2.functional.resize` on tensors.

    Example:
        >>> import torch
        >>> resize_image(torch.zeros(3, 10, 20, dtype=torch.uint8), (5, 5)).shape
        torch.Size([3, 5, 5])
    """
    if mode not in INTERPOLATION_MODES:
        raise ValueError(f"`mode` must be one of {INTERPOLATION_MODES}, got {mode!r}")
    if image.ndim < 3:
        raise ValueError(f"`image` must have shape (..., C, H, W), got {tuple(image.shape)}")
    align_corners = False if mode in ("bilinear", "bicubic") else None
    if align_corners is None:
        antialias = False
    shape = image.shape
    channels, old_height, old_width = shape[-3:]
    height, width = (int(v) for v in size)
    if (height, width) == (old_height, old_width):
        return image
    numel = image.numel()
    if numel > 0:
        dtype = image.dtype
        native = [torch.float32, torch.float64]
        if mode in ("nearest", "nearest-exact") or (image.device.type == "cpu" and _native_uint8_on_cpu(mode)):
            native.append(torch.uint8)
        image = image.reshape(-1, channels, old_height, old_width)
        strides = image.stride()
        if image.is_contiguous(memory_format=torch.channels_last) and image.shape[0] == 1 and numel != strides[0]:
            # keeps interpolate's output channels-last for a lone channels-last image, as torchvision does
            image = image.as_strided((1, channels, old_height, old_width), (numel, *strides[1:]))
        cast = dtype not in native
        if cast:
            image = image.to(dtype=torch.float32)
        image = F.interpolate(image, size=[height, width], mode=mode, align_corners=align_corners, antialias=antialias)
        if cast:
            if mode == "bicubic" and dtype == torch.uint8:
                image = image.clamp_(min=0, max=255)
            if dtype in _INTEGER_DTYPES:
                image = image.round_()
            image = image.to(dtype=dtype)
    return image.reshape(shape[:-3] + (channels, height, width))


def normalize_image(image: torch.Tensor, mean, std, inplace: bool = False) -> torch.Tensor:
    """`(image - mean) / std` per channel, as `torchvision.transforms.v2.functional.normalize` on tensors."""
    if not image.is_floating_point():
        raise TypeError(f"`image` must be a float tensor to normalize, got {image.dtype}")
    if image.ndim < 3:
        raise ValueError(f"`image` must have shape (..., C, H, W), got {tuple(image.shape)}")
    if isinstance(std, (tuple, list)) and not all(std):
        raise ValueError("`std` has a zero entry: normalizing would divide by zero")
    mean = torch.as_tensor(mean, dtype=image.dtype, device=image.device)
    std = torch.as_tensor(std, dtype=image.dtype, device=image.device)
    if mean.ndim == 1:
        mean = mean.view(-1, 1, 1)
    if std.ndim == 1:
        std = std.view(-1, 1, 1)
    image = image.sub_(mean) if inplace else image.sub(mean)
    return image.div_(std)


def to_dtype(image: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 <-> float conversion with value scaling, as `torchvision.transforms.v2.functional.to_dtype(scale=True)`."""
    if image.dtype == dtype:
        return image
    if image.is_floating_point():
        if dtype.is_floating_point:
            return image.to(dtype)
        if dtype != torch.uint8:
            raise TypeError(f"only uint8 or float images can be converted here, got a target dtype {dtype}")
        return image.mul(255 + 1.0 - 1e-3).to(dtype)
    if image.dtype != torch.uint8:
        raise TypeError(f"only uint8 or float images can be converted here, got {image.dtype}")
    if not dtype.is_floating_point:
        raise TypeError(f"only uint8 or float images can be converted here, got a target dtype {dtype}")
    return image.to(dtype).mul_(1.0 / 255)


def grayscale_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(..., 1, H, W) -> (..., 3, H, W); images with 3 or more channels come back unchanged."""
    if image.shape[-3] >= 3:
        return image
    if image.shape[-3] != 1:
        raise ValueError(f"expected an image with 1, 3 or 4 channels, got shape {tuple(image.shape)}")
    repeats = [1] * image.ndim
    repeats[-3] = 3
    return image.repeat(repeats)


def blend_alpha_on_white(image: torch.Tensor, channel_axis: int = -3) -> torch.Tensor:
    """RGBA -> RGB over a white background, computed in float32 and returned in the input's dtype."""
    if image.is_floating_point() and (image.min() < 0.0 or image.max() > 1.0):
        raise ValueError(
            "The image to be converted to RGB contains values outside the range [0, 1], got "
            f"[{image.min().item()}, {image.max().item()}]."
        )
    image = image.movedim(channel_axis, -1)
    dtype = image.dtype
    image = to_dtype(image, torch.float32)
    image = image[..., :3] * image[..., 3:] + (1 - image[..., 3:])
    return to_dtype(image, dtype).movedim(-1, channel_axis)


__all__ = ["blend_alpha_on_white", "grayscale_to_rgb", "normalize_image", "resize_image", "to_dtype"]
