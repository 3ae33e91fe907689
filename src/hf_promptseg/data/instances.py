"""Instance-segmentation data (one row per image, every instance's mask and category) as `datasets.Dataset`s.

Sources:
- `load_coco_instances(annotation_file, image_dir)`: a COCO instances JSON (polygon, compressed or uncompressed RLE
  segmentations, decoded with pycocotools) and its image folder;
- `load_instance_dataset(source)`: a Hub dataset id, a local parquet file/folder or an in-memory `datasets.Dataset`
  with an image column, a per-instance masks column and a per-instance category column (names configurable);
- `scene_instance_dataset(scenes)`: the procedural scenes, their shape kinds as categories;
  `write_coco_instances(scenes, folder)` writes them as a COCO file + image folder.

Every loader returns `InstanceDataset(dataset, categories)`, `categories` = {category id: name}. Rows hold `image`
(`datasets.Image`), `image_id`, `height`, `width`, `masks` (COCO compressed RLE strings of size height × width),
`category_ids` (source ids), `labels` (contiguous indices, a `ClassLabel` whose names survive parquet and
`save_to_disk`) and `boxes` (xyxy pixels, from the masks). Masks are stored as RLE strings because a binary mask
compresses ~50-100× that way, stays exact, and one string per instance is a flat Arrow column whatever the image
size (nested 0/1 lists of varying shape are huge and slow); `decode_instances(row)` decodes them on access.

Example:

```python
from hf_promptseg.data.instances import decode_instances, scene_instance_dataset
from hf_promptseg.data.scenes import make_scenes

dataset, categories = scene_instance_dataset(make_scenes(4, seed=0, height=64, width=64))
row = decode_instances(dataset[0])
row["masks"].shape, categories[1]  # ((T, 64, 64), 'ellipse')
```
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from hf_promptseg.data.scenes import SHAPES, Scene
from hf_promptseg.utils.run_length import encode_run_lengths


class InstanceDataset(NamedTuple):
    """A `datasets.Dataset` of instance rows and its {category id: name} mapping."""

    dataset: Any
    categories: dict[int, str]


def instance_features(categories: Mapping[int, str]):
    """The `datasets.Features` of instance rows; `labels` index the categories in increasing id order."""
    import datasets

    names = [categories[key] for key in sorted(categories)]
    return datasets.Features(
        {
            "image": datasets.Image(),
            "image_id": datasets.Value("int64"),
            "height": datasets.Value("int32"),
            "width": datasets.Value("int32"),
            "masks": datasets.List(datasets.Value("string")),
            "category_ids": datasets.List(datasets.Value("int64")),
            "labels": datasets.List(datasets.ClassLabel(names=names)),
            "boxes": datasets.List(datasets.List(datasets.Value("float32"), length=4)),
        }
    )


def encode_mask(mask: np.ndarray) -> str:
    """COCO compressed RLE string of an (H, W) binary mask."""
    return mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))["counts"].decode("ascii")


def decode_masks(rles: Sequence[str], height: int, width: int) -> np.ndarray:
    """(T, height, width) bool masks from compressed RLE strings."""
    if not rles:
        return np.zeros((0, height, width), dtype=bool)
    decoded = mask_utils.decode([{"size": [height, width], "counts": rle} for rle in rles])
    return np.moveaxis(decoded, -1, 0).astype(bool)


def decode_instances(example: Mapping[str, Any]) -> dict[str, Any]:
    """A row with `image` as an (H, W, 3) uint8 array, `masks` (T, H, W) bool, `labels`/`category_ids` (T,) int64
    and `boxes` (T, 4) float32 arrays."""
    height, width = int(example["height"]), int(example["width"])
    return {
        "image": np.asarray(_as_pil(example["image"]).convert("RGB")),
        "image_id": example.get("image_id"),
        "masks": decode_masks(example["masks"], height, width),
        "category_ids": np.asarray(example["category_ids"], dtype=np.int64),
        "labels": np.asarray(example["labels"], dtype=np.int64),
        "boxes": np.asarray(example["boxes"], dtype=np.float32).reshape(-1, 4),
    }


def _as_pil(value: Any) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        return Image.fromarray(value)
    if isinstance(value, Mapping) and (value.get("bytes") or value.get("path")):
        import io

        return Image.open(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"])
    raise TypeError(f"expected a PIL image, an array or an {{'bytes', 'path'}} dict, got {type(value).__name__}")


def _box(rle: dict) -> list[float]:
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return [x, y, x + w, y + h]


def _row(image: Any, image_id: int, height: int, width: int, rles: list[dict], category_ids, label_of) -> dict:
    return {
        "image": image,
        "image_id": int(image_id),
        "height": int(height),
        "width": int(width),
        "masks": [
            rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"] for rle in rles
        ],
        "category_ids": [int(c) for c in category_ids],
        "labels": [label_of[int(c)] for c in category_ids],
        "boxes": [_box(rle) for rle in rles],
    }


def _finish(rows: list[dict], categories: dict[int, str], where: str) -> InstanceDataset:
    import datasets

    if not rows:
        raise ValueError(f"{where}: the dataset is empty (no image rows)")
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    return InstanceDataset(datasets.Dataset.from_dict(columns, features=instance_features(categories)), categories)


def _coco_rle(segmentation: Any, height: int, width: int, where: str) -> dict:
    """One annotation's segmentation (polygons, compressed or uncompressed RLE) → compressed RLE."""
    if isinstance(segmentation, list):
        if not segmentation or any(len(polygon) < 6 or len(polygon) % 2 for polygon in segmentation):
            raise ValueError(f"{where}: polygons must be non-empty lists of x, y pairs (at least 3 points)")
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if [int(v) for v in segmentation["size"]] != [height, width]:
            raise ValueError(
                f"{where}: RLE mask size {list(segmentation['size'])} does not match its image ({height}, {width})"
            )
        if isinstance(segmentation["counts"], list):
            return mask_utils.frPyObjects(segmentation, height, width)
        counts = segmentation["counts"]
        return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise ValueError(f"{where}: `segmentation` must be polygons or an RLE dict with `size` and `counts`")


