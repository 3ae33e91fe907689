"""Bad arguments of `pipeline("visual-prompt-segmentation")`: refused by name before the model runs."""

import numpy as np
import pytest
import torch
from transformers import pipeline

import hf_promptseg  # noqa: F401
from hf_promptseg.models.dinov import DinovForVisualPromptSegmentation, DinovImageProcessor
from tests.models.dinov.test_modeling_dinov import tiny_config

TARGET = np.zeros((60, 80, 3), np.uint8)


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("dinov")
    DinovForVisualPromptSegmentation(tiny_config()).eval().save_pretrained(out)
    DinovImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(out)
    return pipeline("visual-prompt-segmentation", model=str(out))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(prompts={"boxes": [[float("nan"), 0, 10, 10]]}), ValueError, r"`prompts\['boxes'\]`\[0\] holds"),
        (dict(reference_images=[TARGET], prompts=[{"points": [[1, 1]]}, {"points": [[2, 2]]}]), ValueError,
         r"`prompts` holds 2 prompt dict\(s\) for 1 `reference_images`"),
        (dict(prompts=[{"points": [[1, 1]]}, {"points": [[2, 2]]}]), ValueError,
         r"`prompts` holds 2 prompt dict\(s\) for 1 target image"),
        (dict(prompts={"points": [[1, 1]]}, iou_threshold=float("inf")), ValueError, "`iou_threshold` is inf"),
        (dict(prompts={"points": [[1, 1]]}, nms_threshold=3), ValueError, "`nms_threshold` is 3"),
        (dict(prompts={"points": [[1, 1]]}, threshold=float("nan")), ValueError, "`threshold` is nan"),
        (dict(prompts={"points": [[1, 1]]}, num_examples=0), ValueError, "`num_examples` is 0"),
        (dict(prompts={"points": [[1, 1]]}, seed=-1), ValueError, "`seed` is -1"),
        (dict(prompts={"points": [[1, 1]]}, iou_tresh=0.1), TypeError, "`iou_tresh`; did you mean `iou_threshold`"),
    ],
)  # fmt: skip
def test_bad_arguments(segmenter, kwargs, error, match):
    with pytest.raises(error, match=match):
        segmenter(TARGET, **kwargs)


def test_float_target_with_0_to_255_values_is_refused(segmenter):
    with pytest.raises(ValueError, match=r"float image with values in \[0, 255\]"):
        segmenter(np.linspace(0, 255, 60 * 80 * 3).reshape(60, 80, 3), prompts={"points": [[1, 1]]})
