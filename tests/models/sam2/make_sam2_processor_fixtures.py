"""Record transformers' own SAM2 image processor / processor outputs as a small fixture (run once, in a side env).

transformers' `Sam2ImageProcessor` needs torchvision, which cannot be installed beside the project's CPU torch, so
this script runs in a separate virtual environment that has it (never in tests):

    python3 -m venv /work/sideenv-sam2
    /work/sideenv-sam2/bin/pip install torch==2.14.1 torchvision==0.29.1 "transformers==5.25.0" safetensors pillow numpy
    /work/sideenv-sam2/bin/python tests/models/sam2/make_sam2_processor_fixtures.py

It writes `tests/fixtures/sam2/processor_fixture.safetensors` (inputs and expected outputs) and
`processor_fixture.json` (the calls: processor settings, arguments, which tensors are inputs and outputs), and
`stock_sam2_processor/` / `stock_sam3_tracker_processor/` (the processor files of stock checkpoints). Inputs come
from a seeded numpy generator and are stored, so tests never regenerate them. Outputs too large to store in full
(pixel values at 256² and 1024²) are stored as a SHA-256 of their float32 bytes, per-channel sums and a strided
subsample.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import Sam2ImageProcessor, Sam2Processor

OUT = Path(__file__).resolve().parents[2] / "fixtures" / "sam2"
SMALL = {"size": {"height": 32, "width": 32}, "mask_size": {"height": 16, "width": 16}}
MEDIUM = {"size": {"height": 256, "width": 256}, "mask_size": {"height": 64, "width": 64}}
DIGEST_STRIDE = {32: 1, 256: 8, 1024: 32}

tensors: dict[str, torch.Tensor] = {}
rng = np.random.default_rng(20251204)


def put(name: str, value) -> str:
    tensor = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
    if tensor.dtype == torch.bool:
        tensor = tensor.to(torch.uint8)
    tensors[name] = tensor.contiguous().clone()
    return name


def digest(name: str, pixel_values: torch.Tensor) -> dict:
    """Full values for small outputs; hash, sums and a subsample for big ones."""
    stride = DIGEST_STRIDE[pixel_values.shape[-1]]
    if stride == 1:
        return {"full": put(name, pixel_values)}
    values = pixel_values.to(torch.float32).contiguous()
    return {
        "sha256": hashlib.sha256(values.numpy().tobytes()).hexdigest(),
        "sums": put(f"{name}.sums", values.double().sum(dim=(-1, -2))),
        "subsample": put(f"{name}.subsample", values[..., ::stride, ::stride]),
        "stride": stride,
        "shape": list(values.shape),
    }


def image_input(name: str, array: np.ndarray, kind: str) -> dict:
    """An input image stored as an array; `kind` says how to hand it over (numpy, torch, pil)."""
    return {"tensor": put(name, array), "kind": kind}


def materialise(spec: dict):
    array = tensors[spec["tensor"]].numpy()
    if spec["kind"] == "torch":
        return torch.from_numpy(array.copy())
    if spec["kind"] == "pil":
        return Image.fromarray(array)
    return array.copy()


def uint8(*shape: int) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


def preprocess_cases() -> list[dict]:
    specs = [
        (
            "mixed_batch",
            SMALL,
            {},
            [
                image_input("in/rgb_37x53", uint8(37, 53, 3), "numpy"),
                image_input("in/gray_20x90", uint8(20, 90), "numpy"),
                image_input("in/chw_tensor_40x30", uint8(3, 40, 30), "torch"),
                image_input("in/rgba_24x24", uint8(24, 24, 4), "numpy"),
                image_input("in/gray1_18x35", uint8(18, 35, 1), "numpy"),
            ],
        ),
        (
            "pil_images",
            SMALL,
            {},
            [
                image_input("in/pil_rgb_30x50", uint8(30, 50, 3), "pil"),
                image_input("in/pil_l_45x25", uint8(45, 25), "pil"),
            ],
        ),
        (
            "float_image",
            SMALL,
            {},
            [image_input("in/float_33x47", rng.random((33, 47, 3), dtype=np.float32), "numpy")],
        ),
        ("downscale", SMALL, {}, [image_input("in/rgb_150x100", uint8(150, 100, 3), "numpy")]),
        ("bicubic", SMALL, {"resample": 3}, [image_input("in/rgb_29x61", uint8(29, 61, 3), "numpy")]),
        ("medium_size", MEDIUM, {}, [image_input("in/rgb_120x80", uint8(120, 80, 3), "numpy")]),
        ("default_size", {}, {}, [image_input("in/rgb_48x64", uint8(48, 64, 3), "numpy")]),
    ]
    cases = []
    for name, settings, kwargs, inputs in specs:
        processor = Sam2ImageProcessor(**settings)
        out = processor([materialise(spec) for spec in inputs], return_tensors="pt", **kwargs)
        cases.append({
            "name": name, "settings": settings, "kwargs": kwargs, "images": inputs,
            "pixel_values": digest(f"out/{name}/pixel_values", out["pixel_values"]),
            "original_sizes": put(f"out/{name}/original_sizes", out["original_sizes"]),
        })  # fmt: skip
    processor = Sam2ImageProcessor(**SMALL)
    image = image_input("in/seg_image_37x53", uint8(37, 53, 3), "numpy")
    segmentation = image_input("in/seg_map_37x53", rng.integers(0, 4, (37, 53)).astype(np.int64), "numpy")
    out = processor(materialise(image), segmentation_maps=materialise(segmentation), return_tensors="pt")
    cases.append({
        "name": "segmentation_map", "settings": SMALL, "kwargs": {}, "images": [image],
        "segmentation_maps": [segmentation],
        "pixel_values": digest("out/segmentation_map/pixel_values", out["pixel_values"]),
        "original_sizes": put("out/segmentation_map/original_sizes", out["original_sizes"]),
        "labels": put("out/segmentation_map/labels", out["labels"]),
    })  # fmt: skip
    return cases


def crop_cases() -> list[dict]:
    cases = []
    for name, settings, image, args in (
        ("two_layers", MEDIUM, image_input("in/crop_rgb_60x90", uint8(60, 90, 3), "numpy"),
         {"target_size": 256, "crop_n_layers": 1, "points_per_crop": 4}),
        ("one_layer_pil", {}, image_input("in/crop_pil_50x40", uint8(50, 40, 3), "pil"),
         {"target_size": 1024, "crop_n_layers": 0, "points_per_crop": 8}),
    ):  # fmt: skip
        processor = Sam2ImageProcessor(**settings)
        boxes, points, crops, labels = processor.generate_crop_boxes(materialise(image), **args)
        pixel_values = processor(images=crops, return_tensors="pt")["pixel_values"]
        cases.append({
            "name": name, "settings": settings, "image": image, "args": args,
            "crop_boxes": put(f"out/crops/{name}/boxes", boxes), "points": put(f"out/crops/{name}/points", points),
            "labels": put(f"out/crops/{name}/labels", labels),
            "crops": [put(f"out/crops/{name}/crop{i}", crop) for i, crop in enumerate(crops)],
            "crop_pixel_values": digest(f"out/crops/{name}/pixel_values", pixel_values),
        })  # fmt: skip
    return cases


def post_process_cases() -> list[dict]:
    processor = Sam2ImageProcessor(**MEDIUM)
    first = torch.from_numpy(rng.normal(0, 3, (1, 2, 3, 64, 64)).astype(np.float32))
    second = rng.normal(0, 3, (1, 1, 3, 16, 16)).astype(np.float32)
    sizes = [[37, 53], [90, 20]]
    cases = []
    for name, kwargs in (("logits", {"binarize": False}), ("binary", {}), ("threshold", {"mask_threshold": 0.5}),
                         ("non_overlapping", {"binarize": False, "apply_non_overlapping_constraints": True})):  # fmt: skip
        out = processor.post_process_masks([first[0], second[0]], sizes, **kwargs)
        cases.append(
            {"name": name, "kwargs": kwargs, "outputs": [put(f"out/post/{name}/{i}", o) for i, o in enumerate(out)]}
        )
    return [{"masks": [put("in/post/first", first[0]), put("in/post/second", second[0])], "original_sizes": sizes,
             "calls": cases}]  # fmt: skip


def blob_logits(count: int, height: int, width: int, x_range: tuple[float, float] = (0.2, 0.8)) -> np.ndarray:
    """Smooth blob-shaped logits (so masks pass stability filters), 3 nested sizes per prompt, plus noise."""
    ys, xs = np.mgrid[0:height, 0:width]
    logits = np.empty((count, 3, height, width), dtype=np.float32)
    for p in range(count):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(*x_range) * width
        distance = np.hypot(ys - cy, (xs - cx) * rng.uniform(0.6, 1.4))
        for k, radius in enumerate(rng.uniform(3, min(height, width) / 3, 3)):
            logits[p, k] = 4.0 * (radius - distance) / 3 + rng.normal(0, 0.3, (height, width))
    return logits


def filter_cases() -> dict:
    processor = Sam2ImageProcessor(**MEDIUM)
    calls, all_rles, all_scores, all_boxes = [], [], [], []
    for name, shape, original, crop, x_range, thresholds in (
        ("crop", (4, 32, 40), [32, 60], [20, 0, 60, 32], (0.65, 0.85),
         {"pred_iou_thresh": 0.7, "stability_score_thresh": 0.6, "mask_threshold": 0.0, "stability_score_offset": 1.0}),
        ("full_image", (4, 32, 40), [32, 40], [0, 0, 40, 32], (0.2, 0.8),
         {"pred_iou_thresh": 0.6, "stability_score_thresh": 0.0, "mask_threshold": 0.25, "stability_score_offset": 0.5}),
    ):  # fmt: skip
        masks = torch.from_numpy(blob_logits(*shape, x_range))
        scores = torch.from_numpy(rng.uniform(0.5, 1.0, (shape[0], 3)).astype(np.float32))
        rles, kept_scores, boxes = processor.filter_masks(masks, scores, original, crop, **thresholds)
        calls.append({
            "name": name, "masks": put(f"in/filter/{name}/masks", masks), "iou_scores": put(f"in/filter/{name}/scores", scores),
            "original_size": original, "crop_box": crop, "thresholds": thresholds, "rles": rles,
            "scores": put(f"out/filter/{name}/scores", kept_scores), "boxes": put(f"out/filter/{name}/boxes", boxes),
        })  # fmt: skip
        if name == "full_image":
            all_rles += rles
            all_scores.append(kept_scores)
            all_boxes.append(boxes)
    scores, boxes = torch.cat(all_scores), torch.cat(all_boxes)
    masks, nms_scores, nms_rles, nms_boxes = processor.post_process_for_mask_generation(all_rles, scores, boxes, 0.5)
    nms = {
        "rles": all_rles, "scores": put("in/nms/scores", scores), "boxes": put("in/nms/boxes", boxes), "thresh": 0.5,
        "out_masks": put("out/nms/masks", torch.stack(masks)) if masks else None, "out_rles": nms_rles,
        "out_scores": put("out/nms/scores", nms_scores), "out_boxes": put("out/nms/boxes", nms_boxes),
    }  # fmt: skip
    return {"calls": calls, "nms": nms}


def processor_cases() -> list[dict]:
    image_processor = Sam2ImageProcessor(**SMALL)
    processor = Sam2Processor(image_processor)
    image = image_input("in/processor_rgb_50x70", uint8(50, 70, 3), "numpy")
    second = image_input("in/processor_rgb_64x32", uint8(64, 32, 3), "numpy")
    calls = [
        ("points_labels_boxes", [image], {
            "input_points": [[[[10, 12], [30.5, 40]], [[5, 5]]]], "input_labels": [[[1, 0], [1]]],
            "input_boxes": [[[2, 3, 40, 45], [0, 0, 70, 50]]]}),
        ("two_images", [image, second], {
            "input_points": [[[[10, 12]]], [[[20, 60], [31, 2]]]], "input_labels": [[[1]], [[1, -1]]]}),
        ("sizes_only", None, {"original_sizes": [[50, 70]], "input_boxes": [[[1.5, 2.5, 60, 49]]]}),
    ]  # fmt: skip
    cases = []
    for name, images, kwargs in calls:
        arguments = {} if images is None else {"images": [materialise(spec) for spec in images]}
        out = processor(**arguments, **kwargs, return_tensors="pt")
        cases.append({
            "name": name, "settings": SMALL, "images": images, "kwargs": kwargs,
            "outputs": {key: put(f"out/processor/{name}/{key}", value) for key, value in out.items()},
        })  # fmt: skip
    return cases


def stock_processor_dirs() -> None:
    """`save_pretrained` of transformers' own SAM2 and SAM3-tracker processors (what a stock checkpoint holds)."""
    from transformers import Sam3ImageProcessor, Sam3TrackerProcessor

    settings = {"size": {"height": 64, "width": 64}, "mask_size": {"height": 16, "width": 16}}
    Sam2Processor(Sam2ImageProcessor(**settings)).save_pretrained(OUT / "stock_sam2_processor")
    Sam3TrackerProcessor(Sam3ImageProcessor(**settings)).save_pretrained(OUT / "stock_sam3_tracker_processor")


def main() -> None:
    import torchvision

    fixture = {
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "transformers": transformers.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "preprocess": preprocess_cases(), "crops": crop_cases(), "post_process_masks": post_process_cases(),
        "filter_masks": filter_cases(), "processor": processor_cases(),
    }  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, OUT / "processor_fixture.safetensors")
    (OUT / "processor_fixture.json").write_text(json.dumps(fixture, indent=1) + "\n")
    stock_processor_dirs()
    size = sum(path.stat().st_size for path in OUT.glob("processor_fixture.*"))
    print(f"wrote {len(tensors)} tensors, {size / 1024:.0f} KiB, to {OUT}")


if __name__ == "__main__":
    main()
