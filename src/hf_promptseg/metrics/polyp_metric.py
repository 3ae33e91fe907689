"""`evaluate` module: Per-image IoU and Dice of binarised predictions (threshold 0.5) for polyp segmentation. Load offline with `evaluate.load(<path of this file>)`."""

from __future__ import annotations

import evaluate

from hf_promptseg.metrics._module import compute_with, metric_info
from hf_promptseg.metrics.accumulators import PolypAccumulator


class PolypMetric(evaluate.Metric):
    """Per-image IoU and Dice of binarised predictions (threshold 0.5) for polyp segmentation."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(self.__doc__)

    def _compute(self, predictions: list, references: list) -> dict[str, float]:
        return compute_with(PolypAccumulator(), predictions, references)
