"""Streaming metric state: one image at a time, constant memory. Shared by the `evaluate` modules and the trainer.

The COD/SOD measures are pysodmetrics' (the de-facto reference implementation of these papers' code), not ours.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import py_sod_metrics

# +1: higher is better, -1: lower is better. Used to pick the best checkpoint.
METRIC_DIRECTIONS = {
    "s_measure": 1,
    "e_measure_mean": 1,
    "e_measure_max": 1,
    "e_measure_adaptive": 1,
    "weighted_f_measure": 1,
    "mae": -1,
    "ber": -1,
    "ber_global": -1,
    "iou": 1,
    "dice": 1,
}


def _as_pair(prediction: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float prediction in [0, 1] and (H, W) boolean reference, with clear errors otherwise."""
    prediction = np.asarray(prediction, dtype=np.float64)
    reference = np.asarray(reference)
    if prediction.ndim != 2 or reference.shape != prediction.shape:
        raise ValueError(
            f"each prediction must be an (H, W) map with the shape of its reference, got {prediction.shape} "
            f"and {reference.shape}"
        )
    if prediction.size and (prediction.min() < 0 or prediction.max() > 1):
        raise ValueError("predictions must be probability maps in [0, 1] (apply a sigmoid to logits first)")
    if reference.dtype != bool:
        reference = reference > (127 if reference.max(initial=0) > 1 else 0.5)
    return prediction, reference


class CODAccumulator:
    """S-measure, E-measure (mean/max/adaptive), weighted F-measure and MAE, as camouflaged-object papers report.

    Inputs go through pysodmetrics' protocol: prediction scaled to uint8 and min-max normalised per image, ground
    truth binarised at 128.
    """

    def __init__(self) -> None:
        self._s, self._e = py_sod_metrics.Smeasure(), py_sod_metrics.Emeasure()
        self._wf, self._mae = py_sod_metrics.WeightedFmeasure(), py_sod_metrics.MAE()

    def update(self, prediction: Any, reference: Any) -> None:
        prediction, reference = _as_pair(prediction, reference)
        pred = (prediction * 255).round().astype(np.uint8)
        gt = reference.astype(np.uint8) * 255
        for measure in (self._s, self._e, self._wf, self._mae):
            measure.step(pred=pred, gt=gt)

    def results(self) -> dict[str, float]:
        curve = self._e.get_results()["em"]
        return {
            "s_measure": float(self._s.get_results()["sm"]),
            "e_measure_mean": float(np.mean(curve["curve"])),
            "e_measure_max": float(np.max(curve["curve"])),
            "e_measure_adaptive": float(curve["adp"]),
            "weighted_f_measure": float(self._wf.get_results()["wfm"]),
            "mae": float(self._mae.get_results()["mae"]),
        }


class _BinaryAccumulator:
    """Confusion-matrix measures at a fixed threshold, computed by pysodmetrics' handlers (no min-max rescaling)."""

    handlers: dict[str, Any] = {}

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0 < threshold < 1:
            raise ValueError(f"`threshold` must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self._measure = py_sod_metrics.FmeasureV2(metric_handlers=self._make_handlers())

    def _make_handlers(self) -> dict[str, Any]:
        raise NotImplementedError

    def update(self, prediction: Any, reference: Any) -> None:
        prediction, reference = _as_pair(prediction, reference)
        # pysodmetrics binarises at `> 0.5`; shifting by the threshold keeps its code and our threshold.
        shifted = (prediction > self.threshold).astype(np.float64)
        self._measure.step(pred=shifted, gt=reference, normalize=False)

    def _binary(self, name: str) -> float:
        return float(self._measure.get_results()[name]["binary"])


class BERAccumulator(_BinaryAccumulator):
    """Balance error rate in percent (shadow detection): per-image mean (`ber`) and over all pixels (`ber_global`)."""

    def _make_handlers(self) -> dict[str, Any]:
        return {
            "ber": py_sod_metrics.BERHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            "ber_global": py_sod_metrics.BERHandler(
                with_dynamic=False, with_adaptive=False, with_binary=True, sample_based=False
            ),
        }

    def results(self) -> dict[str, float]:
        return {"ber": 100 * self._binary("ber"), "ber_global": 100 * self._binary("ber_global")}


class PolypAccumulator(_BinaryAccumulator):
    """Per-image mean IoU and Dice of the binarised prediction (polyp segmentation)."""

    def _make_handlers(self) -> dict[str, Any]:
        return {
            "iou": py_sod_metrics.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            "dice": py_sod_metrics.DICEHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
        }

    def results(self) -> dict[str, float]:
        return {"iou": self._binary("iou"), "dice": self._binary("dice")}


ACCUMULATORS = {"cod": CODAccumulator, "ber": BERAccumulator, "polyp": PolypAccumulator}


def make_accumulator(name: str) -> CODAccumulator | BERAccumulator | PolypAccumulator:
    if name not in ACCUMULATORS:
        raise ValueError(f"metric set must be one of {sorted(ACCUMULATORS)}, got {name!r}")
    return ACCUMULATORS[name]()
