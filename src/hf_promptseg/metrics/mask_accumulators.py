"""Streaming state of the in-context segmentation metrics: COCO instance AP, semantic mIoU and referring mIoU / cIoU.

One image (or prompt) at a time, as the pysodmetrics accumulators of `accumulators.py`; shared by the `evaluate`
modules (`instance_map_metric.py`, `semantic_miou_metric.py`, `referring_miou_metric.py`) and the DINOv evaluation.
Instance AP is pycocotools' `COCOeval` (segm) on masks RLE-encoded by `pycocotools.mask.encode`, not ours.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def _binary(mask: Any, argument: str, ndim: int) -> np.ndarray:
    """A bool array of rank `ndim` (bool as is; numbers: > 0.5, so {0, 1} and {0, 255} both work)."""
    array = np.asarray(mask)
    if array.ndim != ndim:
        layout = "(H, W)" if ndim == 2 else "(N, H, W)"
        raise ValueError(f"`{argument}` must be a binary mask stack of shape {layout}, got shape {array.shape}")
    return array if array.dtype == bool else array > 0.5


def encode_rle(masks: np.ndarray) -> list[dict]:
    """COCO compressed RLEs (pycocotools) of (N, H, W) bool masks."""
    if len(masks) == 0:
        return []
    return mask_utils.encode(np.asfortranarray(np.moveaxis(masks, 0, -1).astype(np.uint8)))


class ReferringIoUAccumulator:
    """IoU of one predicted mask per prompt with its target: `miou` (mean over prompts), `ciou` (cumulative
    intersection over cumulative union, which weighs large objects more) and `hit_rate` (share with IoU >= 0.5).

    A reference may be one (H, W) mask or an (N, H, W) stack of acceptable targets; then the best-fitting one
    counts. Both empty: IoU 1 (`utils.masks.mask_iou`'s convention).
    """

    def __init__(self) -> None:
        self.ious: list[float] = []
        self.intersection = 0
        self.union = 0

    def update(self, prediction: Any, reference: Any) -> float:
        """Add one prompt; returns its IoU."""
        prediction = _binary(prediction, "prediction", 2)
        reference = np.asarray(reference)
        stack = _binary(reference[None] if reference.ndim == 2 else reference, "reference", 3)
        if stack.shape[1:] != prediction.shape:
            raise ValueError(
                f"the prediction is {prediction.shape} but its reference masks are {stack.shape[1:]}; give both at "
                "the image's size"
            )
        intersections = (stack & prediction).sum((1, 2))
        unions = (stack | prediction).sum((1, 2))
        if len(stack) == 0:
            best, inter, union = 0.0, 0, int(prediction.sum())
        else:
            ious = np.where(unions > 0, intersections / np.maximum(unions, 1), 1.0)
            pick = int(np.argmax(ious))
            best, inter, union = float(ious[pick]), int(intersections[pick]), int(unions[pick])
        self.ious.append(best)
        self.intersection += inter
        self.union += union
        return best

    def results(self) -> dict[str, float]:
        if not self.ious:
            raise ValueError("no prompt was evaluated: give at least one prediction / reference pair")
        return {
            "miou": float(np.mean(self.ious)),
            "ciou": float(self.intersection / self.union) if self.union else 1.0,
            "hit_rate": float(np.mean(np.asarray(self.ious) >= 0.5)),
        }


class SemanticIoUAccumulator:
    """Per-category IoU over the whole dataset (intersections and unions summed over images, not averaged per
    image) from (H, W) integer label maps; `mean_iou` averages the categories that occur in a prediction or a
    reference. Pixels whose reference is `ignore_index` do not count.
    """

    def __init__(self, num_labels: int, ignore_index: int | None = None) -> None:
        if int(num_labels) < 1:
            raise ValueError(f"`num_labels` must be positive, got {num_labels}")
        self.num_labels = int(num_labels)
        self.ignore_index = ignore_index
        self.confusion = np.zeros((self.num_labels, self.num_labels), dtype=np.int64)

    def update(self, prediction: Any, reference: Any) -> None:
        prediction, reference = np.asarray(prediction), np.asarray(reference)
        if prediction.ndim != 2 or prediction.shape != reference.shape:
            raise ValueError(
                f"each prediction must be an (H, W) label map with the shape of its reference, got {prediction.shape} "
                f"and {reference.shape}"
            )
        for name, values in (("prediction", prediction), ("reference", reference)):
            if not np.issubdtype(values.dtype, np.integer) and values.dtype != bool:
                raise TypeError(f"{name} label maps must hold integers, got dtype {values.dtype}")
        valid = reference != self.ignore_index if self.ignore_index is not None else np.ones(reference.shape, bool)
        prediction, reference = prediction[valid].astype(np.int64), reference[valid].astype(np.int64)
        for name, values in (("prediction", prediction), ("reference", reference)):
            if values.size and (values.min() < 0 or values.max() >= self.num_labels):
                raise ValueError(
                    f"{name} labels must lie in [0, {self.num_labels}) (`num_labels`={self.num_labels}"
                    f"{'' if self.ignore_index is None else f', `ignore_index`={self.ignore_index}'}), got "
                    f"{values.min()}..{values.max()}"
                )
        self.confusion += np.bincount(reference * self.num_labels + prediction, minlength=self.num_labels**2).reshape(
            self.num_labels, self.num_labels
        )

    def per_category_iou(self) -> np.ndarray:
        """(num_labels,) IoU per category; NaN where the category is in no prediction and no reference."""
        intersection = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - intersection
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, intersection / union, np.nan)

    def results(self) -> dict[str, Any]:
        iou = self.per_category_iou()
        total = self.confusion.sum()
        if total == 0:
            raise ValueError("no labelled pixel was evaluated")
        return {
            "mean_iou": float(np.nanmean(iou)),
            "overall_accuracy": float(np.trace(self.confusion) / total),
            "per_category_iou": [float(v) for v in iou],
        }


class InstanceAPAccumulator:
    """COCO-style mask AP through pycocotools' `COCOeval` (iouType "segm"): `map` (AP at IoU .50:.05:.95), `map_50`,
    `map_75` and `mar` (AR), at most `max_detections` detections per image and category.

    Per image: prediction `{"masks": (K, H, W), "scores": (K,), "labels": (K,)}`, reference
    `{"masks": (T, H, W), "labels": (T,)}`; masks are RLE-encoded with `pycocotools.mask.encode`. As COCO does,
    categories without reference instances do not count (their detections are ignored), and every reference
    instance is a non-crowd one.
    """

    def __init__(self, max_detections: int = 100) -> None:
        if int(max_detections) < 1:
            raise ValueError(f"`max_detections` must be positive, got {max_detections}")
        self.max_detections = int(max_detections)
        self.images: list[dict] = []
        self.ground_truth: list[dict] = []
        self.detections: list[dict] = []

    @staticmethod
    def _entry(value: Any, argument: str, keys: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        if not isinstance(value, Mapping) or set(keys) - set(value):
            raise TypeError(f"each {argument} must be a dict with keys {list(keys)}, got {value!r:.80}")
        masks = np.asarray(value["masks"])
        masks = masks.reshape(0, 0, 0) if masks.size == 0 and masks.ndim < 3 else masks
        masks = _binary(masks, f"{argument}['masks']", 3)
        columns = [np.asarray(value[key]).reshape(-1) for key in keys[1:]]
        for key, column in zip(keys[1:], columns):
            if len(column) != len(masks):
                raise ValueError(f"{argument} has {len(masks)} masks but {len(column)} {key}")
        return (masks, *columns)

    def update(self, prediction: Any, reference: Any) -> None:
        masks, scores, labels = self._entry(prediction, "prediction", ("masks", "scores", "labels"))
        truth, truth_labels = self._entry(reference, "reference", ("masks", "labels"))
        if len(masks) and len(truth) and masks.shape[1:] != truth.shape[1:]:
            raise ValueError(f"predicted masks are {masks.shape[1:]} but reference masks {truth.shape[1:]}")
        image_id = len(self.images) + 1
        shape = truth.shape[1:] if len(truth) else masks.shape[1:]
        self.images.append({"id": image_id, "height": int(shape[0]), "width": int(shape[1])})
        for rle, label, area in zip(encode_rle(truth), truth_labels, truth.sum((1, 2))):
            self.ground_truth.append(
                {"id": len(self.ground_truth) + 1, "image_id": image_id, "category_id": int(label),
                 "segmentation": rle, "area": float(area), "bbox": mask_utils.toBbox(rle).tolist(), "iscrowd": 0}
            )  # fmt: skip
        for rle, label, score in zip(encode_rle(masks), labels, scores):
            self.detections.append(
                {"image_id": image_id, "category_id": int(label), "segmentation": rle, "score": float(score)}
            )

    def results(self) -> dict[str, float]:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        if not self.ground_truth:
            raise ValueError("the references hold no instance: AP is undefined")
        names = ("map", "map_50", "map_75", "mar")
        if not self.detections:
            return dict.fromkeys(names, 0.0)
        categories = sorted({a["category_id"] for a in self.ground_truth + self.detections})
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and summary table
            truth = COCO()
            truth.dataset = {
                "images": self.images,
                "annotations": [dict(a) for a in self.ground_truth],
                "categories": [{"id": c, "name": str(c)} for c in categories],
            }
            truth.createIndex()
            detections = truth.loadRes([dict(d) for d in self.detections])
            evaluation = COCOeval(truth, detections, iouType="segm")
            evaluation.params.maxDets = [1, 10, self.max_detections]
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        stats = evaluation.stats
        return {"map": float(stats[0]), "map_50": float(stats[1]), "map_75": float(stats[2]), "mar": float(stats[8])}


__all__ = ["InstanceAPAccumulator", "ReferringIoUAccumulator", "SemanticIoUAccumulator", "encode_rle"]
