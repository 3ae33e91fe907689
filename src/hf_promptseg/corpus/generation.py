"""Automatic mask generation over a corpus: resumable, one atomic result file per image, sharded across processes.

`generate_corpus(source, out_dir)` runs `pipeline("mask-generation")` (optionally tiled) on every image of
`source` (`hf_promptseg.corpus.inputs.list_images`) and writes:

- `out_dir/per_image/<name>.json`: that image's COCO annotations, written atomically as soon as it is done (a
  rerun skips images that have one; a failed image gets `<name>.error.json` instead and is retried next time);
- `out_dir/results.json`: COCO-style `images` / `annotations` (pycocotools RLE `segmentation`, `bbox` XYWH,
  `area`, `predicted_iou`, `stability_score`) / `categories`, loadable with `pycocotools.coco.COCO`;
- `out_dir/results.parquet`: one row per annotation, for `datasets.load_dataset("parquet", data_files=...)`;
- `out_dir/errors.json`: the images that failed and why; `out_dir/overlays/` with `overlays=True`.

Under `torchrun` / `accelerate launch`, every process takes every `num_processes`-th image (accelerate's
`PartialState`), writes its own per-image files, and the main process merges once all are done; the merged files
equal a one-process run's.

Example:

```python
from PIL import Image
from pathlib import Path
from hf_promptseg.corpus.generation import generate_corpus
from hf_promptseg.data.scenes import make_scene

Path("scenes").mkdir(exist_ok=True)
Image.fromarray(make_scene(0, 128, 128).image).save("scenes/0.png")
summary = generate_corpus("scenes", "masks", points_per_crop=8)
summary["num_images"], summary["num_annotations"] > 0  # (1, True)
```
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from hf_promptseg.corpus import rle as rle_ops
from hf_promptseg.corpus.inputs import ImageRecord, list_images

CATEGORIES = [{"id": 1, "name": "object", "supercategory": "object"}]
GENERATOR_PARAMETERS = (
    "points_per_crop",
    "points_per_batch",
    "pred_iou_thresh",
    "stability_score_thresh",
    "stability_score_offset",
    "mask_threshold",
    "crops_nms_thresh",
    "crops_n_layers",
    "crop_overlap_ratio",
    "crop_n_points_downscale_factor",
    "batch_size",
)


def result_name(image_id: str) -> str:
    """A file-name-safe, collision-free stem for an image id."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", image_id)[-80:]
    return f"{stem}-{hashlib.blake2b(image_id.encode(), digest_size=4).hexdigest()}"


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON to `path` through a temporary file and a rename: readers see all of it or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


class _Processes:
    """This process's place among the run's processes: accelerate's `PartialState`, or a `torch.distributed` group
    initialised by the caller (e.g. `accelerate.debug_launcher`, which PartialState does not see)."""

    def __init__(self) -> None:
        from accelerate import PartialState

        self.state = PartialState()
        self.index, self.count, self.device = self.state.process_index, self.state.num_processes, self.state.device
        self._torch_group = False
        if self.count == 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            self.index, self.count = torch.distributed.get_rank(), torch.distributed.get_world_size()
            self._torch_group = True

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def wait(self) -> None:
        if self._torch_group:
            torch.distributed.barrier()
        else:
            self.state.wait_for_everyone()


def load_generator(model: str | os.PathLike | None = None, device: str | torch.device | None = None):
    """`pipeline("mask-generation")` for `model` (default: the embedded demo SAM), float32."""
    from transformers import pipeline

    import hf_promptseg  # noqa: F401  (registers the pipeline)
    from hf_promptseg.assets import demo_sam_path

    return pipeline("mask-generation", model=str(model or demo_sam_path()), dtype=torch.float32, device=device)


def default_thresholds(model: str | os.PathLike | None) -> dict[str, float]:
    """The demo SAM's calibrated thresholds when `model` is it, else none (transformers' defaults apply)."""
    from hf_promptseg.assets import DEMO_SAM_MASK_GENERATION_THRESHOLDS, demo_sam_path

    if model is None or Path(model).resolve() == Path(demo_sam_path()).resolve():
        return dict(DEMO_SAM_MASK_GENERATION_THRESHOLDS)
    return {}