def load_coco_instances(
    annotation_file: str | Path, image_dir: str | Path, include_crowd: bool = False
) -> InstanceDataset:
    """Rows from a COCO instances JSON and its image folder (crowd annotations are skipped unless `include_crowd`).

    Raises `ValueError` naming the file and the annotation for unknown category or image ids, missing or malformed
    segmentations, masks whose size differs from their image, missing image files and an empty dataset.
    """
    annotation_file, image_dir = Path(annotation_file), Path(image_dir)
    if not annotation_file.is_file():
        raise ValueError(f"`annotation_file` {annotation_file} does not exist")
    with open(annotation_file) as handle:
        coco = json.load(handle)
    if not isinstance(coco, dict) or not coco.get("images"):
        raise ValueError(f"{annotation_file}: the dataset is empty (no `images` entries)")
    categories = {int(c["id"]): str(c["name"]) for c in coco.get("categories") or []}
    if not categories:
        raise ValueError(f"{annotation_file}: no `categories` entries")
    images = {int(image["id"]): image for image in coco["images"]}
    by_image: dict[int, list[dict]] = {image_id: [] for image_id in images}
    for annotation in coco.get("annotations") or []:
        where = f"{annotation_file}: annotation {annotation.get('id')}"
        if int(annotation.get("category_id", -1)) not in categories:
            raise ValueError(f"{where} has unknown category id {annotation.get('category_id')!r}")
        if int(annotation.get("image_id", -1)) not in images:
            raise ValueError(f"{where} has unknown image id {annotation.get('image_id')!r}")
        if not annotation.get("segmentation"):
            raise ValueError(f"{where} has no `segmentation`")
        by_image[int(annotation["image_id"])].append(annotation)
    label_of = {category: index for index, category in enumerate(sorted(categories))}
    rows = []
    for image_id, image in images.items():
        path = image_dir / image["file_name"]
        if not path.is_file():
            raise ValueError(f"{annotation_file}: image {image_id}'s file {path} is missing")
        height, width = int(image["height"]), int(image["width"])
        with Image.open(path) as opened:
            if opened.size != (width, height):
                raise ValueError(
                    f"{annotation_file}: image {image_id} is {opened.size[0]}x{opened.size[1]} on disk but "
                    f"{width}x{height} in the JSON ({path})"
                )
        kept = [a for a in by_image[image_id] if include_crowd or not a.get("iscrowd", 0)]
        rles = [
            _coco_rle(a["segmentation"], height, width, f"{annotation_file}: annotation {a.get('id')}") for a in kept
        ]
        rows.append(_row(str(path), image_id, height, width, rles, [a["category_id"] for a in kept], label_of))
    return _finish(rows, categories, str(annotation_file))


