"""Training speed and peak memory of DINOv: full / frozen backbone / LoRA, each with and without activation
checkpointing of the Swin backbone, side by side.

Every configuration runs in its own fresh subprocess (peak RSS is a per-process high-water mark, so configurations
cannot inflate each other's), through `DinovTrainer.training_step` on the same model, batches, prompts and seed:

    OMP_NUM_THREADS=1 python benchmarks/dinov_training.py                    # random:small, 64² (scenes-small recipe)
    OMP_NUM_THREADS=1 python benchmarks/dinov_training.py --base-model random:swin-t --image-size 128 --warmup 2 \
        --steps 3
    OMP_NUM_THREADS=1 python benchmarks/dinov_training.py --base-model random:swin-t --image-size 384 \
        --batch-size 1 --warmup 1 --steps 2 --configs "full,full + checkpointing"

Batches are collated before the clock starts, so the time is the step itself (forward, matching, losses, backward,
clip, AdamW); steps/s is 1 / the median timed wall-clock step, and the median CPU time per step is shown beside it
(less disturbed when the machine is shared). Peak RSS is measured per step: the kernel's peak mark (`VmHWM`) is
reset before each step (`/proc/self/clear_refs`) and read after it; the table shows the largest timed step's peak
(the JSON also how far each step rose above the RSS it started from, which depends on what the allocator kept from
the step before); Linux only. Prints one Markdown table and writes it, with every step's numbers, as JSON
(`--output`).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "examples" / "configs" / "dinov" / "scenes-small.yaml"
# name, method, freeze_backbone, activation_checkpointing
CONFIGS = (
    ("full", "full", False, False),
    ("full + checkpointing", "full", False, True),
    ("frozen backbone", "full", True, False),
    ("frozen backbone + checkpointing", "full", True, True),
    ("lora", "lora", False, False),
    ("lora + checkpointing", "lora", False, True),
)


def _status_mib(field: str) -> float:
    """`VmRSS` (now) or `VmHWM` (peak since the last reset) of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets the peak-RSS mark to the current RSS, so each step gets its own peak."""
    Path("/proc/self/clear_refs").write_text("5")


def _worker(index: int, options: argparse.Namespace) -> dict:
    import torch

    from hf_promptseg.commands.train import parse_train_arguments
    from hf_promptseg.training.dinov_trainer import DinovTrainer, DinovTrainingArguments

    name, method, freeze, checkpointing = CONFIGS[index]
    total = options.warmup + options.steps
    with tempfile.TemporaryDirectory() as output_dir:
        flags = ["--config", str(options.config), "--output_dir", output_dir, "--base_model", options.base_model,
                 "--image_size", str(options.image_size), "--per_device_train_batch_size", str(options.batch_size),
                 "--train_data", f"scenes:{total * options.batch_size}:0:{options.image_size}",
                 "--max_steps", str(total), "--method", method, "--freeze_backbone", str(freeze),
                 "--activation_checkpointing", str(checkpointing)]  # fmt: skip
        (args,) = parse_train_arguments(flags, (DinovTrainingArguments,))
        trainer = DinovTrainer(args)
        trainer.train_loader.set_epoch(0)
        batches = [batch for _, batch in zip(range(total), trainer.train_loader)]
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        trainer.model.train()
        before_steps = _status_mib("VmRSS")
        step_peaks, step_growth, times, cpu_times, losses = [], [], [], [], []
        for step, batch in enumerate(batches):
            _reset_peak()
            start_rss = _status_mib("VmRSS")
            start, cpu_start = time.perf_counter(), time.process_time()
            loss, _ = trainer.training_step(batch, step)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
            step_peaks.append(_status_mib("VmHWM"))
            step_growth.append(step_peaks[-1] - start_rss)
            losses.append(loss.item())
        timed = times[options.warmup :]
        return {
            "configuration": name,
            "trainable_parameters": trainable,
            "steps_per_s": 1 / statistics.median(timed),
            "step_s": statistics.median(timed),
            "mean_step_s": sum(timed) / len(timed),
            "step_times_s": times,
            "cpu_step_s": statistics.median(cpu_times[options.warmup :]),
            "cpu_step_times_s": cpu_times,
            "rss_before_steps_mib": before_steps,
            "peak_rss_mib": max(step_peaks[options.warmup :]),
            "step_peak_above_start_mib": max(step_growth[options.warmup :]),
            "peak_rss_per_step_mib": step_peaks,
            "process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "first_loss": losses[0],
            "torch_threads": torch.get_num_threads(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(RECIPE), help="DINOv training config the runs start from")
    parser.add_argument("--base-model", default="random:small", help="random:<tiny|small|swin-t> or a DINOv dir")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--output", default="dinov_training_benchmark.json", help="JSON results")
    parser.add_argument("--configs", default="", help="comma-separated subset of the configuration names")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker is not None:
        print(json.dumps(_worker(options.worker, options)))
        return
    chosen = [name.strip() for name in options.configs.split(",") if name.strip()] or [c[0] for c in CONFIGS]
    unknown = sorted(set(chosen) - {c[0] for c in CONFIGS})
    if unknown:
        parser.error(f"--configs: unknown {unknown}; choose from {[c[0] for c in CONFIGS]}")
    rows = []
    for index, (name, *_) in enumerate(CONFIGS):
        if name not in chosen:
            continue
        command = [sys.executable, __file__, "--worker", str(index), "--config", options.config, "--base-model",
                   options.base_model, "--image-size", str(options.image_size), "--batch-size",
                   str(options.batch_size), "--warmup", str(options.warmup), "--steps", str(options.steps)]  # fmt: skip
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(f"{name}: done", file=sys.stderr)
    title = (f"DINOv training step, {options.base_model} at {options.image_size}², batch {options.batch_size}, "
             f"{options.warmup} warmup + {options.steps} timed steps, {rows[0]['torch_threads']} torch thread(s)")  # fmt: skip
    print(title + "\n")
    print("| configuration | trainable params | steps/s | step (s) | CPU s / step | peak RSS per step (MiB) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['configuration']} | {row['trainable_parameters']:,} | {row['steps_per_s']:.3g} | "
              f"{row['step_s']:.3g} | {row['cpu_step_s']:.3g} | {row['peak_rss_mib']:.0f} |")  # fmt: skip
    Path(options.output).write_text(json.dumps({"title": title, "options": vars(options), "rows": rows}, indent=2))
    print(f"\nJSON: {options.output}")


if __name__ == "__main__":
    main()
