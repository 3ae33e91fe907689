"""The `evaluate.Metric` plumbing shared by our metric modules: features, and feeding an accumulator."""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

_MAP = datasets.List(datasets.List(datasets.Value("float32")))
_MASK = datasets.List(datasets.List(datasets.Value("bool")))
_LABEL_MAP = datasets.List(datasets.List(datasets.Value("int64")))
_MASK_STACK = datasets.List(_MASK)

# Maps differ in size from image to image: nested lists, not Array2D.
MAP_FEATURES = datasets.Features({"predictions": _MAP, "references": _MAP})
MASK_FEATURES = datasets.Features({"predictions": _MASK, "references": _MASK})
LABEL_MAP_FEATURES = datasets.Features({"predictions": _LABEL_MAP, "references": _LABEL_MAP})
INSTANCE_FEATURES = datasets.Features(
    {
        "predictions": {
            "masks": _MASK_STACK,
            "scores": datasets.List(datasets.Value("float32")),
            "labels": datasets.List(datasets.Value("int64")),
        },
        "references": {"masks": _MASK_STACK, "labels": datasets.List(datasets.Value("int64"))},
    }
)

MAP_INPUTS = (
    "predictions: list of (H, W) probability maps in [0, 1]; references: list of (H, W) binary masks (bool, {0, 1} "
    "or {0, 255})."
)


def metric_info(
    description: str, inputs_description: str = MAP_INPUTS, features: datasets.Features = MAP_FEATURES
) -> evaluate.MetricInfo:
    return evaluate.MetricInfo(
        description=description,
        citation="",
        inputs_description=inputs_description,
        features=features,
        module_type="metric",
    )


def compute_with(accumulator: Any, predictions: list, references: list) -> dict[str, Any]:
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    for prediction, reference in zip(predictions, references):
        accumulator.update(prediction, reference)
    return accumulator.results()
