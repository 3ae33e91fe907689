"""DINOv's two in-context tasks scored on instance data: a COCO JSON + image folder, a Hub / parquet dataset or
procedural scenes (`scenes:<count>[:seed[:size]]`, the trainer's `train_data` specs).

- `evaluate_referring` (cross-image referring): for every instance of every image (the *target*), a prompt is drawn
  on an instance of the **same category in a different image** (the *reference*, picked by a seeded generator),
  once per prompt kind (mask, scribble, box, point — drawn by the trainer's `prompt_sampling_dinov.draw_prompt` at
  the model's input resolution). The referring head runs on the target with that prompt's token; its top-scoring
  proposal (highest match score) is compared with the best-fitting target instance of that category.
- `evaluate_generic` (in-context generic segmentation): a prompt bank (`DinovPromptBank`) of every instance of the
  first `bank_images` images (full masks, as the reference builds banks); every other image is segmented by the
  generic head over all bank categories → COCO mask AP through pycocotools' `COCOeval` and semantic mIoU.

Both return plain dicts (floats; counts as ints), computed with the `hf_promptseg.metrics` accumulators behind the
`referring_miou`, `instance_map` and `semantic_miou` evaluate modules, at each target's original resolution, under
`torch.inference_mode()` in eval mode (the model's mode is restored after). Images are processed `batch_size` at
a time; images of different sizes in a batch are padded to the largest, which changes the model's input (the
reference evaluates one image at a time: `batch_size=1` reproduces that).

Example (a tiny random DINOv on six 64×64 scenes, a few seconds):

```python
from hf_promptseg.models.dinov.evaluation_dinov import evaluate_generic, evaluate_referring, load_for_evaluation

model, processor = load_for_evaluation("random:tiny")
referring = evaluate_referring(model, processor, "scenes:6:0:64", progress=False)
generic = evaluate_generic(model, processor, "scenes:6:0:64", bank_images=2, progress=False)
print(referring["referring_miou"], referring["paste_miou"], generic["map"], generic["paste_map"])
```
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from tqdm.auto import tqdm

from hf_promptseg.data.instances import InstanceDataset, decode_instances
from hf_promptseg.metrics.mask_accumulators import (
    InstanceAPAccumulator,
    ReferringIoUAccumulator,
    SemanticIoUAccumulator,
)
from hf_promptseg.models.dinov.prompt_sampling_dinov import PROMPT_KINDS, DinovPromptSamplingConfig, draw_prompt
from hf_promptseg.utils.masks import unpad_mask_logits

TASKS = ("referring", "generic", "both")
DEFAULT_IMAGE_SIZE = 64  # the trainer's default input size (longest edge)
IGNORED = -1  # semantic reference label of instances whose category is not in the bank


def load_evaluation_data(
    data: Any, image_dir: str | None = None, split: str = "validation", image_size: int = DEFAULT_IMAGE_SIZE
) -> InstanceDataset:
    """An `InstanceDataset` from a spec the trainer reads (`scenes:<count>[:seed[:size]]`, a COCO `.json` with
    `image_dir`, parquet or a Hub id — `split` of it), a `datasets.Dataset` with per-instance columns, or as is."""
    import datasets

    from hf_promptseg.data.instances import load_instance_dataset
    from hf_promptseg.training.dinov_trainer import DinovTrainingArguments, load_instances

    if isinstance(data, InstanceDataset):
        instances = data
    elif isinstance(data, datasets.Dataset):
        instances = load_instance_dataset(data)
    elif isinstance(data, str) and (data.startswith("scenes:") or data.endswith(".json")):
        instances = load_instances(DinovTrainingArguments(train_data=data, image_dir=image_dir, image_size=image_size))
    elif isinstance(data, str) and data:
        instances = load_instance_dataset(data, split=split)
    else:
        raise TypeError(
            f"`data` must be an InstanceDataset, a datasets.Dataset or a spec string ('scenes:<count>[:seed[:size]]', "
            f"a COCO .json, parquet or a Hub id), got {data!r:.80}"
        )
    if len(instances.dataset) == 0:
        raise ValueError("`data` is empty (no image rows)")
    return instances


def load_for_evaluation(model: str, image_size: int | None = None) -> tuple[Any, Any]:
    """(model in eval mode, `DinovProcessor`) from a saved directory / Hub id or `random:<preset>` (seeded random
    weights). The image processor saved with the model is used; without one, or with `image_size`, the trainer's
    mapping: longest edge → `image_size` (default 64), padded to a multiple of 32."""
    from pathlib import Path

    from hf_promptseg.models.dinov import DinovImageProcessor, DinovProcessor
    from hf_promptseg.training.dinov_trainer import build_dinov

    if image_size is not None and image_size < 1:
        raise ValueError(f"`image_size` must be positive, got {image_size}")
    network = build_dinov(model).eval()
    image_processor = None
    if image_size is None and not model.startswith("random:"):
        if Path(model).is_dir():
            if (Path(model) / "preprocessor_config.json").is_file():
                image_processor = DinovImageProcessor.from_pretrained(model)
        else:
            try:
                image_processor = DinovImageProcessor.from_pretrained(model)
            except OSError:
                image_processor = None
    if image_processor is None:
        size = image_size or DEFAULT_IMAGE_SIZE
        image_processor = DinovImageProcessor(size={"shortest_edge": size, "longest_edge": size})
    return network, DinovProcessor(image_processor)


@dataclass(frozen=True)
class _Prompt:
    """Target instance `instance` of image `target`, prompted by instance `reference_instance` of `reference`."""

    target: int
    instance: int
    category: int
    reference: int
    reference_instance: int


def _image_processor(processor: Any) -> Any:
    return getattr(processor, "image_processor", processor)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) < 1:
            raise ValueError(f"`{name}` must be positive, got {value}")


def _instance_index(dataset: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row (category ids, non-empty flags) of its instances, read from the RLE columns (no image decoding)."""
    index = []
    for row in dataset.select_columns(["masks", "category_ids", "height", "width"]):
        size = [int(row["height"]), int(row["width"])]
        areas = mask_utils.area([{"size": size, "counts": counts.encode("ascii")} for counts in row["masks"]])
        index.append((np.asarray(row["category_ids"], dtype=np.int64), np.asarray(areas, dtype=np.int64) > 0))
    return index


