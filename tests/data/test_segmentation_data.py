import json

import numpy as np
import pytest
import torch
from PIL import Image

from hf_promptseg.data.camouflage import camouflage_dataset, make_camouflage_sample
from hf_promptseg.data.segmentation import (
    SegmentationTransform,
    collate_segmentation,
    load_segmentation_dataset,
    random_flip_scale_crop,
)
from hf_promptseg.models.sam_adapter.predict import reference_image_processor


def _write_pairs(images_dir, masks_dir, count=3, size=40, mask_suffix=".png"):
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    stems = []
    for index in range(count):
        image, mask = make_camouflage_sample(index, size)
        stem = f"sample_{index}"
        Image.fromarray(image).save(images_dir / f"{stem}.jpg")
        Image.fromarray(mask.astype(np.uint8) * 255).save(masks_dir / f"{stem}{mask_suffix}")
        stems.append(stem)
    return stems


def test_camouflage_samples_are_reproducible_and_masks_exact():
    image_a, mask_a = make_camouflage_sample(3, 64)
    image_b, mask_b = make_camouflage_sample(3, 64)
    assert np.array_equal(image_a, image_b) and np.array_equal(mask_a, mask_b)
    assert 0.02 < mask_a.mean() < 0.6
    inside, outside = image_a[mask_a].mean(0), image_a[~mask_a].mean(0)
    assert np.abs(inside - outside).sum() < 90  # camouflaged: close colours
    assert len(camouflage_dataset(3, size=32)) == 3


def test_cod_folder_pairs_by_stem_and_rejects_unpaired(tmp_path):
    _write_pairs(tmp_path / "cod" / "Imgs", tmp_path / "cod" / "GT")
    dataset = load_segmentation_dataset(str(tmp_path / "cod"))
    assert dataset.column_names == ["image", "mask"] and len(dataset) == 3
    assert dataset[0]["image"].size == dataset[0]["mask"].size
    (tmp_path / "cod" / "GT" / "sample_2.png").rename(tmp_path / "cod" / "GT" / "other.png")
    with pytest.raises(ValueError, match="pair by file name"):
        load_segmentation_dataset(str(tmp_path / "cod"))


def test_imagefolder_with_metadata_and_parquet(tmp_path):
    folder = tmp_path / "imagefolder"
    stems = _write_pairs(folder / "images", folder / "masks")
    with open(folder / "metadata.jsonl", "w") as handle:
        for stem in stems:
            handle.write(json.dumps({"file_name": f"images/{stem}.jpg", "mask_file_name": f"masks/{stem}.png"}) + "\n")
    dataset = load_segmentation_dataset(str(folder))
    assert len(dataset) == 3 and set(dataset.column_names) == {"image", "mask"}
    parquet = tmp_path / "data.parquet"
    camouflage_dataset(4, size=32).rename_column("mask", "label").to_parquet(str(parquet))
    from_parquet = load_segmentation_dataset(str(parquet), mask_column="label")
    assert len(from_parquet) == 4 and from_parquet[0]["mask"].mode == "L"


def test_transform_uses_the_model_processor_and_keeps_soft_masks():
    processor = reference_image_processor(32)
    dataset = camouflage_dataset(2, size=48).with_transform(SegmentationTransform(processor))
    batch = collate_segmentation([dataset[0], dataset[1]])
    assert batch["pixel_values"].shape == (2, 3, 32, 32) and batch["labels"].shape == (2, 1, 32, 32)
    expected = processor([dataset.with_format(None)[0]["image"]], return_tensors="pt")["pixel_values"][0]
    assert torch.equal(batch["pixel_values"][0], expected)
    assert set(batch["labels"].unique().tolist()) <= {0.0, 1.0}
    soft = SegmentationTransform(processor).labels(Image.fromarray(np.full((16, 16), 128, np.uint8)), (16, 16))
    assert torch.allclose(soft, torch.full((1, 16, 16), 128 / 255))


def test_an_image_size_still_works_with_a_warning():
    with pytest.warns(FutureWarning, match="pass the model's image processor"):
        transform = SegmentationTransform(32)
    assert transform.image_processor.to_dict() == reference_image_processor(32).to_dict()
    with pytest.raises(TypeError, match="`image_processor` must be an image processor"):
        SegmentationTransform("32")


def test_augmentation_moves_image_and_mask_together():
    # The mask marks exactly where channel 0 is positive (a large square); augmenting must keep that true.
    labels = torch.zeros(6, 1, 32, 32)
    labels[:, :, 6:22, 10:30] = 1
    pixel_values = (labels * 2 - 1).expand(-1, 3, -1, -1).clone()
    images, masks = random_flip_scale_crop(pixel_values, labels, torch.Generator().manual_seed(1), (0.5, 1.5))
    assert images.shape == pixel_values.shape and masks.shape == labels.shape
    agree = ((images[:, :1] > 0).float() == masks).float().mean()
    assert agree > 0.98
    assert not torch.equal(masks, labels)
    again, _ = random_flip_scale_crop(pixel_values, labels, torch.Generator().manual_seed(1), (0.5, 1.5))
    assert torch.equal(images, again)
    assert not torch.equal(images, pixel_values)


def test_bad_sources_raise(tmp_path):
    with pytest.raises(ValueError, match="synthetic:<count>"):
        load_segmentation_dataset("synthetic:many")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="expected Imgs/"):
        load_segmentation_dataset(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="no column 'segmentation'"):
        load_segmentation_dataset("synthetic:2:0:32", mask_column="segmentation")
