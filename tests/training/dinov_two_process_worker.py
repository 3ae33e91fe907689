"""Run by `torchrun --nproc_per_node 2` from test_dinov_trainer*.py: 2 DINOv steps (`method` from argv[2], default
full; argv[3] "validate": whole-set validation after each step), dump this rank's weights, its first batch's sum and
its validation results."""

import json
import sys
from pathlib import Path

from safetensors.torch import save_file

from hf_promptseg.training.dinov_trainer import DinovTrainer, DinovTrainingArguments

output_dir = Path(sys.argv[1])
method = sys.argv[2] if len(sys.argv) > 2 else "full"
validation = (
    dict(validation_data="scenes:4:7:64", eval_bank_images=2, eval_every_steps=1)
    if sys.argv[3:] == ["validate"]
    else {}
)
trainer = DinovTrainer(
    DinovTrainingArguments(
        output_dir=str(output_dir),
        train_data="scenes:8:0:64",
        task="both",
        max_steps=2,
        per_device_train_batch_size=2,
        num_points=64,
        num_denoising=8,
        num_clicks=3,
        num_content_prompts=2,
        learning_rate=1e-3,
        method=method,
        **validation,
    )  # fmt: skip
)
rank = trainer.accelerator.process_index
trainer.train_loader.set_epoch(0)
first_batch = float(next(iter(trainer.train_loader))["pixel_values"].sum())
results = trainer.train()  # ends with accelerator.end_training(): no collectives after this
weights = {name: p.detach().contiguous() for name, p in trainer.unwrapped_model().named_parameters()}
save_file(weights, output_dir / f"weights_rank{rank}.safetensors")
report = {
    "processes": trainer.accelerator.num_processes,
    "first_batch_sum": first_batch,
    "validation": {key: results.get(key) for key in ("best_step", "best_metric", "final_validation")},
}
(output_dir / f"rank{rank}.json").write_text(json.dumps(report))
