"""Downloads of a mask: a PNG (0/255) and its COCO RLE (pycocotools' compressed string) in a JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils


def coco_rle(mask: np.ndarray) -> dict:
    """`{"size": [h, w], "counts": str}` — pycocotools' compressed RLE, the COCO annotation format."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def write_mask_files(mask: np.ndarray, directory: str | os.PathLike, stem: str = "mask") -> tuple[str, str]:
    """Write `stem.png` and `stem.rle.json` (with area and XYWH box) into `directory`; returns both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png, rle_path = directory / f"{stem}.png", directory / f"{stem}.rle.json"
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(png)
    rle = coco_rle(mask)
    encoded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    record = {"segmentation": rle, "area": int(mask_utils.area(encoded)),
              "bbox": [float(v) for v in mask_utils.toBbox(encoded)]}  # fmt: skip
    rle_path.write_text(json.dumps(record))
    return str(png), str(rle_path)


__all__ = ["coco_rle", "write_mask_files"]
