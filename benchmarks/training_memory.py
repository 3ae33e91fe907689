"""Peak memory and step time of SAM-Adapter training, with/without activation checkpointing and bf16, side by side.

Each configuration runs in its own subprocess (peak RSS is per process), on the same random-weight SAM and batch:

    python benchmarks/training_memory.py --preset tiny --steps 5 --batch-size 2
    python benchmarks/training_memory.py --preset vit-b --steps 3 --batch-size 1   # 1024² input, ~1-2 min/config on CPU

Prints a Markdown table (peak RSS, mean step time, ratios to the fp32 baseline) and, last, one line
`rss_ratio_ckpt=<x> rss_ratio_ckpt_bf16=<y> time_ratio_ckpt=<z>`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CONFIGS = (("fp32", False, "no"), ("fp32 + checkpointing", True, "no"), ("bf16", False, "bf16"),
           ("bf16 + checkpointing", True, "bf16"))  # fmt: skip


def _worker(preset: str, steps: int, batch_size: int, checkpointing: bool, precision: str, image_size: int) -> dict:
    import torch
    from peft import get_peft_model
    from transformers import SamModel

    from hf_promptseg.models.sam.configuration_sam import preset_sam_config
    from hf_promptseg.models.sam.prompt_free import prompt_free_logits
    from hf_promptseg.training.losses import build_loss
    from hf_promptseg.training.modeling import sam_core
    from hf_promptseg.tuners.sam_adapter import SamAdapterConfig

    torch.manual_seed(0)
    model = get_peft_model(SamModel(preset_sam_config(preset, image_size or None)), SamAdapterConfig())
    if checkpointing:
        sam_core(model).activation_checkpointing_enable()
    model.train()
    size = sam_core(model).config.vision_config.image_size
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(batch_size, 3, size, size, generator=generator)
    labels = (torch.rand(batch_size, 1, size, size, generator=generator) > 0.5).float()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = build_loss("bce+iou")
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = prompt_free_logits(model, pixel_values)
        loss = loss_fn(logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_rss_mib": peak / 1024, "model_rss_mib": baseline_rss / 1024, "step_s": sum(times[1:]) / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "vit-b", "vit-l", "vit-h"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=0, help="override the preset's input size (e.g. 256)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, checkpointing, precision = CONFIGS[int(args.worker)]
        print(json.dumps(_worker(args.preset, args.steps, args.batch_size, checkpointing, precision, args.image_size)))
        return
    rows = {}
    for index, (name, _, _) in enumerate(CONFIGS):
        output = subprocess.run(
            [sys.executable, __file__, "--preset", args.preset, "--steps", str(args.steps), "--batch-size",
             str(args.batch_size), "--image-size", str(args.image_size), "--worker", str(index)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        rows[name] = json.loads(output.strip().splitlines()[-1])
    base = rows["fp32"]
    size = args.image_size or "preset"
    print(f"SAM-Adapter training step, {args.preset} (input {size}), batch {args.batch_size}, {args.steps} steps\n")
    print("| configuration | peak RSS (MiB) | RSS vs fp32 | step (s) | time vs fp32 |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['peak_rss_mib']:.0f} | {row['peak_rss_mib'] / base['peak_rss_mib']:.2f} | "
              f"{row['step_s']:.2f} | {row['step_s'] / base['step_s']:.2f} |")  # fmt: skip
    ckpt, ckpt_bf16 = rows["fp32 + checkpointing"], rows["bf16 + checkpointing"]
    print(
        f"rss_ratio_ckpt={ckpt['peak_rss_mib'] / base['peak_rss_mib']:.3f} "
        f"rss_ratio_ckpt_bf16={ckpt_bf16['peak_rss_mib'] / base['peak_rss_mib']:.3f} "
        f"time_ratio_ckpt={ckpt['step_s'] / base['step_s']:.3f}"
    )


if __name__ == "__main__":
    main()
