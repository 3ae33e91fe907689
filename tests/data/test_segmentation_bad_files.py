"""Broken dataset files are named when the dataset is opened, not deep inside a training step."""

import numpy as np
import pytest
from PIL import Image

from hf_promptseg.data.segmentation import load_segmentation_dataset
from hf_promptseg.utils.files import CorruptFileError


def _cod(root, broken: str, content: bytes):
    for folder in ("Imgs", "GT"):
        (root / folder).mkdir(parents=True)
    for stem in ("a", "b"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "Imgs" / f"{stem}.jpg")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "GT" / f"{stem}.png")
    (root / broken).write_bytes(content)
    return root / broken


@pytest.mark.parametrize(
    "broken, content",
    [("Imgs/b.jpg", b""), ("Imgs/b.jpg", b"text, not an image"), ("GT/a.png", b"\x89PNG\r\n\x1a\n broken")],
)
def test_broken_images_of_a_cod_folder_are_named(tmp_path, broken, content):
    path = _cod(tmp_path / "cod", broken, content)
    with pytest.raises(CorruptFileError, match="not a readable image") as info:
        load_segmentation_dataset(str(tmp_path / "cod"))
    assert info.value.path == path


@pytest.mark.parametrize("content", [b"", b"not a parquet file"])
def test_broken_parquet_is_named(tmp_path, content):
    path = tmp_path / "train.parquet"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match="unreadable parquet data") as info:
        load_segmentation_dataset(str(path))
    assert str(path) in str(info.value)
