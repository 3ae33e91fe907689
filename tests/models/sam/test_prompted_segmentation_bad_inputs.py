import numpy as np
import pytest

from hf_promptseg.assets import demo_sam_path
from hf_promptseg.data.scenes import make_scene
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter


@pytest.fixture(scope="module")
def segmenter():
    return PromptedSegmenter(demo_sam_path())


@pytest.fixture(scope="module")
def scene():
    return make_scene(seed=0, height=64, width=64)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(points=[(float("nan"), 10)]), ValueError, r"`input_points`\[0\] holds 1 non-finite"),
        (dict(boxes=[(0, 0, float("inf"), 10)]), ValueError, r"`input_boxes`\[0\] holds 1 non-finite"),
        (dict(points=[(10, 10, 3)]), ValueError, r"`input_points`\[0\] has shape"),
        (dict(points=[(10, 10)], boxes=[(0, 0, 5, 5)]), ValueError, "pass exactly one of"),
    ],
)
def test_bad_prompts(segmenter, scene, kwargs, error, match):
    with pytest.raises(error, match=match):
        segmenter.segment(scene.image, **kwargs)


def test_images(segmenter, scene):
    with pytest.raises(ValueError, match=r"`image` is a float image with values in"):
        segmenter.segment(scene.image.astype(np.float32) + 10, points=[(10, 10)])
    masks, _ = segmenter.segment(scene.image, boxes=[(5, 5, 40, 40)])
    from_float, _ = segmenter.segment(scene.image / 255.0, boxes=[(5, 5, 40, 40)])
    assert np.array_equal(masks, from_float)
