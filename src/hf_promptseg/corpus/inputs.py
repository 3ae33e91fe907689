"""Where a corpus run's images come from: one file, a folder (recursively), a glob, or a `datasets` dataset.

Every source yields `ImageRecord`s in a stable order, each with a string id (the path relative to the folder, the
path for files and globs, `split/index` for datasets) and a loader, so a bad image fails alone when it is loaded
and the other images still run.

Example:

```python
from pathlib import Path
from PIL import Image
from hf_promptseg.corpus.inputs import list_images

Path("pics").mkdir(exist_ok=True)
Image.new("RGB", (40, 30)).save("pics/a.png")
records = list_images("pics")
[r.image_id for r in records], records[0].load().size  # (['a.png'], (40, 30))
```
"""

from __future__ import annotations

import glob as globbing
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
DATASET_FILE_SUFFIXES = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "json", ".json": "json", ".csv": "csv"}


@dataclass
class ImageRecord:
    """One image of a source: its id, a human-readable origin, and how to load it (as RGB PIL)."""

    image_id: str
    origin: str
    loader: Callable[[], Image.Image]

    def load(self) -> Image.Image:
        """The image as RGB; `ValueError` naming the origin when it cannot be read or has no pixels.

        PIL's decompression-bomb guard is lifted while loading: large images are what tiling is for, and the user
        chose the file."""
        guard, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = self.loader()
            image.load()
        except (OSError, UnidentifiedImageError, SyntaxError) as err:
            raise ValueError(f"cannot read image {self.origin}: {err}") from err
        finally:
            Image.MAX_IMAGE_PIXELS = guard
        if image.width == 0 or image.height == 0:
            raise ValueError(f"image {self.origin} has no pixels ({image.width}x{image.height})")
        return image.convert("RGB")


def _file_record(path: Path, image_id: str) -> ImageRecord:
    return ImageRecord(image_id, str(path), lambda: Image.open(path))


def _is_glob(text: str) -> bool:
    return any(char in text for char in "*?[")


def list_images(
    source: str | os.PathLike,
    image_column: str | None = None,
    split: str | None = None,
) -> list[ImageRecord]:
    """The images of `source` (see the module docstring), in a stable order.

    A directory is a `datasets` dataset when it was written by `save_to_disk` or when `image_column` is given;
    otherwise its image files are listed recursively. A `.parquet`/`.arrow`/`.jsonl`/`.csv` file, or a name that is
    neither a path nor a glob (a Hub id), is loaded with `datasets`.
    """
    text = os.fspath(source)
    path = Path(text)
    if _is_glob(text) and not path.exists():
        matches = sorted(p for p in globbing.glob(text, recursive=True) if Path(p).is_file())
        if not matches:
            raise FileNotFoundError(f"no file matches the pattern {text!r}")
        return [_file_record(Path(p), p) for p in matches]
    if path.is_file() and path.suffix.lower() in DATASET_FILE_SUFFIXES:
        return _dataset_records(text, image_column, split, builder=DATASET_FILE_SUFFIXES[path.suffix.lower()])
    if path.is_file():
        return [_file_record(path, path.name)]
    if path.is_dir():
        if image_column is not None or _saved_dataset(path):
            return _dataset_records(text, image_column, split)
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"folder {text} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return [_file_record(p, p.relative_to(path).as_posix()) for p in files]
    looks_like_path = text.startswith((".", "/", "~")) or text.count("/") > 1 or path.suffix.lower() in IMAGE_SUFFIXES
    if looks_like_path:
        raise FileNotFoundError(f"input not found: {text}")
    return _dataset_records(text, image_column, split)


def _saved_dataset(path: Path) -> bool:
    """Whether `path` was written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return any((path / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json"))


def _dataset_records(source: str, image_column: str | None, split: str | None, builder: str | None = None):
    import datasets

    path = Path(source)
    if path.is_dir() and _saved_dataset(path):
        dataset: Any = datasets.load_from_disk(source)
    elif builder is not None:
        dataset = datasets.load_dataset(builder, data_files=source)
    else:
        dataset = datasets.load_dataset(source)
    if isinstance(dataset, datasets.DatasetDict):
        if split is None:
            split = "train" if "train" in dataset else next(iter(dataset))
        if split not in dataset:
            raise ValueError(f"`--split` {split!r} is not in {source} (splits: {', '.join(dataset)})")
        dataset = dataset[split]
    split = split or "train"
    if image_column is None:
        image_columns = [n for n, f in dataset.features.items() if isinstance(f, datasets.Image)]
        if not image_columns:
            raise ValueError(f"{source} has no image column; pass `--image-column` (columns: {dataset.column_names})")
        image_column = image_columns[0]
    if image_column not in dataset.column_names:
        raise ValueError(f"`--image-column` {image_column!r} is not a column of {source}: {dataset.column_names}")
    column = dataset.select_columns([image_column])

    def loader(index: int) -> Callable[[], Image.Image]:
        def load() -> Image.Image:
            value = column[index][image_column]
            if isinstance(value, Image.Image):
                return value
            if isinstance(value, dict) and value.get("path"):
                return Image.open(value["path"])
            if isinstance(value, str):
                return Image.open(value)
            raise ValueError(f"row {index} of column {image_column!r} is a {type(value).__name__}, not an image")

        return load

    return [ImageRecord(f"{split}/{i}", f"{source} [{split} row {i}]", loader(i)) for i in range(len(column))]


__all__ = ["IMAGE_SUFFIXES", "ImageRecord", "list_images"]