def _to_model_size(image_processor: Any, masks: np.ndarray, size: Sequence[int], padded: Sequence[int]) -> np.ndarray:
    """(T, H, W) masks → (T, Hp, Wp) bool at the model input (the processor's nearest resize + zero padding). An
    instance that vanishes in the resize keeps one pixel at its centre, so a prompt can still be drawn on it."""
    original = tuple(masks.shape[-2:])
    resized = image_processor.preprocess_prompt_masks([masks], [original], [tuple(size)], tuple(padded))[0] > 0
    resized = resized.numpy()
    for index in np.flatnonzero(~resized.reshape(len(resized), -1).any(1)):
        ys, xs = np.nonzero(masks[index])
        y = min(int(ys.mean() * size[0] / original[0]), size[0] - 1)
        x = min(int(xs.mean() * size[1] / original[1]), size[1] - 1)
        resized[index, y, x] = True
    return resized


def _resize_nearest(masks: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """(N, h, w) bool → (N, *size) bool, nearest neighbour (a mask pasted "at the same place" of another image)."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(torch.from_numpy(masks)[None].float(), size=tuple(size), mode="nearest")[0].numpy() > 0


def _assign_prompts(index: list[tuple[np.ndarray, np.ndarray]], seed: int) -> tuple[list[_Prompt], int]:
    """For each non-empty instance, a same-category non-empty instance of another image (seeded uniform choice
    among all of them); also the number of instances whose category appears in no other image."""
    members: dict[int, list[tuple[int, int]]] = {}
    for image, (categories, present) in enumerate(index):
        for instance in np.flatnonzero(present):
            members.setdefault(int(categories[instance]), []).append((image, int(instance)))
    rng = np.random.default_rng(seed)
    prompts, unreferenced = [], 0
    for image, (categories, present) in enumerate(index):
        for instance in np.flatnonzero(present):
            category = int(categories[instance])
            candidates = [member for member in members[category] if member[0] != image]
            if not candidates:
                unreferenced += 1
                continue
            reference, reference_instance = candidates[int(rng.integers(len(candidates)))]
            prompts.append(_Prompt(image, int(instance), category, reference, reference_instance))
    return prompts, unreferenced


@torch.inference_mode()
def evaluate_referring(
    model: Any,
    processor: Any,
    data: Any,
    prompt_kinds: Sequence[str] = PROMPT_KINDS,
    seed: int = 0,
    batch_size: int = 8,
    sampling_config: DinovPromptSamplingConfig | None = None,
    reference_filter: bool = False,
    progress: bool = True,
) -> dict[str, float | int]:
    """Cross-image referring mIoU of a `DinovForVisualPromptSegmentation` (see the module docstring).

    Args:
        processor: a `DinovProcessor` or `DinovImageProcessor` (its resize defines the model input).
        data: an `InstanceDataset`, a `datasets.Dataset` or a spec (`load_evaluation_data`).
        prompt_kinds: the kinds drawn for every target instance (each kind gets the same instances).
        seed: picks the reference instances and draws the prompts (each prompt from its own seeded generator, so
            batching changes nothing).
        sampling_config: stroke counts / widths and the point radius of the prompts (the trainer's defaults).
        reference_filter: choose among the proposals the reference's filter keeps (`post_process_referring`:
            predicted IoU > 0.5, box NMS at 0.7, > 50 pixels at 1/4 resolution) instead of all of them; a target
            where none survives falls back to all proposals (counted in `num_filter_fallbacks`).

    Returns:
        `referring_miou` / `referring_ciou` / `referring_hit_rate` (IoU >= 0.5) over all prompts and
        `referring_miou_<kind>` per kind; the baseline `paste_miou` / `paste_ciou` / `paste_miou_<kind>`: the prompt
        itself pasted onto the target at the same place (normalised coordinates); `num_prompts` (instances ×
        kinds), `num_instances` (targets with a reference), `num_unreferenced_instances` (their category is in no
        other image; skipped); with `reference_filter`, `num_filter_fallbacks`.

    Example:
        >>> from hf_promptseg.models.dinov.evaluation_dinov import evaluate_referring, load_for_evaluation
        >>> model, processor = load_for_evaluation("random:tiny")
        >>> metrics = evaluate_referring(model, processor, "scenes:4:0:64", prompt_kinds=["mask"], progress=False)
        >>> sorted(metrics)[:3]
        ['num_instances', 'num_prompts', 'num_unreferenced_instances']
    """
    _check_positive(batch_size=batch_size)
    kinds = list(prompt_kinds)
    if not kinds or any(kind not in PROMPT_KINDS for kind in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"`prompt_kinds` must be distinct kinds among {PROMPT_KINDS}, got {prompt_kinds!r}")
    dataset, _ = load_evaluation_data(data)
    config = sampling_config or DinovPromptSamplingConfig()
    prompts, unreferenced = _assign_prompts(_instance_index(dataset), seed)
    if not prompts:
        raise ValueError(
            "`data` has no instance whose category also appears in another image: cross-image referring needs two "
            "images sharing a category"
        )
    image_processor, device, training = _image_processor(processor), _device(model), model.training
    model.eval()
    try:
        tokens, pasted = _encode_reference_prompts(
            model, image_processor, dataset, prompts, kinds, config, seed, batch_size, device, progress
        )
        scores = {name: ReferringIoUAccumulator() for name in ("all", "paste", *kinds, *(f"paste_{k}" for k in kinds))}
        by_target: dict[int, list[int]] = {}
        for number, prompt in enumerate(prompts):
            by_target.setdefault(prompt.target, []).append(number)
        targets, fallbacks = sorted(by_target), 0
        bar = tqdm(total=len(targets), desc="referring: targets", disable=not progress, leave=False)
        for chunk in _batches(targets, batch_size):
            rows = [decode_instances(dataset[index]) for index in chunk]
            batch = image_processor([row["image"] for row in rows], return_tensors="pt")
            pixel_values = batch["pixel_values"].to(device)
            numbers = [by_target[index] for index in chunk]
            sizes = [tuple(int(v) for v in size) for size in batch["image_sizes"]]
            chosen, fell_back = _referring_top_masks(
                model, pixel_values, [tokens[n].flatten(0, 1) for n in numbers],
                (image_processor, sizes) if reference_filter else None,
            )  # fmt: skip
            fallbacks += fell_back
            for b, (row, image_numbers) in enumerate(zip(rows, numbers)):
                original = tuple(int(v) for v in batch["original_sizes"][b])
                masks = unpad_mask_logits(
                    chosen[b], tuple(int(v) for v in batch["image_sizes"][b]), original,
                    padded_size=tuple(pixel_values.shape[-2:]), mode="bicubic", antialias=True,
                )  # fmt: skip
                predictions = (masks > 0).cpu().numpy().reshape(len(image_numbers), len(kinds), *original)
                for number, prediction in zip(image_numbers, predictions):
                    prompt = prompts[number]
                    same = row["masks"][(row["category_ids"] == prompt.category) & row["masks"].any((1, 2))]
                    paste = _resize_nearest(np.stack([mask_utils.decode(r) > 0 for r in pasted[number]]), original)
                    for k, kind in enumerate(kinds):
                        scores["all"].update(prediction[k], same)
                        scores[kind].update(prediction[k], same)
                        scores["paste"].update(paste[k], same)
                        scores[f"paste_{kind}"].update(paste[k], same)
            bar.update(len(chunk))
        bar.close()
    finally:
        model.train(training)
    overall, baseline = scores["all"].results(), scores["paste"].results()
    metrics: dict[str, float | int] = {
        "referring_miou": overall["miou"],
        "referring_ciou": overall["ciou"],
        "referring_hit_rate": overall["hit_rate"],
        **{f"referring_miou_{kind}": scores[kind].results()["miou"] for kind in kinds},
        "paste_miou": baseline["miou"],
        "paste_ciou": baseline["ciou"],
        **{f"paste_miou_{kind}": scores[f"paste_{kind}"].results()["miou"] for kind in kinds},
        "num_prompts": len(prompts) * len(kinds),
        "num_instances": len(prompts),
        "num_unreferenced_instances": unreferenced,
    }
    if reference_filter:
        metrics["num_filter_fallbacks"] = fallbacks
    return metrics


def _encode_reference_prompts(model, image_processor, dataset, prompts, kinds, config, seed, batch_size, device,
                              progress):  # fmt: skip
    """(P, kinds, hidden) prompt tokens, one backbone pass per reference image; and per prompt the drawn prompts as
    RLEs of the reference's valid region at model resolution (for the paste baseline)."""
    by_reference: dict[int, list[int]] = {}
    for number, prompt in enumerate(prompts):
        by_reference.setdefault(prompt.reference, []).append(number)
    references = sorted(by_reference)
    tokens = torch.zeros(len(prompts), len(kinds), model.config.hidden_size)
    pasted: list[list[dict]] = [[] for _ in prompts]
    chunk_size = min(model.config.max_prompts, 64)  # bounds the (N, Hp, Wp) prompt stack of one image
    bar = tqdm(total=len(references), desc="referring: references", disable=not progress, leave=False)
    for chunk in _batches(references, batch_size):
        rows = [decode_instances(dataset[index]) for index in chunk]
        batch = image_processor([row["image"] for row in rows], return_tensors="pt")
        pixel_values = batch["pixel_values"].to(device)
        padded = tuple(pixel_values.shape[-2:])
        features = model.model.get_image_features(pixel_values).multi_scale_features
        for b, (index, row) in enumerate(zip(chunk, rows)):
            size = tuple(int(v) for v in batch["image_sizes"][b])
            masks = _to_model_size(image_processor, row["masks"], size, padded)
            drawn = []
            for number in by_reference[index]:
                mask = masks[prompts[number].reference_instance]
                for k, kind in enumerate(kinds):
                    prompt = draw_prompt(kind, mask, config, np.random.default_rng([seed, number, k]))
                    drawn.append(prompt)
                    pasted[number].append(mask_utils.encode(np.asfortranarray(prompt[: size[0], : size[1]], np.uint8)))
            stack = torch.from_numpy(np.stack(drawn)).float()
            one = tuple(level[b : b + 1] for level in features)
            encoded = torch.cat(
                [
                    model.model.encode_visual_prompts(one, stack[None, start : start + chunk_size].to(device)).tokens[
                        0
                    ]
                    for start in range(0, len(stack), chunk_size)
                ]
            )
            tokens[by_reference[index]] = encoded.cpu().float().view(-1, len(kinds), encoded.shape[-1])
        bar.update(len(chunk))
    bar.close()
    return tokens, pasted


def _referring_top_masks(
    model: Any, pixel_values: torch.Tensor, tokens: list[torch.Tensor], reference_filter: tuple | None = None
) -> tuple[list[torch.Tensor], int]:
    """Per image, the (N_b, h, w) mask logits of each prompt's top-scoring proposal (argmax of the match score,
    among the survivors of the reference's filter when `reference_filter` = (image processor, image sizes)), and
    how many (image, prompt chunk) pairs fell back to all proposals because the filter kept none.

    Prompts are independent in the referring decoder (a content query attends only to itself and the proposals
    not at all), so zero-padding the prompts of a batch and splitting them into chunks changes no result."""
    from hf_promptseg.models.dinov.modeling_dinov import DinovSegmentationOutput

    features = model.model.get_image_features(pixel_values)
    width = max(len(t) for t in tokens)
    padded = torch.zeros(len(tokens), width, model.config.hidden_size, device=pixel_values.device)
    for b, image_tokens in enumerate(tokens):
        padded[b, : len(image_tokens)] = image_tokens.to(padded)
    step = model.config.max_prompts
    parts, fallbacks = [], 0
    for start in range(0, width, step):
        queries, boxes = model.model.prompt_queries(padded[:, start : start + step])
        out = model.referring(features, queries, boxes, tuple(pixel_values.shape[-2:]))
        best = out.match_scores.argmax(-1)
        if reference_filter is not None:
            image_processor, sizes = reference_filter
            for b in range(len(tokens)):
                one = DinovSegmentationOutput(**{name: getattr(out, name)[b : b + 1] for name in
                                                 ("match_scores", "pred_masks", "pred_boxes", "iou_scores")})  # fmt: skip
                try:
                    best[b] = image_processor.post_process_referring(one, sizes[b])[0]["indices"]
                except ValueError:  # nothing survives the filter
                    fallbacks += 1
        parts.append(torch.stack([out.pred_masks[b, best[b]] for b in range(len(tokens))]))
    masks = torch.cat(parts, 1)
    return [masks[b, : len(image_tokens)] for b, image_tokens in enumerate(tokens)], fallbacks


def _paint(masks: np.ndarray, scores: Sequence[float], labels: Sequence[int], threshold: float,
           shape: Sequence[int]) -> np.ndarray:  # fmt: skip
    """(H, W) label map: each pixel takes the label of the highest-scoring mask covering it with a score of at least
    `threshold`; 0 (background) elsewhere."""
    painted = np.zeros(tuple(shape), dtype=np.int64)
    free = np.ones(tuple(shape), dtype=bool)
    for k in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        if scores[k] < threshold:
            break
        region = masks[k] & free
        painted[region] = labels[k]
        free &= ~region
    return painted


@torch.inference_mode()
def evaluate_generic(
    model: Any,
    processor: Any,
    data: Any,
    bank_images: int = 4,
    num_examples: int = 16,
    seed: int = 0,
    batch_size: int = 8,
    max_detections: int = 100,
    score_threshold: float = 0.5,
    progress: bool = True,
) -> dict[str, float | int]:
    """Generic segmentation from a prompt bank: COCO mask AP and semantic mIoU (see the module docstring).

    Args:
        bank_images: the first this many images give the bank (every non-empty instance, its full mask); the
            other images are evaluated.
        num_examples, seed: bank tokens averaged per category, drawn with replacement (`DinovPromptBank`).
        max_detections: instances kept per image (the reference's instance inference, top by score) and COCO's
            per-image detection cap.
        score_threshold: a pixel of the semantic prediction takes the category of the highest-scoring instance
            covering it whose score (class probability × mean mask probability) reaches this; else background.

    Instances of categories absent from the bank are not counted (no prompt asked for them): neither as ground truth
    for AP nor in the semantic IoU (their pixels are ignored).

    Returns:
        `map` (AP@[.50:.95]), `map_50`, `map_75`, `mar` (COCOeval segm); `semantic_miou` (mean IoU of the bank's
        categories over the dataset, background excluded) and `semantic_background_iou`; the baseline — every
        bank instance's mask pasted onto the target at the same place (normalised coordinates) as a detection of
        its category with score 1 — as `paste_map`, `paste_map_50`, `paste_map_75`, `paste_semantic_miou`; and
        `num_target_images`, `num_categories`, `num_bank_instances`.

    Example:
        >>> from hf_promptseg.models.dinov.evaluation_dinov import evaluate_generic, load_for_evaluation
        >>> model, processor = load_for_evaluation("random:tiny")
        >>> metrics = evaluate_generic(model, processor, "scenes:4:0:64", bank_images=2, progress=False)
        >>> metrics["num_target_images"]
        2
    """
    from hf_promptseg.models.dinov import DinovProcessor, DinovPromptBank

    _check_positive(bank_images=bank_images, num_examples=num_examples, batch_size=batch_size,
                    max_detections=max_detections)  # fmt: skip
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"`score_threshold` must be in [0, 1], got {score_threshold}")
    dataset, categories = load_evaluation_data(data)
    if bank_images >= len(dataset):
        raise ValueError(
            f"`bank_images`={bank_images} leaves no image to evaluate: `data` has {len(dataset)} images (the bank "
            "is built from the first `bank_images`, the rest are evaluated)"
        )
    unique = len(set(categories.values())) == len(categories)  # bank keys: category names, else ids
    key_of = {c: (name if unique else str(c)) for c, name in categories.items()}
    image_processor, device, training = _image_processor(processor), _device(model), model.training
    dinov_processor = processor if isinstance(processor, DinovProcessor) else DinovProcessor(image_processor)
    model.eval()
    try:
        examples, bank_masks = [], []
        for index in range(bank_images):
            row = decode_instances(dataset[index])
            keep = row["masks"].any((1, 2))
            if keep.any():
                ids = row["category_ids"][keep]
                examples.append(
                    {"image": row["image"], "mask": row["masks"][keep], "label": [key_of[int(c)] for c in ids]}
                )
                bank_masks.extend(zip(row["masks"][keep], ids.tolist()))
        if not examples:
            raise ValueError(f"the first `bank_images`={bank_images} images hold no instance to build a bank from")
        bank = DinovPromptBank.build(model, dinov_processor, examples, progress=progress)
        id_of_key = {key: c for c, key in key_of.items()}
        bank_ids = [id_of_key[key] for key in bank.categories]
        label_of = {c: position + 1 for position, c in enumerate(bank_ids)}
        prompt_tokens = bank.sample_means(num_examples, seed).to(device)
        metrics = _score_generic(
            model, image_processor, dataset, range(bank_images, len(dataset)), prompt_tokens, bank_ids, label_of,
            bank_masks, batch_size, max_detections, score_threshold, progress,
        )  # fmt: skip
    finally:
        model.train(training)
    metrics.update(
        num_target_images=len(dataset) - bank_images, num_categories=len(bank_ids), num_bank_instances=len(bank_masks)
    )
    return metrics


