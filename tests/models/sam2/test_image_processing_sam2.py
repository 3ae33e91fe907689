"""HfPromptsegSam2ImageProcessor reproduces transformers' (torchvision) Sam2ImageProcessor, stored as a fixture.

The fixture was written by `make_sam2_processor_fixtures.py` in a side environment that has torchvision; see its
docstring. Pixel values are compared bitwise (SHA-256 of the float32 bytes) and within 1e-6.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from hf_promptseg.models.sam2 import HfPromptsegSam2ImageProcessor

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "sam2"
ATOL = 1e-6


@pytest.fixture(scope="module")
def fixture():
    return json.loads((FIXTURE / "processor_fixture.json").read_text()), load_file(
        FIXTURE / "processor_fixture.safetensors"
    )


def materialise(tensors, spec):
    array = tensors[spec["tensor"]].numpy()
    if spec["kind"] == "torch":
        return torch.from_numpy(array.copy())
    if spec["kind"] == "pil":
        return Image.fromarray(array)
    return array.copy()


def assert_pixel_values(tensors, expected, actual):
    actual = actual.to(torch.float32).contiguous()
    if "full" in expected:
        torch.testing.assert_close(actual, tensors[expected["full"]], atol=ATOL, rtol=0)
        assert torch.equal(actual, tensors[expected["full"]])
        return
    assert list(actual.shape) == expected["shape"]
    stride = expected["stride"]
    torch.testing.assert_close(actual[..., ::stride, ::stride], tensors[expected["subsample"]], atol=ATOL, rtol=0)
    torch.testing.assert_close(actual.double().sum(dim=(-1, -2)), tensors[expected["sums"]], atol=1e-3, rtol=0)
    assert hashlib.sha256(actual.numpy().tobytes()).hexdigest() == expected["sha256"]


def test_fixture_is_small_and_from_torchvision(fixture):
    meta, _ = fixture
    assert sum(path.stat().st_size for path in FIXTURE.glob("processor_fixture.*")) < 1024**2
    assert meta["versions"]["transformers"] == "5.25.0" and meta["versions"]["torchvision"]


def test_preprocess_matches_transformers(fixture):
    meta, tensors = fixture
    assert len(meta["preprocess"]) >= 8
    for case in meta["preprocess"]:
        processor = HfPromptsegSam2ImageProcessor(**case["settings"])
        images = [materialise(tensors, spec) for spec in case["images"]]
        maps = case.get("segmentation_maps")
        maps = None if maps is None else [materialise(tensors, spec) for spec in maps]
        out = processor(images, segmentation_maps=maps, return_tensors="pt", **case["kwargs"])
        assert_pixel_values(tensors, case["pixel_values"], out["pixel_values"])
        assert torch.equal(out["original_sizes"], tensors[case["original_sizes"]]), case["name"]
        assert set(out) == {"pixel_values", "original_sizes"} | ({"labels"} if maps else set())
        if maps:
            assert out["labels"].dtype == torch.int64
            assert torch.equal(out["labels"], tensors[case["labels"]])


def test_generate_crop_boxes_matches_transformers(fixture):
    meta, tensors = fixture
    for case in meta["crops"]:
        processor = HfPromptsegSam2ImageProcessor(**case["settings"])
        boxes, points, crops, labels = processor.generate_crop_boxes(
            materialise(tensors, case["image"]), **case["args"]
        )
        assert torch.equal(boxes, tensors[case["crop_boxes"]]) and boxes.dtype == torch.float32
        assert torch.equal(points, tensors[case["points"]]) and points.dtype == torch.float32
        assert torch.equal(labels, tensors[case["labels"]])
        assert len(crops) == len(case["crops"])
        assert all(torch.equal(crop, tensors[name]) for crop, name in zip(crops, case["crops"]))
        pixel_values = processor(images=crops, return_tensors="pt")["pixel_values"]
        assert_pixel_values(tensors, case["crop_pixel_values"], pixel_values)


def test_post_process_masks_matches_transformers(fixture):
    meta, tensors = fixture
    processor = HfPromptsegSam2ImageProcessor()
    for case in meta["post_process_masks"]:
        for call in case["calls"]:
            masks = [tensors[case["masks"][0]], tensors[case["masks"][1]].numpy()]
            out = processor.post_process_masks(masks, case["original_sizes"], **call["kwargs"])
            for actual, name in zip(out, call["outputs"], strict=True):
                expected = tensors[name]
                if call["kwargs"].get("binarize", True):
                    assert actual.dtype == torch.bool and torch.equal(actual.to(torch.uint8), expected)
                else:
                    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0)


def test_filter_masks_matches_transformers(fixture):
    meta, tensors = fixture
    processor = HfPromptsegSam2ImageProcessor()
    kept = 0
    for call in meta["filter_masks"]["calls"]:
        rles, scores, boxes = processor.filter_masks(
            tensors[call["masks"]], tensors[call["iou_scores"]], call["original_size"], call["crop_box"],
            **call["thresholds"],
        )  # fmt: skip
        assert rles == call["rles"] and all(isinstance(v, int) for rle in rles for v in rle["counts"])
        assert torch.equal(scores, tensors[call["scores"]])
        assert torch.equal(boxes, tensors[call["boxes"]]) and boxes.dtype == tensors[call["boxes"]].dtype
        kept += len(rles)
    assert kept >= 5


def test_post_process_for_mask_generation_matches_transformers(fixture):
    meta, tensors = fixture
    nms = meta["filter_masks"]["nms"]
    processor = HfPromptsegSam2ImageProcessor()
    masks, scores, rles, boxes = processor.post_process_for_mask_generation(
        nms["rles"], tensors[nms["scores"]], tensors[nms["boxes"]], nms["thresh"]
    )
    assert 0 < len(rles) < len(nms["rles"])  # NMS dropped some, kept some
    assert rles == nms["out_rles"]
    assert torch.equal(scores, tensors[nms["out_scores"]]) and torch.equal(boxes, tensors[nms["out_boxes"]])
    assert all(mask.dtype == torch.bool for mask in masks)
    assert torch.equal(torch.stack(masks).to(torch.uint8), tensors[nms["out_masks"]])


def test_bad_inputs_are_refused_clearly():
    processor = HfPromptsegSam2ImageProcessor(size={"height": 32, "width": 32})
    with pytest.raises(ValueError, match="no channel axis of size 1, 3 or 4"):
        processor(np.zeros((20, 30, 5), dtype=np.uint8))
    with pytest.raises(TypeError, match="dtype bool"):
        processor(np.zeros((20, 30, 3), dtype=bool))
    with pytest.raises(TypeError, match="must be a PIL image"):
        processor([np.zeros((4, 4, 3), np.uint8), {"not": "an image"}])
    with pytest.raises(ValueError, match="empty"):
        processor([])
    with pytest.raises(ValueError, match="`points_per_crop` must be an integer >= 1"):
        processor.generate_crop_boxes(np.zeros((20, 30, 3), np.uint8), 32, points_per_crop=0)
    with pytest.raises(ValueError, match="must be equal"):
        processor.generate_crop_boxes(np.zeros((20, 30, 3), np.uint8), 32, 1, crop_n_points_downscale_factor=2)
    with pytest.raises(ValueError, match=r"`masks`\[0\] must be \(P, K, h, w\)"):
        processor.post_process_masks([torch.zeros(3, 16, 16)], [[20, 30]])
    with pytest.raises(ValueError, match="4 masks but `iou_scores` 3"):
        processor.filter_masks(torch.zeros(1, 4, 8, 8), torch.zeros(1, 3), (8, 8), [0, 0, 8, 8])


def test_runs_with_torchvision_blocked():
    """A fresh interpreter in which torchvision cannot be imported: import, preprocess, post-process, NMS."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torchvision"] = None  # `import torchvision` fails, find_spec reports it absent
        import numpy as np, torch
        from hf_promptseg.models.sam2 import HfPromptsegSam2ImageProcessor, HfPromptsegSam2Processor
        processor = HfPromptsegSam2Processor(HfPromptsegSam2ImageProcessor(size={"height": 32, "width": 32}))
        out = processor(np.zeros((20, 30, 3), np.uint8), input_points=[[[[3, 4]]]], return_tensors="pt")
        masks = processor.post_process_masks(torch.randn(1, 1, 3, 8, 8), out["original_sizes"], binarize=False)
        image_processor = processor.image_processor
        rles, scores, boxes = image_processor.filter_masks(masks[0], torch.ones(1, 3), (20, 30), [0, 0, 30, 20], 0, 0)
        kept = image_processor.post_process_for_mask_generation(rles, scores, boxes, 0.7)
        assert sys.modules["torchvision"] is None
        print("ok", tuple(out["pixel_values"].shape), len(kept[0]))
        """
    )
    src = Path(__file__).resolve().parents[3] / "src"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(src)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok (1, 3, 32, 32)")
