"""`evaluate` module: COCO-style instance mask AP (AP@[.50:.95], AP50, AP75, AR) through pycocotools' `COCOeval` (segm), masks RLE-encoded with `pycocotools.mask.encode`. Load offline with `evaluate.load(<path of this file>)`."""

from __future__ import annotations

import evaluate

from hf_promptseg.metrics._module import INSTANCE_FEATURES, compute_with, metric_info
from hf_promptseg.metrics.mask_accumulators import InstanceAPAccumulator

INPUTS = (
    "predictions: per image a dict with `masks` (K, H, W) binary, `scores` (K,) and `labels` (K,) category ids; "
    "references: per image a dict with `masks` (T, H, W) binary and `labels` (T,). Optional `max_detections` "
    "(default 100) per image and category."
)


class InstanceAPMetric(evaluate.Metric):
    """COCO-style instance mask AP (AP@[.50:.95], AP50, AP75, AR) through pycocotools' `COCOeval` (segm)."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(self.__doc__, INPUTS, INSTANCE_FEATURES)

    def _compute(self, predictions: list, references: list, max_detections: int = 100) -> dict[str, float]:
        return compute_with(InstanceAPAccumulator(max_detections), predictions, references)
