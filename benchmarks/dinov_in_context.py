"""Does DINOv learn in-context segmentation? Train a small random DINOv on procedural scenes with
`hf_promptseg.training.dinov_trainer`, then compare it with the untrained model (same initialisation) and the
paste-the-prompt baseline on held-out scene pairs (a seed the training never saw); see `evaluate_in_context`.

    OMP_NUM_THREADS=2 python benchmarks/dinov_in_context.py --output-dir /tmp/dinov-in-context --max-steps 250

Writes `results.json` in the output directory (metrics before/after, steps, wall time, arguments).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from hf_promptseg.models.dinov import DinovForVisualPromptSegmentation
from hf_promptseg.models.dinov.in_context_evaluation import evaluate_in_context
from hf_promptseg.training.dinov_trainer import DinovTrainer, DinovTrainingArguments, build_dinov


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--max-steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--train-scenes", type=int, default=2000)
    parser.add_argument("--eval-pairs", type=int, default=100)
    parser.add_argument("--eval-seed", type=int, default=12345)
    parser.add_argument("--base-model", default="random:small")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    args = parser.parse_args()
    output = Path(args.output_dir)
    training = DinovTrainingArguments(
        output_dir=str(output / "run"), train_data=f"scenes:{args.train_scenes}:0:64", base_model=args.base_model,
        image_size=64, task="generic", max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, backbone_lr_multiplier=1.0, warmup_steps=20, lr_milestones="0.8",
        max_grad_norm=1.0, num_points=1024, num_denoising=32, logging_steps=10, checkpoint_every_steps=50,
    )  # fmt: skip
    before = evaluate_in_context(build_dinov(args.base_model, training.model_seed), args.eval_pairs, args.eval_seed)
    print("untrained:", json.dumps(before))
    start, cpu_start = time.time(), _cpu_seconds()
    result = DinovTrainer(training).train()
    seconds, cpu_seconds = time.time() - start, _cpu_seconds() - cpu_start
    trained = DinovForVisualPromptSegmentation.from_pretrained(result["final"])
    after = evaluate_in_context(trained, args.eval_pairs, args.eval_seed)
    print("trained:", json.dumps(after))
    summary = {"untrained": before, "trained": after, "steps": result["steps"], "train_seconds": round(seconds, 1),
               "train_cpu_seconds": round(cpu_seconds, 1),
               "history": result["history"], "benchmark_arguments": vars(args)}  # fmt: skip
    (output / "results.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
