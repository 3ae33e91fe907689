"""`evaluate` module: Semantic segmentation mean IoU, per-category IoU (intersections and unions summed over the dataset) and pixel accuracy from integer label maps. Load offline with `evaluate.load(<path of this file>)`."""

from __future__ import annotations

import evaluate

from hf_promptseg.metrics._module import LABEL_MAP_FEATURES, compute_with, metric_info
from hf_promptseg.metrics.mask_accumulators import SemanticIoUAccumulator

INPUTS = (
    "predictions / references: lists of (H, W) integer label maps; `num_labels` (required) categories 0..n-1; "
    "optional `ignore_index`: reference pixels with that label do not count."
)


class SemanticIoUMetric(evaluate.Metric):
    """Semantic segmentation mean IoU, per-category IoU (summed over the dataset) and pixel accuracy."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(self.__doc__, INPUTS, LABEL_MAP_FEATURES)

    def _compute(
        self, predictions: list, references: list, num_labels: int | None = None, ignore_index: int | None = None
    ) -> dict:
        if num_labels is None:
            raise ValueError("`num_labels` is required: compute(predictions=..., references=..., num_labels=N)")
        return compute_with(SemanticIoUAccumulator(num_labels, ignore_index), predictions, references)
