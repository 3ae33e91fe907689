"""Padding of uneven SAM prompt batches (transformers' -10 convention), so ragged lists never reach numpy."""

from __future__ import annotations

from typing import Any

import numpy as np

_LEVELS = ("object", "point", "coordinate")


def _nested_shape(value: Any, argument: str, image_index: int, level: int = 0) -> tuple[int, ...] | None:
    """Shape of a (possibly ragged) nested list whose leaves are numbers: the longest length at each level.

    None for an empty list (an image without prompts). Raises when leaves sit at different depths.
    """
    if isinstance(value, (int, float, np.number)):
        return ()
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise TypeError(f"`{argument}`[{image_index}] holds a {type(value).__name__}; expected numbers in lists")
    shapes = [_nested_shape(item, argument, image_index, level + 1) for item in value]
    shapes = [shape for shape in shapes if shape is not None]
    if not shapes:
        return None if len(value) == 0 else (len(value),)
    depths = {len(shape) for shape in shapes}
    if len(depths) > 1:
        name = _LEVELS[level] if level < len(_LEVELS) else f"level {level}"
        raise ValueError(
            f"`{argument}`[{image_index}] is malformed at its {name} level (nesting depth {level + 1}): some "
            "entries are numbers and others lists, or lists of different depths"
        )
    return (len(value), *np.max(np.array(shapes), axis=0).tolist())


def _fill(target: np.ndarray, value: Any) -> None:
    """Copy a ragged nested list into the leading corner of each level of `target` (the rest keeps its pad)."""
    if target.ndim == 1:
        target[: len(value)] = value
        return
    for index, item in enumerate(value):
        _fill(target[index], item)


def _leaf_sizes(value: Any) -> set[int]:
    """Lengths of the innermost lists (those holding numbers) of a nested list."""
    if len(value) and not isinstance(value[0], (list, tuple, np.ndarray)):
        return {len(value)}
    return set().union(*(_leaf_sizes(item) for item in value)) if len(value) else set()


def _pad_per_image(prompts: list, argument: str, pad: float, leaf: int | None) -> list[np.ndarray] | None:
    """One array per image, all of one shape, padded with `pad`; `leaf` is the required size of the last level."""
    shapes = [_nested_shape(p, argument, i) for i, p in enumerate(prompts)]
    known = [shape for shape in shapes if shape is not None]
    if not known:
        return None
    if len({len(shape) for shape in known}) > 1:
        raise ValueError(
            f"`{argument}` nests images to different depths: {[len(s) if s else 0 for s in shapes]} levels per image"
        )
    full = tuple(np.max(np.array(known), axis=0).tolist())
    if leaf is not None:
        for index, prompt in enumerate(prompts):
            sizes = _leaf_sizes(prompt) - {leaf}
            if sizes:
                raise ValueError(f"`{argument}`[{index}] has {min(sizes)} coordinates in an entry; expected {leaf}")
    arrays = []
    for prompt in prompts:
        array = np.full(full, pad, dtype=np.float64)
        _fill(array, prompt)
        arrays.append(array)
    return arrays


def is_ragged(prompts: Any) -> bool:
    """Whether per-image prompt lists need padding (anything that is not a non-empty list is left to validation)."""
    if not isinstance(prompts, (list, tuple)) or len(prompts) == 0:
        return False
    try:
        array = np.asarray(prompts, dtype=np.float64)
    except ValueError:
        return True
    return array.size == 0 or any(np.asarray(p).size == 0 for p in prompts)


def pad_prompts(input_points, input_labels, input_boxes, pad: float):
    """Pad ragged prompt lists to one shape across images and objects (see `HfPromptsegSamProcessor`)."""
    for name, prompts in (
        ("input_points", input_points),
        ("input_labels", input_labels),
        ("input_boxes", input_boxes),
    ):
        if prompts is not None and not isinstance(prompts, (list, tuple)):
            raise TypeError(f"`{name}` must be a list with one entry per image, got {type(prompts).__name__}")
    if input_points is not None and input_labels is not None:
        if len(input_points) != len(input_labels):
            raise ValueError(f"`input_points` covers {len(input_points)} image(s), `input_labels` {len(input_labels)}")
        for index, (points, labels) in enumerate(zip(input_points, input_labels)):
            point_shape = _nested_shape(points, "input_points", index)
            label_shape = _nested_shape(labels, "input_labels", index)
            if (point_shape or (0,))[:-1] != (label_shape or (0,)) and not (
                point_shape is None and label_shape is None
            ):
                raise ValueError(
                    f"`input_points`[{index}] and `input_labels`[{index}] do not match: points nested as "
                    f"{point_shape} (..., 2) but labels as {label_shape}; give one label per point"
                )
    points = None if input_points is None else _pad_per_image(list(input_points), "input_points", pad, 2)
    labels = None if input_labels is None else _pad_per_image(list(input_labels), "input_labels", pad, None)
    if points is not None and labels is None:
        labels = [np.where(np.all(p == pad, axis=-1), pad, 1) for p in points]
    labels = None if labels is None else [label.astype(np.int64) for label in labels]
    boxes = None if input_boxes is None else _pad_per_image(list(input_boxes), "input_boxes", pad, 4)
    box_pad_rows = None if boxes is None else np.stack([np.all(b == pad, axis=-1) for b in boxes])
    to_list = lambda arrays: None if arrays is None else [a.tolist() for a in arrays]  # noqa: E731
    return to_list(points), to_list(labels), to_list(boxes), box_pad_rows


__all__ = ["is_ragged", "pad_prompts"]
