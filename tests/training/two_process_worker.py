"""Run by `torchrun --nproc_per_node 2` from test_trainer.py: train 3 steps, dump this rank's weights and first batch."""

import json
import sys
from pathlib import Path

from safetensors.torch import save_file

from hf_promptseg.training import DataArguments, ModelArguments, SegmentationTrainer, SegmentationTrainingArguments

output_dir = Path(sys.argv[1])
trainer = SegmentationTrainer(
    ModelArguments(base_model="random:tiny", method="sam_adapter", adapter_scale_factor=8),
    DataArguments(train_data="synthetic:10:0:128", validation_data="synthetic:3:1:128"),
    SegmentationTrainingArguments(
        output_dir=str(output_dir), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-3
    ),
)
rank = trainer.accelerator.process_index
trainer.train_loader.set_epoch(0)
first_batch = float(next(iter(trainer.train_loader))["pixel_values"].sum())
trainer.train()  # ends with accelerator.end_training(): no collectives after this
model = trainer.accelerator.unwrap_model(trainer.model)
weights = {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}
save_file(weights, output_dir / f"weights_rank{rank}.safetensors")
report = {"processes": trainer.accelerator.num_processes, "first_batch_sum": first_batch}
(output_dir / f"rank{rank}.json").write_text(json.dumps(report))
