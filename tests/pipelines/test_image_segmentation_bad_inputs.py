"""Prompt-free `pipeline("image-segmentation")`: numpy / torch / float images accepted, bad arguments named."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import hf_promptseg  # noqa: F401
from hf_promptseg.assets import demo_sam_path

IMAGE = np.random.RandomState(0).randint(0, 255, (48, 64, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def segmenter():
    return pipeline("image-segmentation", model=demo_sam_path())


def test_numpy_torch_and_float_images_give_the_pil_result(segmenter):
    expected = np.asarray(segmenter(Image.fromarray(IMAGE))[0]["mask"])
    for image in (IMAGE, torch.from_numpy(IMAGE).permute(2, 0, 1), IMAGE / 255.0):
        assert np.array_equal(np.asarray(segmenter(image)[0]["mask"]), expected)


@pytest.mark.parametrize(
    "image, kwargs, error, match",
    [
        (IMAGE, dict(threshold=1.5), ValueError, r"`threshold` is 1.5; expected a finite number in \[0, 1\]"),
        (IMAGE, dict(threshold=float("nan")), ValueError, "`threshold` is nan"),
        (IMAGE, dict(threshold="high"), TypeError, "`threshold` must be a number, got str"),
        (IMAGE, dict(treshold=0.5), TypeError, "unexpected keyword argument.*`treshold`; did you mean `threshold`"),
        (IMAGE.astype(np.float64), {}, ValueError, r"`image` is a float image with values in \[0, 25[0-9]\]"),
        (IMAGE[..., :2], {}, ValueError, "no channel axis of size 1 or 3"),
        (IMAGE.astype(np.int16), {}, TypeError, "`image` has dtype int16"),
    ],
)
def test_bad_inputs(segmenter, image, kwargs, error, match):
    with pytest.raises(error, match=match):
        segmenter(image, **kwargs)
