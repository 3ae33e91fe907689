"""CPU inference time of DINOv (referring and generic), each configuration timed in two separate runs.

The two runs of the same configuration give the noise floor of the measurement:

    python benchmarks/dinov_inference.py --config fixture   # the golden fixture's small Swin-T-like model, 224×288
    python benchmarks/dinov_inference.py --config swin-t --size 512   # the released Swin-T architecture, random weights

Prints a Markdown table; the last line is `referring_s=<x> generic_s=<y> noise=<z>` (noise = largest relative
difference between the two runs).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "dinov"


def build(config_name: str):
    from hf_promptseg.models.dinov import DinovConfig, DinovForVisualPromptSegmentation, convert_dinov_checkpoint

    if config_name == "fixture":
        return convert_dinov_checkpoint(FIXTURE / "reference_state_dict.safetensors",
                                        reference_config=FIXTURE / "reference_config.json")  # fmt: skip
    torch.manual_seed(0)
    return DinovForVisualPromptSegmentation(DinovConfig.from_preset(config_name)).eval()


def timed(model, task: str, size: int, repeats: int) -> float:
    generator = torch.Generator().manual_seed(0)
    height, width = size, size * 9 // 7 // 32 * 32 or 32
    target = torch.randn(1, 3, height, width, generator=generator)
    reference = torch.randn(1, 3, height, height, generator=generator)
    masks = torch.zeros(1, 3, height, height)
    for i in range(3):
        masks[0, i, i * height // 4 : (i + 2) * height // 4, height // 8 : height // 2] = 1
    times = []
    with torch.inference_mode():
        model(target, reference, masks, task=task)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(target, reference, masks, task=task)
            times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="fixture", choices=["fixture", "swin-t", "swin-l"])
    parser.add_argument("--size", type=int, default=224, help="target height (width ≈ 9/7 of it, multiple of 32)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = build(args.config)
    rows = {task: [timed(model, task, args.size, args.repeats) for _ in range(2)] for task in ("referring", "generic")}
    print(
        f"DINOv {args.config}, target {args.size}px high, {torch.get_num_threads()} threads, best of {args.repeats}\n"
    )
    print("| task | run 1 (s) | run 2 (s) | difference |")
    print("|---|---|---|---|")
    noise = 0.0
    for task, (first, second) in rows.items():
        difference = abs(first - second) / min(first, second)
        noise = max(noise, difference)
        print(f"| {task} | {first:.3f} | {second:.3f} | {difference:.1%} |")
    print(f"referring_s={min(rows['referring']):.3f} generic_s={min(rows['generic']):.3f} noise={noise:.3f}")


if __name__ == "__main__":
    main()