def _score_generic(model, image_processor, dataset, targets, prompt_tokens, bank_ids, label_of, bank_masks,
                   batch_size, max_detections, score_threshold, progress) -> dict[str, float]:  # fmt: skip
    labels = len(bank_ids) + 1
    ap, paste_ap = InstanceAPAccumulator(max_detections), InstanceAPAccumulator(max_detections)
    semantic = SemanticIoUAccumulator(labels, ignore_index=IGNORED)
    paste_semantic = SemanticIoUAccumulator(labels, ignore_index=IGNORED)
    stacked_bank = [mask for mask, _ in bank_masks]
    paste_ids = [c for _, c in bank_masks]
    targets = list(targets)
    bar = tqdm(total=len(targets), desc="generic", disable=not progress, leave=False)
    for chunk in _batches(targets, batch_size):
        rows = [decode_instances(dataset[index]) for index in chunk]
        batch = image_processor([row["image"] for row in rows], return_tensors="pt")
        pixel_values = batch["pixel_values"].to(prompt_tokens.device)
        tokens = prompt_tokens[None].expand(len(rows), -1, -1)
        outputs = model(pixel_values, prompt_tokens=tokens, task="generic")
        originals = [tuple(int(v) for v in size) for size in batch["original_sizes"]]
        results = image_processor.post_process_instance(
            outputs, batch["image_sizes"].tolist(), target_sizes=originals, top_k=max_detections,
            return_binary_maps=True,
        )  # fmt: skip
        for row, result, original in zip(rows, results, originals):
            masks = result["segmentation"].cpu().numpy().astype(bool)
            scores = [segment["score"] for segment in result["segments_info"]]
            ids = [bank_ids[segment["label_id"]] for segment in result["segments_info"]]
            present = row["masks"].any((1, 2))
            counted = present & np.isin(row["category_ids"], bank_ids)
            truth = {"masks": row["masks"][counted], "labels": row["category_ids"][counted]}
            reference = np.zeros(original, dtype=np.int64)
            for mask, category in zip(row["masks"][present], row["category_ids"][present]):
                reference[mask] = label_of.get(int(category), IGNORED)
            ap.update({"masks": masks, "scores": scores, "labels": ids}, truth)
            semantic.update(_paint(masks, scores, [label_of[c] for c in ids], score_threshold, original), reference)
            pasted = np.concatenate([_resize_nearest(mask[None], original) for mask in stacked_bank])
            ones = [1.0] * len(pasted)
            paste_ap.update({"masks": pasted, "scores": ones, "labels": paste_ids}, truth)
            paste_semantic.update(_paint(pasted, ones, [label_of[c] for c in paste_ids], 0.0, original), reference)
        bar.update(len(chunk))
    bar.close()
    if not ap.ground_truth:
        raise ValueError("no evaluated image holds an instance of a bank category: nothing to score")
    detection, baseline = ap.results(), paste_ap.results()
    iou, paste_iou = semantic.per_category_iou(), paste_semantic.per_category_iou()
    return {
        **detection,
        "semantic_miou": _nanmean(iou[1:]),
        "semantic_background_iou": _nanmean(iou[:1]),
        **{f"paste_{name}": value for name, value in baseline.items() if name != "mar"},
        "paste_semantic_miou": _nanmean(paste_iou[1:]),
    }


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else 0.0