def image_annotations(
    generator: Any,
    image: Any,
    tile_size: int | None = None,
    tile_overlap: int = 64,
    progress: bool = False,
    **generator_kwargs: Any,
) -> list[dict]:
    """COCO annotation dicts (without ids) of one PIL image: segmentation, bbox, area, predicted_iou,
    stability_score; tiled when `tile_size` is given (`progress`: a bar over its tiles)."""
    if tile_size is not None:
        from hf_promptseg.corpus.tiling import tiled_mask_generation

        out = tiled_mask_generation(generator, image, tile_size, tile_overlap, progress=progress, **generator_kwargs)
        rles = out["rle_mask"]
    else:
        generator_kwargs.setdefault("fast_decoder", True)  # any SAM (stock processors too): carries stability scores
        out = generator(image, output_stability_scores=True, **generator_kwargs)
        rles = [rle_ops.encode_dense(mask) for mask in out.pop("masks")]
    annotations = []
    for rle, score, stability in zip(rles, out["scores"].tolist(), out["stability_scores"].tolist()):
        annotations.append(
            {
                "segmentation": rle,
                "bbox": rle_ops.bbox(rle),
                "area": rle_ops.area(rle),
                "predicted_iou": float(score),
                "stability_score": float(stability),
                "category_id": 1,
                "iscrowd": 0,
            }
        )
    return annotations


def _process_one(
    record: ImageRecord,
    generator: Any,
    per_image: Path,
    overlays: Path | None,
    options: dict[str, Any],
    process_index: int = 0,
) -> None:
    name = result_name(record.image_id)
    image = record.load()
    annotations = image_annotations(generator, image, **options)
    if overlays is not None:
        from hf_promptseg.utils.overlays import overlay

        masks = [rle_ops.decode(a["segmentation"]) for a in annotations]
        tmp = overlays / f".{name}.tmp.png"
        overlay(np.asarray(image), masks).save(tmp)
        os.replace(tmp, overlays / f"{name}.png")
    write_json_atomic(
        per_image / f"{name}.json",
        {
            "image_id": record.image_id,
            "origin": record.origin,
            "process": process_index,
            "height": image.height,
            "width": image.width,
            "annotations": annotations,
        },
    )
    (per_image / f"{name}.error.json").unlink(missing_ok=True)


