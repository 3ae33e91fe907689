"""`evaluate` module: Referring segmentation mIoU (mean over prompts), cIoU (cumulative) and hit rate (IoU >= 0.5) of one predicted mask per prompt against its target mask. Load offline with `evaluate.load(<path of this file>)`."""

from __future__ import annotations

import evaluate

from hf_promptseg.metrics._module import MASK_FEATURES, compute_with, metric_info
from hf_promptseg.metrics.mask_accumulators import ReferringIoUAccumulator

INPUTS = "predictions: one (H, W) binary mask per prompt; references: the prompt's (H, W) binary target mask."


class ReferringIoUMetric(evaluate.Metric):
    """Referring segmentation mIoU (mean over prompts), cIoU (cumulative) and hit rate (IoU >= 0.5)."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(self.__doc__, INPUTS, MASK_FEATURES)

    def _compute(self, predictions: list, references: list) -> dict[str, float]:
        return compute_with(ReferringIoUAccumulator(), predictions, references)
