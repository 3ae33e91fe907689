"""Interactive SAM on CPU: decoder time per click and ViT encoder time per backend, ours vs transformers, in one
process, side by side.

    python benchmarks/interactive.py                       # decoder: 2 threads, 60 clicks
    python benchmarks/interactive.py --clicks 100 --threads 1
    python benchmarks/interactive.py --part encoder        # ViT-B at 1024², every `encoder_backend`

The model is a random SAM with the released decoder (256 wide, 8 heads, 64×64 image embedding from a 1024² input)
and a narrow random ViT (the encoder does not enter the per-click time). A "click" is one object's prompt — a
positive point, or a positive and a negative point, or a box — with `multimask_output=True`, on an image whose
embedding is already computed:

- stock: transformers' `SamModel(image_embeddings=..., input_points=..., input_labels=...)` (prompt encoder + its
  `SamMaskDecoder`), what a transformers user runs per click;
- ours: `PromptedSegmenter.predict`'s decoder part (prompt encoder + `FastSamMaskDecoder` with the image's
  prompt-independent terms cached on the first click), and the whole `predict` including upscaling the three masks
  to the image.

Clicks alternate between the two, so load from other processes hits both alike; medians over `--clicks` clicks.
`--baseline-decoder old.py` adds a third: another revision's `FastSamMaskDecoder` on the same clicks (before/after).
Also printed: max |Δ| of the low-resolution logits between the two. The last line is
`stock_ms=<a> ours_ms=<b> speedup=<c>`.

`--part encoder`: a random ViT-B SAM (`preset_sam_config("vit-b")`) encodes one 1024² input with each backend of
`hf_promptseg.models.sam.encoder_backends` (eager = transformers' eager attention, the reference; `onnx` needs the
`[onnx]` extra; `channels_last` is not a backend but `sdpa` with the model and input in channels-last memory), in
rounds that visit every backend once (so load from other processes hits all alike); per backend the median seconds,
the ratio to eager and max |Δ| of the embedding against eager. torch.compile's first call (compilation) and the
ONNX export are timed apart.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch


def random_model():
    """A SAM with the released decoder and random weights (the decoder perturbed so its logits are not tiny)."""
    from transformers import SamConfig, SamModel

    torch.manual_seed(0)
    vision = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_dim": 128}
    model = SamModel(SamConfig(vision_config={**vision, "global_attn_indexes": [1], "window_size": 14})).eval()
    with torch.no_grad():
        for param in model.mask_decoder.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model


def encoder_benchmark(args: argparse.Namespace) -> None:
    import copy

    from mask_generation import random_model as variance_preserving_sam  # benchmarks/mask_generation.py

    from hf_promptseg.models.sam.encoder_backends import image_encoder

    model = variance_preserving_sam(args.encoder)
    size = model.config.vision_config.image_size
    pixel_values = torch.randn(1, 3, size, size)
    encoders = {}
    for backend in args.backends:
        start = time.perf_counter()
        if backend == "channels_last":  # not a backend: "sdpa" with the ViT's convolutions in channels-last
            copied = copy.deepcopy(model).to(memory_format=torch.channels_last)
            sdpa = image_encoder(copied, "sdpa")
            encoders[backend] = lambda pixel_values, f=sdpa: f(pixel_values.to(memory_format=torch.channels_last))
        else:
            # each backend gets its own copy: the non-eager ones switch the attention class in place
            encoders[backend] = image_encoder(model if backend == "eager" else copy.deepcopy(model), backend)
        if backend == "onnx":
            print(f"ONNX export + session: {time.perf_counter() - start:.1f} s", flush=True)
    times = {backend: [] for backend in args.backends}
    outputs = {}
    with torch.no_grad():
        if "compile" in encoders:
            start = time.perf_counter()
            encoders["compile"](pixel_values)
            print(f"torch.compile first call (compilation): {time.perf_counter() - start:.1f} s", flush=True)
        for round_index in range(args.rounds):
            for backend, encode in encoders.items():
                start = time.perf_counter()
                outputs[backend] = encode(pixel_values)[0]
                times[backend].append(time.perf_counter() - start)
                print(f"round {round_index} {backend}: {times[backend][-1]:.2f} s", flush=True)
    eager = statistics.median(times["eager"])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads")
    print(f"load average at the end: {os.getloadavg()}")
    print(f"{args.encoder} encoder at {size}², median of {args.rounds} rounds:")
    for backend in args.backends:
        delta = float((outputs[backend] - outputs["eager"]).abs().max())
        scale = float(outputs["eager"].abs().max())
        median = statistics.median(times[backend])
        print(
            f"  {backend:8s} {median:7.2f} s  x{eager / median:5.2f} vs eager  max|Δ| {delta:.2e} (embedding max {scale:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("decoder", "encoder"), default="decoder")
    parser.add_argument("--clicks", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=768, help="side of the square procedural scene")
    parser.add_argument("--encoder", default="vit-b", help="SAM preset for --part encoder")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["eager", "sdpa", "compile", "bf16", "onnx"],
        help="encoder_backend names, and channels_last (sdpa with channels-last convolutions)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline-decoder",
        help="a fast_mask_decoder.py of another revision (git show REV:src/hf_promptseg/models/sam/fast_mask_decoder.py"
        " > old.py), timed on the same clicks in the same process",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part == "encoder":
        if "eager" not in args.backends:
            args.backends.insert(0, "eager")
        return encoder_benchmark(args)

    from hf_promptseg.data.scenes import make_scene
    from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter

    model = random_model()
    segmenter = PromptedSegmenter(model)
    image = make_scene(0, args.image_size, args.image_size).image
    start = time.perf_counter()
    segmenter.set_image(image)
    encode_seconds = time.perf_counter() - start
    embeddings = segmenter._image["embeddings"]
    rng = np.random.default_rng(0)
    side = args.image_size
    stock_ms, ours_ms, predict_ms, deltas = [], [], [], []

    def click(index: int) -> dict:
        kind = index % 3
        if kind == 0:
            return {"points": rng.uniform(0, side, (1, 2)).tolist(), "labels": [1]}
        if kind == 1:
            return {"points": rng.uniform(0, side, (2, 2)).tolist(), "labels": [1, 0]}
        x0, y0 = rng.uniform(0, side / 2, 2)
        return {"box": [x0, y0, x0 + rng.uniform(20, side / 2), y0 + rng.uniform(20, side / 2)]}

    def stock(prompt: dict) -> torch.Tensor:
        kwargs = {}
        if "points" in prompt:
            kwargs = {"input_points": [[prompt["points"]]], "input_labels": [[prompt["labels"]]]}
        if "box" in prompt:
            kwargs["input_boxes"] = [[prompt["box"]]]
        # the processor only rescales the prompt here (the pixels are not used): kept out of the timing
        inputs = segmenter.processor(images=image, return_tensors="pt", **kwargs)
        prompts = {k: inputs[k] for k in ("input_points", "input_labels", "input_boxes") if k in inputs}
        start = time.perf_counter()
        with torch.no_grad():
            logits = model(image_embeddings=embeddings, multimask_output=True, **prompts).pred_masks[0, 0]
        stock_ms.append((time.perf_counter() - start) * 1e3)
        return logits

    def ours(prompt: dict) -> torch.Tensor:
        prediction = segmenter.predict(**prompt, multimask=True)
        return prediction.low_res_logits

    # the decoder part of `predict` alone, timed inside it by wrapping the two decoder calls
    decoder = segmenter.fast_decoder
    decode, upscale = decoder.decode, decoder.low_resolution_masks
    timer = {}

    def timed_decode(*a, **k):
        timer["start"] = time.perf_counter()
        return decode(*a, **k)

    def timed_upscale(*a, **k):
        result = upscale(*a, **k)
        timer["stop"] = time.perf_counter()
        return result

    decoder.decode, decoder.low_resolution_masks = timed_decode, timed_upscale
    encoder_prompt = segmenter.model.prompt_encoder
    prompt_timer = {}
    original_prompt_forward = encoder_prompt.forward

    def timed_prompt_encoder(*a, **k):
        prompt_timer["start"], prompt_timer["inputs"] = time.perf_counter(), (a, k)
        return original_prompt_forward(*a, **k)

    baseline, baseline_ms = None, []
    if args.baseline_decoder:  # another revision's fast_mask_decoder.py, timed on the same clicks
        import importlib.util
        import sys

        spec = importlib.util.spec_from_file_location("baseline_fast_mask_decoder", args.baseline_decoder)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        baseline = module.FastSamMaskDecoder(model.mask_decoder)

    def baseline_click() -> None:
        a, k = prompt_timer["inputs"]
        start = time.perf_counter()
        with torch.no_grad():
            sparse, dense = original_prompt_forward(*a, **k)
            decoded = baseline.decode(embeddings, segmenter._positional, sparse[0], dense[:1], image_key="baseline")
            baseline.low_resolution_masks(decoded, torch.arange(1), embeddings.shape[-2:], True)
        baseline_ms.append((time.perf_counter() - start) * 1e3)

    encoder_prompt.forward = timed_prompt_encoder
    for index in range(args.clicks + 3):
        prompt = click(index)
        reference = stock(prompt)
        start = time.perf_counter()
        logits = ours(prompt)
        whole = (time.perf_counter() - start) * 1e3
        if baseline is not None:
            baseline_click()
        if index < 3:  # warm-up (the first click of ours also computes the image-side terms)
            stock_ms.clear()
            baseline_ms.clear()
            continue
        ours_ms.append((timer["stop"] - prompt_timer["start"]) * 1e3)
        predict_ms.append(whole)
        deltas.append(float((logits - reference).abs().max() / reference.abs().max()))

    stock_median, ours_median = statistics.median(stock_ms), statistics.median(ours_ms)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads")
    print(f"load average at the end: {os.getloadavg()}")
    print(
        f"image {side}×{side}, embedding {tuple(embeddings.shape)}, encoder (narrow random ViT) {encode_seconds:.2f} s"
    )
    print(f"clicks: {len(ours_ms)} (points, point+negative point, boxes in turn), multimask, median ms:")
    print(f"  stock SamModel(image_embeddings=...)   {stock_median:8.2f}  (p90 {np.percentile(stock_ms, 90):.2f})")
    print(f"  ours  prompt encoder + fast decoder    {ours_median:8.2f}  (p90 {np.percentile(ours_ms, 90):.2f})")
    print(f"  ours  whole predict() (+ 3 masks at {side}²) {statistics.median(predict_ms):8.2f}")
    if baseline_ms:
        print(
            f"  baseline {args.baseline_decoder}: prompt encoder + fast decoder {statistics.median(baseline_ms):8.2f}"
        )
    print(f"  max |Δ logits| / max |logits|: {max(deltas):.2e}")
    print(f"stock_ms={stock_median:.2f} ours_ms={ours_median:.2f} speedup={stock_median / ours_median:.2f}")


if __name__ == "__main__":
    main()
