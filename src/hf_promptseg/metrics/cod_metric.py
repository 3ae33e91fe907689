"""`evaluate` module: S-measure, E-measure (mean/max/adaptive), weighted F-measure and MAE for camouflaged/salient object segmentation (pysodmetrics). Load offline with `evaluate.load(<path of this file>)`."""

from __future__ import annotations

import evaluate

from hf_promptseg.metrics._module import compute_with, metric_info
from hf_promptseg.metrics.accumulators import CODAccumulator


class CODMetric(evaluate.Metric):
    """S-measure, E-measure (mean/max/adaptive), weighted F-measure and MAE for camouflaged/salient object segmentation (pysodmetrics)."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(self.__doc__)

    def _compute(self, predictions: list, references: list) -> dict[str, float]:
        return compute_with(CODAccumulator(), predictions, references)