def _instance_mask(value: Any, height: int, width: int, where: str) -> dict:
    """A mask given as a PIL image, an array, a nested list, an RLE dict or an RLE string → compressed RLE."""
    if isinstance(value, str):
        return {"size": [height, width], "counts": value.encode("ascii")}
    if isinstance(value, Mapping) and "counts" in value:
        return _coco_rle(dict(value), height, width, where)
    array = np.asarray(_as_pil(value)) if isinstance(value, (Image.Image, Mapping)) else np.asarray(value)
    if array.ndim == 3:
        array = array[..., 0]
    if array.shape != (height, width):
        raise ValueError(f"{where}: mask of shape {array.shape} does not match its image ({height}, {width})")
    return mask_utils.encode(np.asfortranarray((array > 0).astype(np.uint8)))


def load_instance_dataset(
    source: Any,
    split: str = "train",
    image_column: str = "image",
    masks_column: str = "masks",
    category_column: str = "category_ids",
    categories: Mapping[int, str] | None = None,
) -> InstanceDataset:
    """Rows from a Hub dataset id, a parquet file/folder or a `datasets.Dataset` with per-instance columns.

    `masks_column` holds one list per image of masks (images, arrays, nested lists, COCO RLE dicts or strings);
    `category_column` one list of category ids. Categories come from `categories`, else from the column's
    `ClassLabel` names, else every id seen is its own name.
    """
    import datasets

    where = source if isinstance(source, str) else "`source`"
    if isinstance(source, datasets.Dataset):
        dataset = source
    elif isinstance(source, str) and source:
        path = Path(source)
        if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
            files = str(path) if path.is_file() else str(path / "*.parquet")
            dataset = datasets.load_dataset("parquet", data_files=files, split="train")
        elif path.exists():
            raise ValueError(f"`source` {source}: expected parquet files (use load_coco_instances for COCO JSON)")
        else:
            dataset = datasets.load_dataset(source, split=split)
    else:
        raise TypeError(f"`source` must be a Hub id, a parquet path or a datasets.Dataset, got {source!r}")
    for argument, column in (("image_column", image_column), ("masks_column", masks_column)):
        if column not in dataset.column_names:
            raise ValueError(f"{where}: `{argument}` {column!r} is not a column; columns are {dataset.column_names}")
    if category_column not in dataset.column_names:
        raise ValueError(
            f"{where}: `category_column` {category_column!r} is not a column; columns are {dataset.column_names}"
        )
    if len(dataset) == 0:
        raise ValueError(f"{where}: the dataset is empty (no image rows)")
    if categories is None:
        feature = getattr(dataset.features[category_column], "feature", None)
        if isinstance(feature, datasets.ClassLabel):
            categories = dict(enumerate(feature.names))
        else:
            categories = {
                int(c): str(int(c)) for c in sorted({int(c) for ids in dataset[category_column] for c in ids})
            }
    categories = {int(key): str(value) for key, value in categories.items()}
    if not categories:
        raise ValueError(f"{where}: no categories (pass `categories` or give `{category_column}` some ids)")
    label_of = {category: index for index, category in enumerate(sorted(categories))}
    rows = []
    for index, example in enumerate(dataset):
        image = _as_pil(example[image_column])
        width, height = image.size
        masks, ids = example[masks_column] or [], example[category_column] or []
        if len(masks) != len(ids):
            raise ValueError(f"{where}: row {index} has {len(masks)} masks but {len(ids)} category ids")
        for position, category in enumerate(ids):
            if int(category) not in categories:
                raise ValueError(
                    f"{where}: row {index}, instance {position}: unknown category id {category!r} in "
                    f"`{category_column}`; known ids are {sorted(categories)}"
                )
        rles = [
            _instance_mask(mask, height, width, f"{where}: row {index}, instance {position} of `{masks_column}`")
            for position, mask in enumerate(masks)
        ]
        image_id = example.get("image_id", index)
        rows.append(_row(example[image_column], image_id, height, width, rles, ids, label_of))
    return _finish(rows, categories, where)


