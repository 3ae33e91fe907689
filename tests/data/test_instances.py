import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from hf_promptseg.data.instances import (
    SCENE_CATEGORIES,
    decode_instances,
    load_coco_instances,
    load_instance_dataset,
    scene_instance_dataset,
    write_coco_instances,
)
from hf_promptseg.data.scenes import make_scenes


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(3, seed=5, height=48, width=64)


def _polygon_coco(folder):
    """A COCO file with one polygon and one uncompressed-RLE annotation on a 40×50 image."""
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (50, 40)).save(folder / "images" / "a.png")
    rle_mask = np.zeros((40, 50), np.uint8)
    rle_mask[20:30, 30:45] = 1
    counts = mask_utils.encode(np.asfortranarray(rle_mask))
    uncompressed = {"size": [40, 50], "counts": _uncompressed_counts(rle_mask)}
    assert mask_utils.decode(mask_utils.frPyObjects(uncompressed, 40, 50)).sum() == rle_mask.sum()
    coco = {
        "images": [{"id": 7, "file_name": "a.png", "height": 40, "width": 50}],
        "categories": [{"id": 3, "name": "square"}, {"id": 9, "name": "bar"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 9, "segmentation": uncompressed, "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 9, "segmentation": {"size": [40, 50],
             "counts": counts["counts"].decode()}, "iscrowd": 1},
        ],
    }  # fmt: skip
    (folder / "annotations.json").write_text(json.dumps(coco))
    return folder / "annotations.json", rle_mask


def _uncompressed_counts(mask):
    flat = mask.flatten(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


def test_coco_polygons_and_rle_decode_with_pycocotools(tmp_path):
    path, rle_mask = _polygon_coco(tmp_path)
    dataset, categories = load_coco_instances(path, tmp_path / "images")
    assert categories == {3: "square", 9: "bar"}
    row = decode_instances(dataset[0])
    assert row["masks"].shape == (2, 40, 50), "the crowd annotation is skipped"
    expected_polygon = mask_utils.decode(
        mask_utils.merge(mask_utils.frPyObjects([[2, 2, 12, 2, 12, 12, 2, 12]], 40, 50))
    )
    assert np.array_equal(row["masks"][0], expected_polygon.astype(bool))
    assert np.array_equal(row["masks"][1], rle_mask.astype(bool))
    assert row["category_ids"].tolist() == [3, 9] and row["labels"].tolist() == [0, 1]
    np.testing.assert_allclose(row["boxes"][1], [30, 20, 45, 30])
    with_crowd = load_coco_instances(path, tmp_path / "images", include_crowd=True).dataset
    assert len(with_crowd[0]["masks"]) == 3


@pytest.mark.parametrize("mask_format", ["rle", "uncompressed_rle"])
def test_scenes_written_as_coco_load_back_exactly(scenes, tmp_path, mask_format):
    path = write_coco_instances(scenes, tmp_path, mask_format=mask_format)
    dataset, categories = load_coco_instances(path, tmp_path / "images")
    assert categories == SCENE_CATEGORIES and len(dataset) == 3
    for scene, example in zip(scenes, dataset):
        row = decode_instances(example)
        assert np.array_equal(row["image"], scene.image)
        assert np.array_equal(row["masks"], np.stack(scene.masks))
        assert [SCENE_CATEGORIES[c] for c in row["category_ids"]] == scene.shapes
    direct = scene_instance_dataset(scenes).dataset
    assert direct[1]["masks"] == dataset[1]["masks"] and direct[1]["boxes"] == dataset[1]["boxes"]
    assert direct.features["labels"].feature.names == list(SCENE_CATEGORIES.values())


def test_hub_style_dataset_with_array_masks(scenes):
    import datasets

    columns = {
        "image": [Image.fromarray(s.image) for s in scenes],
        "masks": [[m.astype(np.uint8).tolist() for m in s.masks] for s in scenes],
        "category_ids": [[list(SCENE_CATEGORIES.values()).index(k) + 1 for k in s.shapes] for s in scenes],
    }
    dataset, categories = load_instance_dataset(datasets.Dataset.from_dict(columns), categories=SCENE_CATEGORIES)
    assert categories == SCENE_CATEGORIES
    assert np.array_equal(decode_instances(dataset[2])["masks"], np.stack(scenes[2].masks))


def test_bad_input_names_the_problem(tmp_path, scenes):
    import datasets

    path, _ = _polygon_coco(tmp_path)
    coco = json.loads(path.read_text())
    coco["annotations"][0]["category_id"] = 42
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="annotation 1 has unknown category id 42"):
        load_coco_instances(bad, tmp_path / "images")
    coco = json.loads(path.read_text())
    coco["annotations"][1]["segmentation"]["size"] = [10, 10]
    bad.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=r"RLE mask size \[10, 10\] does not match its image \(40, 50\)"):
        load_coco_instances(bad, tmp_path / "images")
    wrong = {"image": [Image.fromarray(scenes[0].image)], "masks": [[np.zeros((5, 5), np.uint8).tolist()]],
             "category_ids": [[1]]}  # fmt: skip
    with pytest.raises(ValueError, match=r"row 0, instance 0 of `masks`: mask of shape \(5, 5\)"):
        load_instance_dataset(datasets.Dataset.from_dict(wrong), categories=SCENE_CATEGORIES)
    with pytest.raises(ValueError, match="`masks_column` 'segments' is not a column"):
        load_instance_dataset(datasets.Dataset.from_dict(wrong), masks_column="segments")
