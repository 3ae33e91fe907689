"""Shared argument checks for every public entry point: run before any tensor work, fail with a named error.

Every error names the argument (and the image / prompt index when there is one), what was given and what was
expected. NaN and inf are refused wherever coordinates or thresholds are accepted.

Images: uint8 arrays hold 0..255; floating-point arrays must hold values in [0, 1] (what `PIL`/`torchvision`
`to_tensor` produce) and are converted to uint8 by `image_to_uint8` before any family's own preprocessing, so a float
image and its uint8 twin give the same model input in SAM and DINOv alike. A float image with values above 1 is
refused (it is ambiguous: a 0..255 image stored as float, or an HDR image) instead of being clipped or rescaled twice.

```python
import numpy as np
from hf_promptseg.utils.validation import check_threshold, image_to_uint8

assert image_to_uint8(np.full((2, 2, 3), 0.5), "images").max() == 128
check_threshold(0.88, "pred_iou_thresh", low=0.0, high=1.0)  # fine; None would mean "filter off"
try:
    check_threshold(float("nan"), "pred_iou_thresh", low=0.0, high=1.0)
except ValueError as err:
    assert "pred_iou_thresh" in str(err)
```
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np


def where(argument: str, *indices: int | None) -> str:
    """ "`input_points`[2][0]": the argument's name followed by the indices that locate the offending item."""
    return f"`{argument}`" + "".join(f"[{i}]" for i in indices if i is not None)


def to_numpy(value: Any) -> Any:
    """Tensors (any device) to numpy; other values unchanged."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def as_array(value: Any, argument: str, *indices: int | None, dtype: Any = np.float64) -> np.ndarray:
    """`value` as a numeric numpy array; ragged nesting or non-numbers raise a `ValueError` that names them."""
    name = where(argument, *indices)
    value = to_numpy(value)
    try:
        array = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError) as err:
        if "inhomogeneous" in str(err) or "sequence" in str(err):
            raise ValueError(
                f"{name} is ragged (nested lists of different lengths); every object of one image needs the same "
                "number of points (pad shorter ones with the pad label) and every box 4 coordinates"
            ) from err
        raise TypeError(f"{name} must hold numbers, got {_describe(value)}") from err
    return array


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_finite(array: np.ndarray, argument: str, *indices: int | None) -> None:
    """Refuse NaN / inf, naming the first offending position."""
    bad = ~np.isfinite(array)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{where(argument, *indices)} holds {int(bad.sum())} non-finite value(s) (NaN or inf), first at "
            f"position {position}; expected finite numbers"
        )


def check_rank(array: np.ndarray, argument: str, ranks: tuple[int, ...], layout: str, *indices: int | None) -> None:
    if array.ndim not in ranks:
        raise ValueError(
            f"{where(argument, *indices)} has shape {tuple(array.shape)} (rank {array.ndim}); expected {layout}"
        )


def check_last_dim(array: np.ndarray, argument: str, size: int, layout: str, *indices: int | None) -> None:
    if array.shape[-1:] != (size,):
        raise ValueError(f"{where(argument, *indices)} has shape {tuple(array.shape)}; expected {layout}")


def check_threshold(
    value: Any,
    argument: str,
    low: float,
    high: float | None,
    allow_none: bool = False,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """A real number in the documented range (`high=None`: no upper bound); `None` only when `allow_none` (= off)."""
    if value is None:
        if allow_none:
            return
        raise TypeError(f"`{argument}` must be a number, got None")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{argument}` must be a number, got {type(value).__name__} {_describe(value)}")
    left = "[" if low_inclusive else "("
    right = "]" if high_inclusive else ")"
    expected = f"a finite number in {left}{low:g}, {'inf' if high is None else f'{high:g}'}{right}"
    if low == -math.inf and (high is None or high == math.inf):
        expected = "a finite number"
    if allow_none:
        expected += " (or None to switch this filter off)"
    if not math.isfinite(value):
        raise ValueError(f"`{argument}` is {value}; expected {expected}")
    too_low = value < low if low_inclusive else value <= low
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        raise ValueError(f"`{argument}` is {value:g}; expected {expected}")


def check_known_arguments(given: Iterable[str], known: Iterable[str], where: str, hint: str = "") -> None:
    """TypeError for keyword arguments `where` does not take (a misspelt threshold would otherwise be ignored).

    ```python
    from hf_promptseg.utils.validation import check_known_arguments

    try:
        check_known_arguments(["pred_iou_tresh"], ["pred_iou_thresh", "points_per_crop"], "mask generation")
    except TypeError as err:
        assert "did you mean `pred_iou_thresh`" in str(err)
    ```
    """
    known = sorted(known)
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return
    guesses = [match for name in unknown for match in difflib.get_close_matches(name, known, n=1)]
    guess = f"; did you mean {', '.join(f'`{name}`' for name in guesses)}?" if guesses else ""
    raise TypeError(
        f"{where} got unexpected keyword argument(s) {', '.join(f'`{name}`' for name in unknown)}{guess} "
        f"(accepted: {', '.join(known)}){hint}"
    )


def check_positive_int(value: Any, argument: str, allow_none: bool = False, minimum: int = 1) -> None:
    """An integer >= `minimum` (bools refused); `None` only when `allow_none`."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{argument}` must be an integer >= {minimum}, got {type(value).__name__} {_describe(value)}")
    if value < minimum:
        raise ValueError(f"`{argument}` is {value}; expected an integer >= {minimum}")