def generate_corpus(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: str | os.PathLike | None = None,
    image_column: str | None = None,
    split: str | None = None,
    tile_size: int | None = None,
    tile_overlap: int = 64,
    overlays: bool = False,
    embeddings: str | os.PathLike | None = None,
    progress: bool = True,
    **generator_kwargs: Any,
) -> dict[str, Any]:
    """Run automatic mask generation over `source` into `out_dir` (see the module docstring); returns a summary.

    `generator_kwargs` are the pipeline's parameters (`points_per_crop`, `points_per_batch`, `pred_iou_thresh`,
    `stability_score_thresh`, `crops_nms_thresh`, `crops_n_layers`, ...); unset thresholds default to the demo
    SAM's calibrated values when `model` is the demo SAM.
    """
    from hf_promptseg.corpus.tiling import validate_tiling

    if tile_size is not None:
        validate_tiling(tile_size, tile_overlap)
    unknown = set(generator_kwargs) - set(GENERATOR_PARAMETERS)
    if unknown:
        raise TypeError(f"unknown mask-generation parameter(s) {sorted(unknown)}; expected {GENERATOR_PARAMETERS}")
    generator_kwargs = {**default_thresholds(model), **{k: v for k, v in generator_kwargs.items() if v is not None}}
    processes = _Processes()
    records = list_images(source, image_column=image_column, split=split)
    out_dir = Path(out_dir)
    per_image = out_dir / "per_image"
    overlay_dir = out_dir / "overlays" if overlays else None
    if processes.is_main:
        per_image.mkdir(parents=True, exist_ok=True)
        if overlay_dir is not None:
            overlay_dir.mkdir(parents=True, exist_ok=True)
    processes.wait()

    shard = records[processes.index :: processes.count]
    todo = [r for r in shard if not (per_image / f"{result_name(r.image_id)}.json").is_file()]
    if todo:
        generator = load_generator(model, device=processes.device if processes.device.type != "cpu" else None)
        if embeddings is not None:
            from hf_promptseg.models.sam.embedding_cache import EmbeddingCache, load_embeddings

            size_mb = os.path.getsize(embeddings) / 2**20 * 1.1 + 64
            cache = EmbeddingCache(max_megabytes=size_mb)
            load_embeddings(embeddings, generator.model, cache)
            generator_kwargs["embedding_cache"] = cache
        else:
            generator_kwargs["embedding_cache"] = False  # each image is seen once: caching would only hold memory
        options = {"tile_size": tile_size, "tile_overlap": tile_overlap, "progress": progress, **generator_kwargs}
        bar = tqdm(
            todo,
            desc=f"images (process {processes.index})" if processes.count > 1 else "images",
            position=processes.index,
            disable=not progress,
        )
        for record in bar:
            try:
                _process_one(record, generator, per_image, overlay_dir, options, processes.index)
            except (ValueError, TypeError, OSError) as err:
                write_json_atomic(
                    per_image / f"{result_name(record.image_id)}.error.json",
                    {"image_id": record.image_id, "origin": record.origin, "error": str(err)},
                )
                tqdm.write(f"skipped {record.origin}: {err}")
    processes.wait()
    summary = merge_results(records, out_dir) if processes.is_main else {}
    processes.wait()
    return summary


def merge_results(records: list[ImageRecord], out_dir: str | os.PathLike) -> dict[str, Any]:
    """Gather the per-image files of `records` (in their order) into results.json, results.parquet, errors.json."""
    import datasets

    out_dir = Path(out_dir)
    per_image = out_dir / "per_image"
    images, annotations, errors, rows = [], [], [], []
    for index, record in enumerate(records, start=1):
        name = result_name(record.image_id)
        done, failed = per_image / f"{name}.json", per_image / f"{name}.error.json"
        if not done.is_file():
            if failed.is_file():
                errors.append(json.loads(failed.read_text()))
            continue
        result = json.loads(done.read_text())
        images.append(
            {"id": index, "file_name": record.image_id, "height": result["height"], "width": result["width"]}
        )
        for annotation in result["annotations"]:
            annotation = {"id": len(annotations) + 1, "image_id": index, **annotation}
            annotations.append(annotation)
            rows.append({"file_name": record.image_id, **annotation})
    write_json_atomic(
        out_dir / "results.json", {"images": images, "annotations": annotations, "categories": CATEGORIES}
    )
    write_json_atomic(out_dir / "errors.json", errors)
    features = datasets.Features(
        {
            "file_name": datasets.Value("string"),
            "id": datasets.Value("int64"),
            "image_id": datasets.Value("int64"),
            "segmentation": {"size": datasets.List(datasets.Value("int64")), "counts": datasets.Value("string")},
            "bbox": datasets.List(datasets.Value("float64")),
            "area": datasets.Value("int64"),
            "predicted_iou": datasets.Value("float64"),
            "stability_score": datasets.Value("float64"),
            "category_id": datasets.Value("int64"),
            "iscrowd": datasets.Value("int64"),
        }
    )
    columns = {name: [row[name] for row in rows] for name in features}
    tmp = out_dir / f".results.parquet.{os.getpid()}.tmp"
    datasets.Dataset.from_dict(columns, features=features).to_parquet(str(tmp))
    os.replace(tmp, out_dir / "results.parquet")
    return {
        "num_images": len(images),
        "num_annotations": len(annotations),
        "num_errors": len(errors),
        "errors": errors,
        "out_dir": str(out_dir),
    }


__all__ = ["GENERATOR_PARAMETERS", "generate_corpus", "image_annotations", "merge_results", "result_name"]
