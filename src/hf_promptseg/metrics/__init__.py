"""Segmentation metrics as offline `evaluate.Metric` modules, backed by pysodmetrics.

Each metric lives in its own file so that `evaluate.load(<path to file>)` works without the Hub; the classes can also
be instantiated directly. `load_metric("cod" | "ber" | "polyp")` does the former. The in-context segmentation
metrics of DINOv are `load_metric("instance_map")` (COCO mask AP via pycocotools' `COCOeval`), `"semantic_miou"`
and `"referring_miou"`.

Example:

```python
import numpy as np
from hf_promptseg.metrics import CODMetric

metric = CODMetric()
scores = metric.compute(predictions=[np.random.rand(32, 32)], references=[np.random.rand(32, 32) > 0.5])
sorted(scores)  # ['e_measure_adaptive', 'e_measure_max', 'e_measure_mean', 'mae', 's_measure', 'weighted_f_measure']
```
"""

from __future__ import annotations

from pathlib import Path

import evaluate

from hf_promptseg.metrics.accumulators import (
    METRIC_DIRECTIONS,
    BERAccumulator,
    CODAccumulator,
    PolypAccumulator,
    make_accumulator,
)
from hf_promptseg.metrics.ber_metric import BERMetric
from hf_promptseg.metrics.cod_metric import CODMetric
from hf_promptseg.metrics.instance_map_metric import InstanceAPMetric
from hf_promptseg.metrics.mask_accumulators import (
    InstanceAPAccumulator,
    ReferringIoUAccumulator,
    SemanticIoUAccumulator,
)
from hf_promptseg.metrics.polyp_metric import PolypMetric
from hf_promptseg.metrics.referring_miou_metric import ReferringIoUMetric
from hf_promptseg.metrics.semantic_miou_metric import SemanticIoUMetric

METRIC_FILES = {
    "cod": "cod_metric.py",
    "ber": "ber_metric.py",
    "polyp": "polyp_metric.py",
    "instance_map": "instance_map_metric.py",
    "semantic_miou": "semantic_miou_metric.py",
    "referring_miou": "referring_miou_metric.py",
}


def load_metric(name: str) -> evaluate.EvaluationModule:
    """`evaluate.load` of one of our metric modules from the installed package (no Hub access)."""
    if name not in METRIC_FILES:
        raise ValueError(f"`name` must be one of {sorted(METRIC_FILES)}, got {name!r}")
    return evaluate.load(str(Path(__file__).with_name(METRIC_FILES[name])))


__all__ = [
    "BERAccumulator",
    "BERMetric",
    "CODAccumulator",
    "CODMetric",
    "InstanceAPAccumulator",
    "InstanceAPMetric",
    "METRIC_DIRECTIONS",
    "PolypAccumulator",
    "PolypMetric",
    "ReferringIoUAccumulator",
    "ReferringIoUMetric",
    "SemanticIoUAccumulator",
    "SemanticIoUMetric",
    "load_metric",
    "make_accumulator",
]