SCENE_CATEGORIES = {index + 1: shape for index, shape in enumerate(SHAPES)}


def scene_instance_dataset(scenes: Sequence[Scene]) -> InstanceDataset:
    """Rows from procedural scenes; categories are the shape kinds (ids 1..5: ellipse … star)."""
    label_of = {category: index for index, category in enumerate(sorted(SCENE_CATEGORIES))}
    id_of = {shape: category for category, shape in SCENE_CATEGORIES.items()}
    rows = []
    for index, scene in enumerate(scenes):
        height, width = scene.image.shape[:2]
        rles = [mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))) for mask in scene.masks]
        ids = [id_of[shape] for shape in scene.shapes]
        rows.append(_row(Image.fromarray(scene.image), index + 1, height, width, rles, ids, label_of))
    return _finish(rows, dict(SCENE_CATEGORIES), "`scenes`")


def write_coco_instances(scenes: Sequence[Scene], output_dir: str | Path, mask_format: str = "rle") -> Path:
    """Write scenes as `output_dir/annotations.json` + `output_dir/images/*.png`; returns the JSON path.

    `mask_format` "rle" writes compressed RLE strings, "uncompressed_rle" COCO's count lists; both are exact.
    """
    if mask_format not in ("rle", "uncompressed_rle"):
        raise ValueError(f"`mask_format` must be 'rle' or 'uncompressed_rle', got {mask_format!r}")
    if not scenes:
        raise ValueError("`scenes` is empty: nothing to write")
    output_dir = Path(output_dir)
    (output_dir / "images").mkdir(parents=True, exist_ok=True)
    id_of = {shape: category for category, shape in SCENE_CATEGORIES.items()}
    images, annotations = [], []
    for index, scene in enumerate(scenes):
        height, width = scene.image.shape[:2]
        file_name = f"{index:06d}.png"
        Image.fromarray(scene.image).save(output_dir / "images" / file_name)
        images.append({"id": index + 1, "file_name": file_name, "height": height, "width": width})
        for mask, shape in zip(scene.masks, scene.shapes):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            if mask_format == "rle":
                segmentation = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
            else:
                counts = encode_run_lengths(torch.from_numpy(mask)[None])[0]["counts"].tolist()
                segmentation = {"size": [height, width], "counts": counts}
            x0, y0, x1, y1 = _box(rle)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": id_of[shape],
                    "segmentation": segmentation,
                    "area": int(mask.sum()),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": key, "name": name, "supercategory": "shape"} for key, name in SCENE_CATEGORIES.items()]
    path = output_dir / "annotations.json"
    with open(path, "w") as handle:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, handle)
    return path


__all__ = [
    "InstanceDataset",
    "SCENE_CATEGORIES",
    "decode_instances",
    "decode_masks",
    "encode_mask",
    "instance_features",
    "load_coco_instances",
    "load_instance_dataset",
    "scene_instance_dataset",
    "write_coco_instances",
]
