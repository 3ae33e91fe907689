"""Mask downloads: the PNG and the COCO RLE describe the same mask, readable by pycocotools."""

import json

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from hf_promptseg.app.exports import coco_rle, write_mask_files


def test_png_and_coco_rle_round_trip(tmp_path):
    mask = np.zeros((40, 60), bool)
    mask[5:20, 10:50] = True
    mask[30, 3] = True
    png, rle_path = write_mask_files(mask, tmp_path / "out", "object")
    assert np.array_equal(np.asarray(Image.open(png)) > 0, mask)
    record = json.loads(open(rle_path).read())
    rle = {"size": record["segmentation"]["size"], "counts": record["segmentation"]["counts"].encode()}
    assert np.array_equal(mask_utils.decode(rle).astype(bool), mask)
    assert record["area"] == mask.sum() == 601 and record["bbox"] == [3.0, 5.0, 47.0, 26.0]
    assert coco_rle(mask)["size"] == [40, 60]
