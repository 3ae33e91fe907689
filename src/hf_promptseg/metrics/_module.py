"""The `evaluate.Metric` plumbing shared by our metric modules: features, and feeding an accumulator."""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

# Maps differ in size from image to image: nested lists, not Array2D.
MAP_FEATURES = datasets.Features(
    {
        "predictions": datasets.List(datasets.List(datasets.Value("float32"))),
        "references": datasets.List(datasets.List(datasets.Value("float32"))),
    }
)


def metric_info(description: str) -> evaluate.MetricInfo:
    return evaluate.MetricInfo(
        description=description,
        citation="",
        inputs_description="predictions: list of (H, W) probability maps in [0, 1]; references: list of (H, W) "
        "binary masks (bool, {0, 1} or {0, 255}).",
        features=MAP_FEATURES,
        module_type="metric",
    )


def compute_with(accumulator: Any, predictions: list, references: list) -> dict[str, float]:
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    for prediction, reference in zip(predictions, references):
        accumulator.update(prediction, reference)
    return accumulator.results()
