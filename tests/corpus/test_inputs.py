import datasets
import numpy as np
import pytest
from PIL import Image

from hf_promptseg.cli import main as cli_main
from hf_promptseg.corpus.inputs import ImageRecord, list_images


def test_folder_glob_and_file_sources(scene_folder):
    assert [r.image_id for r in list_images(scene_folder)] == [
        "broken.png", "scene_0.png", "scene_1.png", "sub/scene_2.png", "sub/scene_3.png"
    ]  # fmt: skip
    matched = list_images(str(scene_folder / "sub" / "*.png"))
    assert [r.image_id.rsplit("/", 1)[-1] for r in matched] == ["scene_2.png", "scene_3.png"]
    assert list_images(scene_folder / "scene_0.png")[0].load().size == (128, 128)
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        list_images(scene_folder)[0].load()
    with pytest.raises(ValueError, match=r"has no pixels \(0x5\)"):
        ImageRecord("empty", "empty.png", lambda: Image.new("RGB", (0, 5))).load()


def test_dataset_sources_with_image_column_and_split(tmp_path):
    images = [Image.fromarray(np.full((20, 30, 3), v, np.uint8)) for v in (10, 200)]
    dataset = datasets.DatasetDict(
        {
            "test": datasets.Dataset.from_dict({"picture": images, "label": [0, 1]}).cast_column(
                "picture", datasets.Image()
            )
        }
    )
    dataset.save_to_disk(tmp_path / "ds")
    records = list_images(tmp_path / "ds", split="test")
    assert [r.image_id for r in records] == ["test/0", "test/1"]
    assert np.asarray(records[1].load())[0, 0].tolist() == [200, 200, 200]
    with pytest.raises(ValueError, match="`--split` 'train' is not in"):
        list_images(tmp_path / "ds", split="train")
    with pytest.raises(ValueError, match="`--image-column` 'image' is not a column"):
        list_images(tmp_path / "ds", image_column="image", split="test")
    dataset["test"].to_parquet(str(tmp_path / "pictures.parquet"))
    assert len(list_images(tmp_path / "pictures.parquet", image_column="picture")) == 2
    out = tmp_path / "masks"
    assert (
        cli_main(["generate", str(tmp_path / "ds"), "--split", "test", "--out", str(out), "--points-per-side", "2"])
        == 0
    )
    assert (out / "results.json").is_file()
