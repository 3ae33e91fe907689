"""Large images and corpora: tiled AMG time vs tile count, peak RSS vs image size (tiled vs whole image), cached vs
uncached threshold sweep, corpus throughput with 1 vs 2 processes. One run of each, printed side by side.

    python benchmarks/corpus.py                  # all four, ≈6 min on 2 CPU cores
    python benchmarks/corpus.py --only sweep     # one of: tiles, rss, sweep, processes

Models: the embedded demo SAM (128² input) for tiling, memory and corpus runs; for the sweep, a random-weight SAM with
SAM ViT-B's encoder sizes (1024² input), so the encoder/decoder cost ratio is the smallest released SAM's. Peak RSS
is sampled every 5 ms during the run, per configuration in a fresh subprocess, minus the RSS after loading the model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SMALL_AMG = {"points_per_crop": 4, "pred_iou_thresh": 0.6, "stability_score_thresh": 0.85}


def _scene(side: int, seed: int = 0) -> np.ndarray:
    from hf_promptseg.data.scenes import make_scene_with_objects

    rng = np.random.default_rng(seed)
    count = max(1, (side // 96) ** 2)
    centres = rng.uniform(30, side - 30, size=(count, 2))
    return make_scene_with_objects(seed, side, side, [(x, y, 20) for x, y in centres]).image


def _generator():
    import torch
    from transformers import pipeline

    import hf_promptseg  # noqa: F401
    from hf_promptseg.assets import demo_sam_path

    return pipeline("mask-generation", model=demo_sam_path(), dtype=torch.float32)


def bench_tiles() -> list[dict]:
    """Tiled AMG time for 1, 4, 9, 16, 25 tiles of 128 px (overlap 32): should grow linearly."""
    generator = _generator()
    rows = []
    for per_side in (1, 2, 3, 4, 5):
        side = 128 + 96 * (per_side - 1)
        image = _scene(side)
        start = time.perf_counter()
        out = generator(image, tile_size=128, tile_overlap=32, **SMALL_AMG)
        seconds = time.perf_counter() - start
        rows.append({"tiles": per_side**2, "side": side, "seconds": round(seconds, 2),
                     "seconds_per_tile": round(seconds / per_side**2, 3), "masks": len(out["rle_mask"])})  # fmt: skip
    return rows


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakSampler:
    """Largest resident set seen every 5 ms while the block runs (ru_maxrss would include the set-up)."""

    def __enter__(self):
        import threading

        self.peak, self._stop = _current_rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _current_rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _current_rss_mb())


def _child_rss(side: int, mode: str, path: str) -> dict:
    from PIL import Image

    generator = _generator()
    image = Image.open(path).convert("RGB")
    generator(Image.new("RGB", (64, 64)), **SMALL_AMG)  # warm-up: lazily allocated buffers are not the image's
    base = _current_rss_mb()
    sampler = _PeakSampler().__enter__()
    start = time.perf_counter()
    if mode == "tiled":
        out = generator(image, tile_size=256, tile_overlap=32, **SMALL_AMG)
        count = len(out["rle_mask"])
    else:
        out = generator(image, **SMALL_AMG)
        count = len(out["masks"])
    sampler.__exit__()
    return {"side": side, "mode": mode, "peak_rss_above_model_mb": round(sampler.peak - base, 1),
            "image_mb": round(side * side * 3 / 2**20, 1), "masks": count,
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip


def bench_rss() -> list[dict]:
    """Peak RSS of tiled (256-px tiles) vs whole-image AMG as the image grows: flat vs growing with masks × pixels."""
    from PIL import Image

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in (512, 1024, 2048):
            path = Path(tmp) / f"{side}.png"
            Image.fromarray(_scene(side)).save(path)
            for mode in ("tiled", "whole"):
                result = subprocess.run(
                    [sys.executable, __file__, "--child-rss", str(side), mode, str(path)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return rows


def bench_sweep() -> dict:
    """5 threshold settings on one 256² image, 4 points: the embedding cache on vs off."""
    import torch
    from PIL import Image
    from transformers import SamConfig, SamModel, pipeline

    import hf_promptseg  # noqa: F401
    from hf_promptseg.assets import demo_sam_path
    from hf_promptseg.models.sam import HfPromptsegSamImageProcessor
    from hf_promptseg.models.sam.embedding_cache import EmbeddingCache

    # SAM ViT-B's encoder (random weights): the encoder/decoder cost ratio of the smallest released SAM
    config = SamConfig(vision_config={"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                                      "mlp_dim": 3072, "global_attn_indexes": [2, 5, 8, 11]})  # fmt: skip
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        SamModel(config).eval().save_pretrained(tmp)
        processor = HfPromptsegSamImageProcessor.from_pretrained(demo_sam_path())
        processor.size, processor.pad_size = {"longest_edge": 1024}, {"height": 1024, "width": 1024}
        processor.mask_size, processor.mask_pad_size = {"longest_edge": 256}, {"height": 256, "width": 256}
        processor.save_pretrained(tmp)
        generator = pipeline("mask-generation", model=tmp, dtype=torch.float32)
    image = Image.fromarray(_scene(256))
    # a random SAM predicts IoUs of 0 ± 0.04 and stability 0: these keep about 50 %, 30 %, 20 %, 10 %, 0 % of the
    # candidates, as a sweep over transformers' usual 0.7-0.95 range does for a released SAM
    settings = [{"pred_iou_thresh": t, "stability_score_thresh": 0.0, "points_per_crop": 2} for t in
                (0.0, 0.01, 0.02, 0.03, 0.04)]  # fmt: skip
    timings, masks = {}, []
    for name, cache in (("uncached", False), ("cached", EmbeddingCache(64))):
        start = time.perf_counter()
        for kwargs in settings:
            masks.append(len(generator(image, embedding_cache=cache, **kwargs)["masks"]))
        timings[name] = round(time.perf_counter() - start, 2)
    return {**timings, "speedup": round(timings["uncached"] / timings["cached"], 1), "masks_per_setting": masks[:5],
            "same_masks": masks[:5] == masks[5:]}  # fmt: skip


def bench_processes() -> dict:
    """`hf-promptseg generate` on 16 scenes of 256²: 1 process vs `--num-processes 2` (wall time incl. start-up)."""
    from PIL import Image

    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "scenes"
        folder.mkdir()
        for index in range(16):
            Image.fromarray(_scene(256, seed=index)).save(folder / f"{index:02d}.png")
        for processes in (1, 2):
            out = Path(tmp) / f"out{processes}"
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "hf_promptseg", "generate", str(folder), "--out", str(out),
                 "--points-per-side", "8", "--num-processes", str(processes)],
                check=True, capture_output=True,
            )  # fmt: skip
            timings[f"{processes}_process"] = round(time.perf_counter() - start, 1)
        same = json.loads((Path(tmp) / "out1" / "results.json").read_text()) == json.loads(
            (Path(tmp) / "out2" / "results.json").read_text()
        )
    return {**timings, "images": 16, "speedup": round(timings["1_process"] / timings["2_process"], 2),
            "identical_output": same}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["tiles", "rss", "sweep", "processes"])
    parser.add_argument("--child-rss", nargs=3, metavar=("SIDE", "MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        print(json.dumps(_child_rss(int(args.child_rss[0]), args.child_rss[1], args.child_rss[2])))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")  # fmt: skip
    benches = {"tiles": bench_tiles, "rss": bench_rss, "sweep": bench_sweep, "processes": bench_processes}
    for name, bench in benches.items():
        if args.only in (None, name):
            result = bench()
            print(f"== {name}")
            for row in result if isinstance(result, list) else [result]:
                print(json.dumps(row))


if __name__ == "__main__":
    main()