def evaluate_dinov(
    model: Any, processor: Any, data: Any, task: str = "both", **options: Any
) -> dict[str, float | int]:
    """`evaluate_referring` and / or `evaluate_generic` (`task` "referring", "generic" or "both") in one flat dict;
    `options` go to the function that takes them (`bank_images`, `num_examples`, `max_detections`,
    `score_threshold` to generic; `prompt_kinds`, `sampling_config`, `reference_filter` to referring; `seed`,
    `batch_size`, `progress` to both).

    Example:
        >>> from hf_promptseg.models.dinov.evaluation_dinov import evaluate_dinov, load_for_evaluation
        >>> model, processor = load_for_evaluation("random:tiny")
        >>> metrics = evaluate_dinov(model, processor, "scenes:4:0:64", bank_images=2, progress=False)
        >>> {"referring_miou", "paste_miou", "map", "paste_map", "semantic_miou"} <= set(metrics)
        True
    """
    import inspect

    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}")
    data = load_evaluation_data(data)
    functions = [f for name, f in (("referring", evaluate_referring), ("generic", evaluate_generic))
                 if task in (name, "both")]  # fmt: skip
    accepted = {p for f in functions for p in inspect.signature(f).parameters} - {"model", "processor", "data"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for task {task!r}; accepted: {sorted(accepted)}")
    metrics: dict[str, float | int] = {}
    for function in functions:
        parameters = inspect.signature(function).parameters
        metrics.update(function(model, processor, data, **{k: v for k, v in options.items() if k in parameters}))
    return metrics


__all__ = [
    "TASKS",
    "evaluate_dinov",
    "evaluate_generic",
    "evaluate_referring",
    "load_evaluation_data",
    "load_for_evaluation",
]