def image_to_uint8(image: Any, argument: str, index: int | None = None) -> Any:
    """Float images in [0, 1] -> uint8 (rounded); uint8, PIL and other values pass through unchanged.

    Raises `ValueError` for non-finite values or float values outside [0, 1], naming the argument and image index.
    """
    array = to_numpy(image)
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        return image
    name = where(argument, index)
    if array.size == 0:
        return image
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or inf pixel values; expected finite values in [0, 1] (float images)")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise ValueError(
            f"{name} is a float image with values in [{low:g}, {high:g}]; float images must hold values in [0, 1]. "
            "For 0..255 values pass a uint8 array (e.g. `image.astype(np.uint8)`) or divide by 255"
        )
    return (array * 255.0).round().astype(np.uint8)


def to_pil_image(image: Any, argument: str = "image") -> Any:
    """numpy / torch images (HWC or CHW, uint8 or float in [0, 1]) as PIL, the input transformers' loader takes."""
    from PIL import Image

    if isinstance(image, Image.Image) or not hasattr(image, "shape"):
        return image
    array = image_to_uint8(image, argument)
    array = to_numpy(array)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array).convert("RGB")


# Documented ranges of `pipeline("mask-generation")` arguments: (low, high, None means "off" -> this value).
# `high=None`: no upper bound. Thresholds at their "off" value keep every candidate.
MASK_GENERATION_THRESHOLDS: dict[str, tuple[float, float | None, float | None]] = {
    "pred_iou_thresh": (0.0, 1.0, -math.inf),
    "stability_score_thresh": (0.0, 1.0, -math.inf),
    "crops_nms_thresh": (0.0, 1.0, 1.0),
    "stability_score_offset": (0.0, None, None),
    "mask_threshold": (-math.inf, math.inf, None),
    "crop_overlap_ratio": (0.0, 1.0, None),
    "max_hole_area": (0.0, None, 0.0),
    "max_sprinkle_area": (0.0, None, 0.0),
}
MASK_GENERATION_COUNTS = {  # minimum; True: None allowed
    "points_per_batch": (1, True),
    "points_per_crop": (1, False),
    "crops_n_layers": (0, False),
    "crop_n_points_downscale_factor": (1, False),
}


def normalize_mask_generation_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check the thresholds and counts of a mask-generation call; returns kwargs with `None` (off) spelled out.

    Ranges (`MASK_GENERATION_THRESHOLDS`): `pred_iou_thresh`, `stability_score_thresh`, `crops_nms_thresh` in
    [0, 1] or None (filter off); `stability_score_offset` >= 0; `mask_threshold` any finite logit;
    `crop_overlap_ratio` in [0, 1); `max_hole_area` / `max_sprinkle_area` >= 0 or None; `points_per_crop` >= 1,
    `points_per_batch` >= 1 or None (all points at once), `crops_n_layers` >= 0, `crop_n_points_downscale_factor`
    >= 1.
    """
    out = dict(kwargs)
    for name, (low, high, off) in MASK_GENERATION_THRESHOLDS.items():
        if name not in out:
            continue
        if name == "mask_threshold":
            value = out[name]
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"`mask_threshold` must be a number, got {type(value).__name__} {_describe(value)}")
            if not math.isfinite(value):
                raise ValueError(
                    f"`mask_threshold` is {value}; expected a finite logit threshold (0 = probability 0.5)"
                )
            continue
        check_threshold(
            out[name], name, low, high, allow_none=off is not None, high_inclusive=name != "crop_overlap_ratio"
        )
        if out[name] is None:
            out[name] = off
    for name, (minimum, allow_none) in MASK_GENERATION_COUNTS.items():
        if name in out:
            check_positive_int(out[name], name, allow_none=allow_none, minimum=minimum)
    return out


__all__ = [
    "MASK_GENERATION_COUNTS",
    "check_known_arguments",
    "MASK_GENERATION_THRESHOLDS",
    "normalize_mask_generation_arguments",
    "as_array",
    "check_finite",
    "check_last_dim",
    "check_positive_int",
    "check_rank",
    "check_threshold",
    "image_to_uint8",
    "to_numpy",
    "to_pil_image",
    "where",
]
