"""Image + mask datasets for prompt-free segmentation training (COD, shadow, polyp), as `datasets.Dataset`s.

Sources, picked by `load_segmentation_dataset(source)`:
- a COD10K-style folder with `Imgs/` and `GT/` (masks as PNG), paired by file stem (not by sort order);
- an `imagefolder` with `metadata.jsonl` holding `file_name` and `mask_file_name`;
- a parquet file or folder, or any Hub dataset id, with an image and a mask column;
- `synthetic:<count>[:<seed>[:<size>]]`, the camouflage generator (`hf_promptseg.data.camouflage`).

`SegmentationTransform` is the `with_transform` step (the model's own image processor for images, masks resized to
match); `random_flip_scale_crop` augments batches on tensors with an explicit generator, so a resumed
run draws exactly the augmentations an uninterrupted run would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _images_by_stem(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES}


def _cod_folder(root: Path):
    import datasets

    images, masks = _images_by_stem(root / "Imgs"), _images_by_stem(root / "GT")
    missing = sorted(set(images) ^ set(masks))
    if missing:
        raise ValueError(f"{root}: images and masks must pair by file name; unpaired: {missing[:5]}")
    if not images:
        raise ValueError(f"{root}: no images found in Imgs/")
    stems = sorted(images)
    features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image()})
    return datasets.Dataset.from_dict(
        {"image": [str(images[s]) for s in stems], "mask": [str(masks[s]) for s in stems]}, features=features
    )


def _synthetic(spec: str):
    from hf_promptseg.data.camouflage import camouflage_dataset

    parts = spec.split(":")[1:]
    try:
        count = int(parts[0])
        seed = int(parts[1]) if len(parts) > 1 else 0
        size = int(parts[2]) if len(parts) > 2 else 128
    except (ValueError, IndexError) as err:
        raise ValueError(
            f"synthetic source must look like 'synthetic:<count>[:<seed>[:<size>]]', got {spec!r}"
        ) from err
    return camouflage_dataset(count, seed=seed, size=size)


def load_segmentation_dataset(
    source: str, split: str = "train", image_column: str = "image", mask_column: str = "mask"
):
    """A `datasets.Dataset` with `image` and `mask` image columns from any of the supported sources (see module)."""
    import datasets

    if not isinstance(source, str) or not source:
        raise TypeError(f"`source` must be a path, a Hub dataset id or 'synthetic:<count>', got {source!r}")
    path = Path(source)
    if source.startswith("synthetic:"):
        dataset = _synthetic(source)
    elif (path / "Imgs").is_dir() and (path / "GT").is_dir():
        dataset = _cod_folder(path)
    elif (path / "metadata.jsonl").is_file():
        dataset = datasets.load_dataset("imagefolder", data_dir=str(path), split="train")
    elif path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        files = str(path) if path.is_file() else str(path / "*.parquet")
        dataset = datasets.load_dataset("parquet", data_files=files, split="train")
    elif path.exists():
        raise ValueError(
            f"{source}: expected Imgs/ + GT/ folders, an imagefolder with metadata.jsonl, or parquet files"
        )
    else:
        dataset = datasets.load_dataset(source, split=split)
    for column in (image_column, mask_column):
        if column not in dataset.column_names:
            raise ValueError(f"{source}: no column {column!r}; columns are {dataset.column_names}")
    dataset = dataset.select_columns([image_column, mask_column])
    if (image_column, mask_column) != ("image", "mask"):
        dataset = dataset.rename_columns({image_column: "image", mask_column: "mask"})
    for column in ("image", "mask"):
        if not isinstance(dataset.features[column], datasets.Image):
            dataset = dataset.cast_column(column, datasets.Image())
    return dataset


def _as_pil(value: Any) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        return Image.fromarray(value)
    raise TypeError(f"expected PIL images or arrays in the image/mask columns, got {type(value).__name__}")


class SegmentationTransform:
    """`dataset.with_transform(SegmentationTransform(image_processor))`: `pixel_values` (3, S, S), `labels` (1, S, S).

    `image_processor` is the model's own (the one saved beside it), so training, evaluation and serving feed the model
    the same pixel values; masks are resized with nearest neighbour to the processor's output size and scaled to
    [0, 1] (soft masks stay soft). An `int` S (deprecated) stands for SAM-Adapter's reference preprocessing at S².
    """

    def __init__(self, image_processor: Any) -> None:
        if isinstance(image_processor, int):
            image_processor = _deprecated_size_argument(image_processor)
        if not callable(image_processor):
            raise TypeError(
                f"`image_processor` must be an image processor (callable on images), got {type(image_processor).__name__}"
            )
        self.image_processor = image_processor

    def pixel_values(self, image: Any) -> torch.Tensor:
        return self.image_processor([_as_pil(image).convert("RGB")], return_tensors="pt")["pixel_values"][0]

    def labels(self, mask: Any, size: tuple[int, int]) -> torch.Tensor:
        mask = _as_pil(mask).convert("L").resize((size[1], size[0]), Image.NEAREST)
        return torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)[None]

    def __call__(self, batch: dict[str, list]) -> dict[str, list[torch.Tensor]]:
        pixel_values = [self.pixel_values(image) for image in batch["image"]]
        return {
            "pixel_values": pixel_values,
            "labels": [self.labels(mask, tuple(p.shape[-2:])) for mask, p in zip(batch["mask"], pixel_values)],
        }


def _deprecated_size_argument(image_size: int):
    import warnings

    from hf_promptseg.models.sam_adapter.predict import reference_image_processor

    if image_size < 16:
        raise ValueError(f"`image_size` must be at least 16, got {image_size}")
    warnings.warn(
        "`SegmentationTransform(image_size)` is deprecated: pass the model's image processor "
        "(`hf_promptseg.models.sam_adapter.predict.reference_image_processor(image_size)` for the reference's)",
        FutureWarning,
        stacklevel=3,
    )
    return reference_image_processor(image_size)


def collate_segmentation(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "labels": torch.stack([example["labels"] for example in examples]),
    }


def random_flip_scale_crop(
    pixel_values: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    scale_range: tuple[float, float] = (0.75, 1.25),
    flip_probability: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample horizontal flip and random scale + crop/pad back to the input size, identical for image and mask.

    Scaled-down samples are zero-padded (the normalised mean colour) at a random offset; masks follow with
    nearest-neighbour resampling. Draws come only from `generator`.
    """
    if pixel_values.ndim != 4 or labels.ndim != 4 or pixel_values.shape[-2:] != labels.shape[-2:]:
        raise ValueError("`pixel_values` (B, 3, S, S) and `labels` (B, 1, S, S) must share their spatial size")
    size = pixel_values.shape[-1]
    images, masks = [], []
    for image, mask in zip(pixel_values, labels):
        flip, scale, offset_y, offset_x = torch.rand(4, generator=generator).tolist()
        if flip < flip_probability:
            image, mask = image.flip(-1), mask.flip(-1)
        scaled = max(8, round(size * (scale_range[0] + scale * (scale_range[1] - scale_range[0]))))
        image = F.interpolate(image[None], (scaled, scaled), mode="bilinear", align_corners=False)[0]
        mask = F.interpolate(mask[None], (scaled, scaled), mode="nearest-exact")[0]
        if scaled >= size:
            top, left = int(offset_y * (scaled - size + 1)), int(offset_x * (scaled - size + 1))
            image, mask = image[:, top : top + size, left : left + size], mask[:, top : top + size, left : left + size]
        else:
            top, left = int(offset_y * (size - scaled + 1)), int(offset_x * (size - scaled + 1))
            padding = (left, size - scaled - left, top, size - scaled - top)
            image, mask = F.pad(image, padding), F.pad(mask, padding)
        images.append(image)
        masks.append(mask)
    return torch.stack(images), torch.stack(masks)
