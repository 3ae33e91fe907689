"""Prompted segmentation of one's own images: prompts from the command line or a JSON file, masks as PNG and RLE.

A prompt is one object: `{"points": [[x, y], ...], "labels": [1, 0, ...]}` (labels default to 1, positive) or
`{"box": [x1, y1, x2, y2]}`, in pixels of the original image. A prompts file maps image ids (file names relative to
the input folder, or `"*"` for every image) to lists of prompts, or is a plain list for every image.

With `window=W`, each prompt is segmented in the W×W window around it (larger for a larger box) at native
resolution instead of the whole image squeezed to the model's input size: small objects in large images survive.

Example:

```python
from hf_promptseg.assets import demo_sam_path
from hf_promptseg.corpus.prompting import segment_prompts
from hf_promptseg.data.scenes import make_scene
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter

segmenter = PromptedSegmenter(demo_sam_path())
objects = segment_prompts(segmenter, make_scene(0, 128, 128).image, [{"points": [[60, 60]]}, {"box": [5, 5, 70, 80]}])
len(objects), sorted(objects[0])  # (2, ['masks', 'prompt', 'scores'])
```
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from hf_promptseg.corpus import rle as rle_ops
from hf_promptseg.models.sam.embedding_cache import cached_embeddings


def _numbers(text: str, count: tuple[int, ...], flag: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in count:
        raise ValueError(f"`{flag}` value {text!r} does not parse; expected {' or '.join(map(str, count))} numbers")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"`{flag}` value {text!r} holds NaN or inf; expected finite pixel coordinates")
    return values


def parse_points(values: list[str]) -> list[dict]:
    """`["x,y", "x,y,label", ...]` (one single-point object each) -> prompts."""
    prompts = []
    for text in values:
        numbers = _numbers(text, (2, 3), "--points")
        prompts.append({"points": [numbers[:2]], "labels": [int(numbers[2]) if len(numbers) == 3 else 1]})
    return prompts


def parse_boxes(values: list[str]) -> list[dict]:
    """`["x1,y1,x2,y2", ...]` -> prompts."""
    return [{"box": _numbers(text, (4,), "--boxes")} for text in values]


def _coordinates(value: Any, where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:  # strings, ragged lists
        raise ValueError(f"{where} must hold numbers in (nested) lists, got {value!r:.80} ({err})") from err
    if not np.isfinite(array).all():
        raise ValueError(f"{where} holds NaN or inf, got {value!r:.80}; expected finite pixel coordinates")
    return array


def validate_prompt(prompt: Any, where: str) -> dict:
    """A prompt in canonical form (`points` + `labels`, or `box`), or a ValueError naming `where`."""
    if not isinstance(prompt, dict) or not ({"points", "box"} & set(prompt)):
        raise ValueError(
            f"{where}: expected {{'points': [[x, y], ...]}} or {{'box': [x1, y1, x2, y2]}}, got {prompt!r}"
        )
    if "points" in prompt and "box" in prompt:
        raise ValueError(f"{where}: give `points` or `box`, not both")
    if "box" in prompt:
        box = _coordinates(prompt["box"], f"{where}: `box`")
        if box.shape != (4,) or box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"{where}: `box` must be [x1, y1, x2, y2] with x2 >= x1, y2 >= y1, got {prompt['box']!r}")
        return {"box": box.tolist()}
    points = _coordinates(prompt["points"], f"{where}: `points`")
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"{where}: `points` must be a non-empty list of [x, y], got {prompt['points']!r}")
    labels = prompt.get("labels", [1] * len(points))
    if len(labels) != len(points) or any(label not in (0, 1) for label in labels):
        raise ValueError(f"{where}: `labels` must hold one 0/1 per point, got {labels!r}")
    return {"points": points.tolist(), "labels": [int(label) for label in labels]}


def read_prompts(path: str | os.PathLike) -> dict[str, list[dict]]:
    """Prompts per image id from a JSON file (see the module docstring); `"*"` holds prompts for every image."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompts file not found: {path}")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"prompts file {path} does not parse as JSON: {err}") from err
    if isinstance(content, list):
        content = {"*": content}
    if not isinstance(content, dict):
        raise ValueError(f"prompts file {path}: expected a list of prompts or an object mapping images to lists")
    prompts = {}
    for image_id, items in content.items():
        if not isinstance(items, list):
            raise ValueError(f"prompts file {path}: the prompts of {image_id!r} must be a list")
        prompts[image_id] = [
            validate_prompt(p, f"prompts file {path}, {image_id!r} prompt {i}") for i, p in enumerate(items)
        ]
    return prompts


