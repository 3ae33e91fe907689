from pathlib import Path

import evaluate
import numpy as np
import pytest

import hf_promptseg.metrics
from hf_promptseg.metrics import (
    InstanceAPAccumulator,
    InstanceAPMetric,
    ReferringIoUAccumulator,
    ReferringIoUMetric,
    SemanticIoUMetric,
    load_metric,
)


def _box(top, left, height, width, shape=(32, 32)):
    mask = np.zeros(shape, bool)
    mask[top : top + height, left : left + width] = True
    return mask


A, B = _box(2, 2, 10, 10), _box(16, 16, 12, 12)
TRUTH = {"masks": np.stack([A, B]), "labels": [1, 2]}


def _instance_map(masks, scores, labels, reference=TRUTH):
    return InstanceAPMetric().compute(
        predictions=[{"masks": np.stack(masks), "scores": scores, "labels": labels}], references=[reference]
    )


def test_two_perfect_detections_score_one():
    scores = _instance_map([A, B], [0.9, 0.8], [1, 2])
    assert scores == pytest.approx({"map": 1.0, "map_50": 1.0, "map_75": 1.0, "mar": 1.0})


@pytest.mark.parametrize(
    "wrong_score, expected",
    # category 1: the perfect A, plus B mislabelled 1. Ranked first the perfect one gives precision 1 at recall 1
    # (AP 1); ranked second it gives precision 1/2 at every recall (AP 0.5). Category 2 has no detection (AP 0).
    [(0.5, (1.0 + 0.0) / 2), (0.95, (0.5 + 0.0) / 2)],
    ids=["perfect-ranked-first", "wrong-ranked-first"],
)
def test_one_perfect_one_wrong_class(wrong_score, expected):
    scores = _instance_map([A, B], [0.9, wrong_score], [1, 1])
    assert scores["map"] == pytest.approx(expected)
    assert scores["map_50"] == pytest.approx(expected)


def test_iou_thresholds_of_the_coco_average():
    # 72 of A's 100 pixels: IoU 0.72 is a match at thresholds .50 ... .70 (5 of 10), none at .75.
    partial = _box(2, 2, 8, 9)
    scores = _instance_map([partial], [1.0], [1], {"masks": A[None], "labels": [1]})
    assert scores == pytest.approx({"map": 0.5, "map_50": 1.0, "map_75": 0.0, "mar": 0.5})


def test_instance_map_edge_cases():
    accumulator = InstanceAPAccumulator()
    accumulator.update({"masks": [], "scores": [], "labels": []}, TRUTH)
    assert accumulator.results() == {"map": 0.0, "map_50": 0.0, "map_75": 0.0, "mar": 0.0}
    empty = InstanceAPAccumulator()
    empty.update({"masks": A[None], "scores": [1.0], "labels": [1]}, {"masks": np.zeros((0, 32, 32)), "labels": []})
    with pytest.raises(ValueError, match="no instance"):
        empty.results()
    with pytest.raises(ValueError, match="1 masks but 2 scores"):
        InstanceAPAccumulator().update({"masks": A[None], "scores": [1, 2], "labels": [1]}, TRUTH)
    with pytest.raises(TypeError, match="keys"):
        InstanceAPAccumulator().update({"masks": A[None]}, TRUTH)
    with pytest.raises(ValueError, match="predicted masks are"):
        InstanceAPAccumulator().update({"masks": np.zeros((1, 8, 8)), "scores": [1], "labels": [1]}, TRUTH)


def test_semantic_miou_by_hand():
    reference = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])
    prediction = np.array([[0, 0, 0, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 1, 1]])
    # class 0: I 4, U 5; class 1: I 3, U 6; class 2: I 6, U 8; class 3 is absent (NaN, not averaged)
    scores = SemanticIoUMetric().compute(predictions=[prediction], references=[reference], num_labels=4)
    assert scores["mean_iou"] == pytest.approx((0.8 + 0.5 + 0.75) / 3)
    assert scores["overall_accuracy"] == pytest.approx(13 / 16)
    assert scores["per_category_iou"][:3] == pytest.approx([0.8, 0.5, 0.75]) and np.isnan(
        scores["per_category_iou"][3]
    )
    ignored = reference.copy()
    ignored[3] = 255  # the row where the prediction is wrong does not count
    scores = SemanticIoUMetric().compute(
        predictions=[prediction], references=[ignored], num_labels=3, ignore_index=255
    )
    assert scores["per_category_iou"] == pytest.approx([0.8, 3 / 4, 1.0])


def test_semantic_iou_sums_over_the_dataset():
    first, second = np.array([[1, 0, 0, 0]]), np.array([[1, 0, 0, 0]])
    predicted_second = np.array([[1, 1, 1, 0]])
    scores = SemanticIoUMetric().compute(
        predictions=[first, predicted_second], references=[first, second], num_labels=2
    )
    assert scores["per_category_iou"][1] == pytest.approx(2 / 4), "not the per-image mean (1 + 1/3) / 2"
    with pytest.raises(ValueError, match="num_labels"):
        SemanticIoUMetric().compute(predictions=[first], references=[first])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        SemanticIoUMetric().compute(predictions=[first * 3], references=[first], num_labels=2)


def test_referring_miou_and_ciou_by_hand():
    big, small, elsewhere = _box(0, 0, 10, 10), _box(20, 20, 2, 2), _box(25, 25, 2, 2)
    scores = ReferringIoUMetric().compute(predictions=[big, small], references=[big, elsewhere])
    assert scores["miou"] == pytest.approx(0.5)
    assert scores["ciou"] == pytest.approx(100 / (100 + 8))
    assert scores["hit_rate"] == pytest.approx(0.5)
    accumulator = ReferringIoUAccumulator()
    assert accumulator.update(small, np.stack([elsewhere, small])) == 1.0, "the best-fitting target counts"
    with pytest.raises(ValueError, match="reference masks are"):
        accumulator.update(small, np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="no prompt"):
        ReferringIoUAccumulator().results()


def test_new_modules_load_offline_through_evaluate_load():
    module = load_metric("referring_miou")
    assert isinstance(module, evaluate.Metric)
    assert module.compute(predictions=[A], references=[A])["miou"] == 1.0
    instance = load_metric("instance_map")
    scores = instance.compute(
        predictions=[{"masks": np.stack([A, B]), "scores": [0.9, 0.8], "labels": [1, 2]}], references=[TRUTH]
    )
    assert scores["map"] == pytest.approx(1.0)
    semantic = evaluate.load(str(Path(hf_promptseg.metrics.__file__).with_name("semantic_miou_metric.py")))
    assert semantic.compute(predictions=[A.astype(int)], references=[A.astype(int)], num_labels=2)["mean_iou"] == 1.0
