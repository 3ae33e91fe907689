"""`evaluate` module: Balance error rate (percent) for shadow detection, per image and over all pixels, at threshold 0.5. Load offline with `evaluate.load(<path of this file>)`."""

from __future__ import annotations

import evaluate

from hf_promptseg.metrics._module import compute_with, metric_info
from hf_promptseg.metrics.accumulators import BERAccumulator


class BERMetric(evaluate.Metric):
    """Balance error rate (percent) for shadow detection, per image and over all pixels, at threshold 0.5."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(self.__doc__)

    def _compute(self, predictions: list, references: list) -> dict[str, float]:
        return compute_with(BERAccumulator(), predictions, references)
