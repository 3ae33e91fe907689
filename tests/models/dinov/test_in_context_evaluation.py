import pytest

from hf_promptseg.models.dinov.in_context_evaluation import _iou, evaluate_in_context
from hf_promptseg.training.dinov_trainer import build_dinov


def test_metrics_are_bounded_and_reproducible():
    model = build_dinov("random:tiny")
    first = evaluate_in_context(model, num_pairs=3, seed=5, batch_size=2)
    assert first == evaluate_in_context(model, num_pairs=3, seed=5, batch_size=3), "batching changes nothing"
    assert first["num_prompts"] >= 3
    assert all(0 <= first[k] <= 1 for k in ("top1_miou", "top1_hit_rate", "paste_miou", "oracle_miou"))
    assert first["oracle_miou"] >= first["top1_miou"], "the oracle picks the best proposal"
    with pytest.raises(ValueError, match="`num_pairs` must be positive"):
        evaluate_in_context(model, num_pairs=0)


def test_iou_takes_the_best_fitting_target():
    import numpy as np

    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    other = np.zeros((4, 4), bool)
    other[:2, :] = True
    assert _iou(mask, [other, mask]) == 1.0 and _iou(mask, [other]) == 0.5 and _iou(mask, []) == 0.0