def _check_inside(prompt: dict, width: int, height: int, where: str) -> None:
    coords = np.asarray(prompt.get("points") or [prompt["box"][:2], prompt["box"][2:]], dtype=np.float64)
    if np.any(coords < 0) or np.any(coords[:, 0] > width) or np.any(coords[:, 1] > height):
        raise ValueError(f"{where} lies outside the {width}x{height} (width x height) image: {prompt}")


def _window(prompt: dict, width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """XYXY window of side >= `size` (and >= the box plus a margin) centred on the prompt, inside the image."""
    if "box" in prompt:
        x1, y1, x2, y2 = prompt["box"]
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        side_x, side_y = max(size, int((x2 - x1) * 1.25) + 1), max(size, int((y2 - y1) * 1.25) + 1)
    else:
        points = np.asarray(prompt["points"])
        cx, cy = points.mean(0)
        side_x = max(size, int(np.ptp(points[:, 0]) * 1.25) + 1)
        side_y = max(size, int(np.ptp(points[:, 1]) * 1.25) + 1)
    side_x, side_y = min(side_x, width), min(side_y, height)
    x0 = int(np.clip(round(cx - side_x / 2), 0, width - side_x))
    y0 = int(np.clip(round(cy - side_y / 2), 0, height - side_y))
    return x0, y0, x0 + side_x, y0 + side_y


def _shift(prompt: dict, x0: int, y0: int) -> dict:
    if "box" in prompt:
        x1, y1, x2, y2 = prompt["box"]
        return {"box": [x1 - x0, y1 - y0, x2 - x0, y2 - y0]}
    return {"points": [[x - x0, y - y0] for x, y in prompt["points"]], "labels": prompt["labels"]}


@torch.no_grad()
def _predict(segmenter: Any, image: np.ndarray, prompts: list[dict], multimask: bool) -> list[dict]:
    """Masks of prompts of one kind on one image: one model call, objects padded to one batch."""
    processor, model = segmenter.processor, segmenter.model
    picture = Image.fromarray(image)
    if "box" in prompts[0]:
        inputs = processor(picture, input_boxes=[[p["box"] for p in prompts]], return_tensors="pt")
    else:
        inputs = processor(
            picture, input_points=[[p["points"] for p in prompts]], input_labels=[[p["labels"] for p in prompts]],
            return_tensors="pt",
        )  # fmt: skip
    device = next(model.parameters()).device
    inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}
    inputs = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}
    embeddings = cached_embeddings(model, inputs.pop("pixel_values"), segmenter.embedding_cache)
    use_multimask = multimask or "points" in prompts[0]
    outputs = model(**inputs, image_embeddings=embeddings, multimask_output=use_multimask)
    result = processor.split_by_image(outputs.pred_masks, outputs.iou_scores, inputs)[0]
    objects = []
    for masks, scores in zip(result["masks"], result["scores"]):
        if not multimask:
            best = int(scores.argmax())
            masks, scores = masks[best : best + 1], scores[best : best + 1]
        objects.append({"masks": masks.numpy().astype(bool), "scores": scores.tolist()})
    return objects


