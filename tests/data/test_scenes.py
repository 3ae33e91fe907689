import numpy as np
import pytest

from hf_promptseg.data.scenes import instance_examples, make_scene, make_scenes


def test_scenes_are_a_pure_function_of_the_seed():
    first, again, other = make_scene(3), make_scene(3), make_scene(4)
    assert np.array_equal(first.image, again.image)
    assert all(np.array_equal(a, b) for a, b in zip(first.masks, again.masks))
    assert not np.array_equal(first.image, other.image)
    assert [s.image.tobytes() for s in make_scenes(3, seed=1)] == [s.image.tobytes() for s in make_scenes(3, seed=1)]


def test_masks_are_visible_parts_and_large_enough():
    for scene in make_scenes(20, seed=0, height=96, width=128):
        assert scene.image.shape == (96, 128, 3) and scene.image.dtype == np.uint8
        assert len(scene.masks) == len(scene.shapes) >= 1
        stacked = np.stack(scene.masks)
        assert stacked.dtype == bool and stacked.sum(0).max() <= 1, "occluded parts must leave the hidden mask"
        assert stacked.sum((1, 2)).min() >= 0.01 * 96 * 128


def test_objects_stand_out_from_the_background():
    scene = make_scene(0)
    background = ~np.any(np.stack(scene.masks), 0)
    for mask in scene.masks:
        gap = np.abs(scene.image[mask].mean(0) - scene.image[background].mean(0)).sum()
        assert gap > 20


def test_instance_examples_give_one_row_per_object():
    scenes = make_scenes(2, seed=5)
    columns = instance_examples(scenes)
    assert len(columns["image"]) == len(columns["mask"]) == sum(len(s.masks) for s in scenes)
    assert set(np.unique(np.asarray(columns["mask"][0]))) <= {0, 255}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"height": 16}, "at least 32"),
        ({"num_objects": (3, 2)}, "num_objects"),
        ({"num_objects": (0, 2)}, "num_objects"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_scene(0, **kwargs)
    with pytest.raises(ValueError, match="`count` must be positive"):
        make_scenes(0, seed=0)
