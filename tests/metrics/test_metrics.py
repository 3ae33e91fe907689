from pathlib import Path

import evaluate
import numpy as np
import py_sod_metrics
import pytest

import hf_promptseg.metrics
from hf_promptseg.metrics import BERMetric, CODMetric, PolypMetric, load_metric


def _random_maps(count=4, shape=(40, 56), seed=0):
    rng = np.random.default_rng(seed)
    predictions = [rng.random(shape) for _ in range(count)]
    references = [rng.random(shape) > 0.7 for _ in range(count)]
    return predictions, references


def _hand_made():
    reference = np.zeros((32, 32), bool)
    reference[8:24, 8:24] = True
    prediction = np.zeros((32, 32))
    prediction[10:26, 8:24] = 0.8  # evaluate stores float32: avoid x.5 after scaling to 255
    prediction[0:4, 0:4] = 0.35
    return [prediction], [reference]


def _pysodmetrics(predictions, references):
    measures = {
        "sm": py_sod_metrics.Smeasure(),
        "em": py_sod_metrics.Emeasure(),
        "wfm": py_sod_metrics.WeightedFmeasure(),
        "mae": py_sod_metrics.MAE(),
    }
    for prediction, reference in zip(predictions, references):
        pred = (prediction * 255).round().astype(np.uint8)
        gt = reference.astype(np.uint8) * 255
        for measure in measures.values():
            measure.step(pred=pred, gt=gt)
    em = measures["em"].get_results()["em"]
    return {
        "s_measure": measures["sm"].get_results()["sm"],
        "e_measure_mean": em["curve"].mean(),
        "e_measure_max": em["curve"].max(),
        "e_measure_adaptive": em["adp"],
        "weighted_f_measure": measures["wfm"].get_results()["wfm"],
        "mae": measures["mae"].get_results()["mae"],
    }


@pytest.mark.parametrize("maps", [_random_maps(), _hand_made()], ids=["random", "hand-made"])
def test_cod_metric_equals_pysodmetrics(maps):
    predictions, references = maps
    ours = CODMetric().compute(predictions=predictions, references=references)
    expected = _pysodmetrics(predictions, references)
    assert ours.keys() == expected.keys()
    for name, value in expected.items():
        assert ours[name] == pytest.approx(float(value), abs=1e-6), name


def test_perfect_prediction_scores_best():
    predictions, references = _hand_made()
    scores = CODMetric().compute(predictions=[references[0].astype(float)], references=references)
    assert scores["s_measure"] == pytest.approx(1.0)
    assert scores["mae"] == 0.0
    assert scores["weighted_f_measure"] == pytest.approx(1.0)


def test_modules_load_offline_through_evaluate_load():
    predictions, references = _random_maps(2)
    for name in ("cod", "ber", "polyp"):
        module = load_metric(name)
        assert isinstance(module, evaluate.Metric)
        direct = {"cod": CODMetric, "ber": BERMetric, "polyp": PolypMetric}[name]()
        assert module.compute(predictions=predictions, references=references) == pytest.approx(
            direct.compute(predictions=predictions, references=references)
        )
    path = Path(hf_promptseg.metrics.__file__).with_name("cod_metric.py")
    assert isinstance(evaluate.load(str(path)), evaluate.Metric)


def test_ber_and_polyp_on_hand_made_maps():
    predictions, references = _hand_made()
    # Prediction rows 10:26 (0.8) vs reference 8:24; the 0.35 corner stays below the 0.5 threshold.
    tp, fn = 14 * 16, 2 * 16
    fp = 2 * 16
    tn = 32 * 32 - tp - fn - fp
    ber = 100 * (1 - 0.5 * (tp / (tp + fn) + tn / (tn + fp)))
    scores = BERMetric().compute(predictions=predictions, references=references)
    assert scores["ber"] == pytest.approx(ber)
    assert scores["ber_global"] == pytest.approx(ber)
    polyp = PolypMetric().compute(predictions=predictions, references=references)
    assert polyp["iou"] == pytest.approx(tp / (tp + fp + fn))
    assert polyp["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        CODMetric().compute(predictions=[np.full((4, 4), 3.0)], references=[np.zeros((4, 4), bool)])
    with pytest.raises(ValueError, match="shape of its reference"):
        CODMetric().compute(predictions=[np.zeros((4, 4))], references=[np.zeros((4, 5), bool)])
    with pytest.raises(ValueError, match="must be one of"):
        load_metric("miou")