def segment_prompts(
    segmenter: Any, image: np.ndarray, prompts: list[dict], multimask: bool = False, window: int | None = None
) -> list[dict]:
    """Per prompt: `masks` as COCO RLEs in the image's frame (1, or 3 with `multimask`), `scores`, `prompt`.

    `segmenter` is a `PromptedSegmenter` (its model, processor and embedding cache are used). Without `multimask`,
    a point prompt keeps the best of SAM's three candidates (a single point is ambiguous) and a box its one mask.
    """
    image = np.asarray(image)
    height, width = image.shape[:2]
    prompts = [validate_prompt(p, f"prompt {i}") for i, p in enumerate(prompts)]
    for index, prompt in enumerate(prompts):
        _check_inside(prompt, width, height, f"prompt {index}")
    results: list[dict | None] = [None] * len(prompts)
    if window is None or (height <= window and width <= window):
        for kind in ("points", "box"):
            chosen = [i for i, p in enumerate(prompts) if kind in p]
            if not chosen:
                continue
            for i, found in zip(chosen, _predict(segmenter, image, [prompts[i] for i in chosen], multimask)):
                masks = [rle_ops.encode_dense(m) for m in found["masks"]]
                results[i] = {"prompt": prompts[i], "masks": masks, "scores": found["scores"]}
        return results  # type: ignore[return-value]
    for i, prompt in enumerate(prompts):
        x0, y0, x1, y1 = _window(prompt, width, height, window)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        found = _predict(segmenter, crop, [_shift(prompt, x0, y0)], multimask)[0]
        masks = [rle_ops.place_mask(m, x0, y0, height, width) for m in found["masks"]]
        results[i] = {"prompt": prompt, "masks": masks, "scores": found["scores"], "window": [x0, y0, x1, y1]}
    return results  # type: ignore[return-value]


def segment_images(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    prompts: dict[str, list[dict]],
    model: str | os.PathLike | None = None,
    multimask: bool = False,
    window: int | None = None,
    embeddings: str | os.PathLike | None = None,
    image_column: str | None = None,
    split: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Segment the prompts of every image of `source`; write `<name>/object_<k>[_<m>].png` and `results.json`."""
    from hf_promptseg.assets import demo_sam_path
    from hf_promptseg.corpus.generation import result_name, write_json_atomic
    from hf_promptseg.corpus.inputs import list_images
    from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter

    records = list_images(source, image_column=image_column, split=split)
    known = {r.image_id for r in records}
    unknown = sorted(set(prompts) - known - {"*"})
    if unknown:
        raise ValueError(f"prompts name images that are not in {source}: {unknown[:5]} (images: {sorted(known)[:5]})")
    segmenter = PromptedSegmenter(model or demo_sam_path())
    if embeddings is not None:
        from hf_promptseg.models.sam.embedding_cache import load_embeddings

        load_embeddings(embeddings, segmenter.model, segmenter.embedding_cache)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, errors = [], []
    for record in tqdm(records, desc="images", disable=not progress):
        image_prompts = prompts.get(record.image_id, prompts.get("*", []))
        if not image_prompts:
            continue
        try:
            image = np.asarray(record.load())
            objects = segment_prompts(segmenter, image, image_prompts, multimask, window)
        except ValueError as err:
            errors.append({"image_id": record.image_id, "error": str(err)})
            tqdm.write(f"skipped {record.origin}: {err}")
            continue
        folder = out_dir / result_name(record.image_id)
        folder.mkdir(exist_ok=True)
        for k, found in enumerate(objects):
            found["png"] = []
            for m, rle in enumerate(found["masks"]):
                name = f"object_{k}.png" if len(found["masks"]) == 1 else f"object_{k}_{m}.png"
                tmp = folder / f".{name}.tmp.png"
                Image.fromarray(rle_ops.decode(rle).astype(np.uint8) * 255).save(tmp)
                os.replace(tmp, folder / name)
                found["png"].append(str((folder / name).relative_to(out_dir)))
        images.append(
            {"file_name": record.image_id, "height": image.shape[0], "width": image.shape[1], "objects": objects}
        )
    write_json_atomic(out_dir / "results.json", {"images": images, "errors": errors})
    return {"num_images": len(images), "num_objects": sum(len(i["objects"]) for i in images), "errors": errors}


__all__ = ["parse_boxes", "parse_points", "read_prompts", "segment_images", "segment_prompts", "validate_prompt"]
