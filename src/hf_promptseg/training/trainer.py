"""Accelerate-native fine-tuning of SAM for prompt-free segmentation (SAM-Adapter, LoRA, full or decoder-only).

One loop for one process or many (`accelerate launch` / `torchrun`): accelerate wraps the model in DDP and keeps it
wrapped, so gradients are all-reduced; each rank reads its own shard; validation covers the **whole** validation
set (gathered across ranks) under `torch.inference_mode()`. State is saved with `accelerator.save_state` and a run
restarted with the same output directory continues where it stopped, ending with the same weights as an
uninterrupted run (sampler order, augmentations and optimizer state are all functions of the saved step).

Run directory:
- `checkpoint/`: resumable state (accelerate state + `progress.json`), `best_trainable.safetensors` and
  `manifest.json`; written whole or not at all (see `hf_promptseg.training.checkpointing`), so a run killed at any
  moment, even mid-save, resumes from a complete checkpoint and still ends with the uninterrupted run's weights;
- `best/`: the best model by `metric_for_best` on the validation set (`save_pretrained`; adapters only for PEFT
  methods, plus `base/` when the base model is a random preset), with a model card carrying the eval results;
- `metrics.json`: `before` / `after` validation metrics, best epoch and the per-epoch history.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hf_promptseg.data.segmentation import (
    SegmentationTransform,
    collate_segmentation,
    load_segmentation_dataset,
    random_flip_scale_crop,
)
from hf_promptseg.metrics import METRIC_DIRECTIONS
from hf_promptseg.models.sam.prompt_free import prompt_free_logits
from hf_promptseg.models.sam_adapter.predict import load_prompt_free_image_processor
from hf_promptseg.training.arguments import DataArguments, ModelArguments, SegmentationTrainingArguments
from hf_promptseg.training.checkpointing import load_training_state, save_training_state
from hf_promptseg.training.evaluation import evaluate_model
from hf_promptseg.training.losses import build_loss
from hf_promptseg.training.modeling import (
    base_model_location,
    build_training_model,
    is_sam2_model,
    load_base_model,
    model_input_size,
    sam_core,
)
from hf_promptseg.training.outputs import atomic_write_text, is_better, push_run_directory, save_trained_model
from hf_promptseg.utils.files import load_safetensors, recover_output_dir

BEST_TRAINABLE_FILE = "best_trainable.safetensors"


def build_datasets(data_args: DataArguments, image_processor, seed: int):
    """Train and validation `datasets.Dataset`s with the `SegmentationTransform` of `image_processor` attached."""
    if not data_args.train_data:
        raise ValueError("`train_data` is required (a folder, parquet, Hub id or 'synthetic:<count>')")
    train = load_segmentation_dataset(data_args.train_data, "train", data_args.image_column, data_args.mask_column)
    if data_args.validation_data:
        validation = load_segmentation_dataset(
            data_args.validation_data, "validation", data_args.image_column, data_args.mask_column
        )
    else:
        if len(train) < 2:
            raise ValueError("`train_data` needs at least 2 samples to split off a validation set")
        split = train.train_test_split(test_size=data_args.validation_fraction, seed=seed)
        train, validation = split["train"], split["test"]
    transform = SegmentationTransform(image_processor)
    return train.with_transform(transform), validation.with_transform(transform)


def _local_base_dir(model_args: ModelArguments) -> str | None:
    """The base model's directory, where a processor saved with it would be (None for random presets and Hub ids)."""
    location = base_model_location(model_args.base_model)
    return location if Path(location).is_dir() else None


def _sam2_image_processor(model: torch.nn.Module, image_size: int, local_dir: str | None):
    """The base directory's SAM2 image processor when it resizes to `image_size`², else one built from the config."""
    from hf_promptseg.models.sam2.image_processing_sam2 import HfPromptsegSam2ImageProcessor
    from hf_promptseg.models.sam2.processing_sam2 import build_sam2_processor

    native = model_input_size(model)
    if image_size != native:
        raise ValueError(
            f"`image_size` {image_size} differs from the SAM2 base's input size {native}; SAM2's Hiera position "
            "embeddings and feature sizes are fixed by its config, so leave `image_size` unset"
        )
    saved_files = ("processor_config.json", "preprocessor_config.json")
    if local_dir is not None and any((Path(local_dir) / name).is_file() for name in saved_files):
        from transformers import AutoImageProcessor

        saved = AutoImageProcessor.from_pretrained(local_dir)
        if isinstance(saved, HfPromptsegSam2ImageProcessor) and saved.size == {"height": native, "width": native}:
            return saved
    return build_sam2_processor(sam_core(model).config).image_processor


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().cpu().clone() for name, param in model.named_parameters() if param.requires_grad}


def _link_or_copy(source: Path, destination: Path) -> None:
    """Checkpoint files are never rewritten in place, so a hard link is a safe, instant copy."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            parameters[name].copy_(value)


class SegmentationTrainer:
    """Fine-tunes SAM on image/mask pairs with the prompt-free decoder path.

    Example (a tiny random SAM on synthetic camouflage images; runs offline in about a minute on 2 cores):

    ```python
    from hf_promptseg.training import DataArguments, ModelArguments, SegmentationTrainer, SegmentationTrainingArguments

    trainer = SegmentationTrainer(
        ModelArguments(base_model="random:tiny", method="sam_adapter"),
        DataArguments(train_data="synthetic:64", validation_data="synthetic:16:1"),
        SegmentationTrainingArguments(output_dir="run", num_train_epochs=2, learning_rate=1e-3),
    )
    metrics = trainer.train()  # {"before": {...}, "after": {...}, ...}
    ```
    """

    def __init__(
        self,
        model_args: ModelArguments,
        data_args: DataArguments,
        training_args: SegmentationTrainingArguments,
    ) -> None:
        if not training_args.output_dir:
            raise ValueError("`output_dir` is required")
        if training_args.metric_for_best not in METRIC_DIRECTIONS:
            raise ValueError(f"`metric_for_best` must be one of {sorted(METRIC_DIRECTIONS)}")
        self.model_args, self.data_args, self.args = model_args, data_args, training_args
        self.output_dir = Path(training_args.output_dir)
        self.accelerator = Accelerator(
            mixed_precision=training_args.mixed_precision,
            gradient_accumulation_steps=training_args.gradient_accumulation_steps,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
            # The prompt-free loss never reaches the IoU head (and LoRA/full leave other parts idle).
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        set_seed(training_args.seed)
        self.loss_fn = build_loss(training_args.loss)
        self.model = build_training_model(model_args)
        self.is_sam2 = is_sam2_model(self.model)
        self.image_size = data_args.image_size or model_input_size(self.model)
        # One preprocessing for training, validation and serving: this processor is saved with the best model.
        if self.is_sam2:
            self.image_processor = _sam2_image_processor(self.model, self.image_size, _local_base_dir(model_args))
        else:
            self.image_processor = load_prompt_free_image_processor(self.image_size, _local_base_dir(model_args))
        if training_args.activation_checkpointing:
            if self.is_sam2:
                raise ValueError(
                    "`activation_checkpointing` is not available for SAM2 bases (transformers' Sam2Model)"
                )
            sam_core(self.model).activation_checkpointing_enable()
        train, validation = build_datasets(data_args, self.image_processor, training_args.seed)
        self.train_loader = DataLoader(
            train, batch_size=training_args.per_device_train_batch_size, shuffle=True, collate_fn=collate_segmentation
        )
        self.eval_loader = DataLoader(
            validation, batch_size=training_args.per_device_eval_batch_size, collate_fn=collate_segmentation
        )
        trainable = [param for param in self.model.parameters() if param.requires_grad]
        self.optimizer = torch.optim.AdamW(
            trainable, lr=training_args.learning_rate, weight_decay=training_args.weight_decay
        )
        self.train_loader, self.eval_loader = self.accelerator.prepare(self.train_loader, self.eval_loader)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / training_args.gradient_accumulation_steps)
        if training_args.max_steps > 0:
            self.total_steps = training_args.max_steps
        else:
            self.total_steps = self.steps_per_epoch * training_args.num_train_epochs
        from transformers import get_cosine_with_min_lr_schedule_with_warmup

        # accelerate steps a prepared scheduler once per process for every optimizer step.
        processes = self.accelerator.num_processes
        scheduler = get_cosine_with_min_lr_schedule_with_warmup(
            self.optimizer,
            training_args.warmup_steps * processes,
            self.total_steps * processes,
            min_lr=training_args.min_learning_rate,
        )
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(self.model, self.optimizer, scheduler)
        self.checkpoint_dir = self.output_dir / "checkpoint"
        self._pending_best: dict[str, torch.Tensor] | None = None

    # -- state --------------------------------------------------------------------------------------------------
    def _new_progress(self) -> dict[str, Any]:
        return {
            "step": 0,
            "epoch": 0,
            "batches_in_epoch": 0,
            "epoch_loss_sum": 0.0,
            "epoch_loss_count": 0,
            "best": None,
            "best_epoch": None,
            "history": [],
        }

    def _save_state(self, progress: dict[str, Any]) -> None:
        """The whole resumable state plus the best weights, written whole or not at all (`save_training_state`)."""
        save_training_state(self.accelerator, self.checkpoint_dir, progress, write_extra=self._write_best)
        self._pending_best = None

    def _write_best(self, tmp: Path) -> None:
        if self._pending_best is not None:
            save_file(self._pending_best, tmp / BEST_TRAINABLE_FILE)
        elif (self.checkpoint_dir / BEST_TRAINABLE_FILE).is_file():
            _link_or_copy(self.checkpoint_dir / BEST_TRAINABLE_FILE, tmp / BEST_TRAINABLE_FILE)

    def _load_progress(self) -> dict[str, Any]:
        """Recover from a kill (main process), then resume from the verified checkpoint on every process."""
        if self.accelerator.is_main_process:
            recover_output_dir(self.output_dir / "best")
            (self.output_dir / ".metrics.json.tmp").unlink(missing_ok=True)
        progress = load_training_state(self.accelerator, self.checkpoint_dir)
        return self._new_progress() if progress is None else {**self._new_progress(), **progress}

    def _augmentation_generator(self, step: int, micro_step: int) -> torch.Generator:
        """Draws depend on (seed, rank, step) only, so a resumed run repeats the uninterrupted run's batches."""
        entropy = [self.args.seed, self.accelerator.process_index, step, micro_step]
        return torch.Generator().manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))

    # -- evaluation and saving ----------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        return evaluate_model(self.model, self.eval_loader, self.accelerator, self.args.metric_set)

    def _remember_best(self) -> None:
        """Keep the best weights in memory; the next `_save_state` writes them with the progress that names them."""
        if self.accelerator.is_main_process:
            state = _trainable_state(self.accelerator.unwrap_model(self.model))
            self._pending_best = {k: v.contiguous() for k, v in state.items()}

    def _restore_best(self) -> None:
        path = self.checkpoint_dir / BEST_TRAINABLE_FILE
        if path.is_file():
            _load_trainable_state(self.accelerator.unwrap_model(self.model), load_safetensors(path))

    def save_best(self, metrics: dict[str, float]) -> Path:
        """`save_pretrained` of the (restored) best model into `output_dir/best`, with a filled model card."""
        target = self.output_dir / "best"
        if self.accelerator.is_main_process:
            base = self.model_args.base_model
            kind = "sam_adapter" if self.model_args.method == "sam_adapter" else "sam"
            save_trained_model(
                target,
                self.accelerator.unwrap_model(self.model),
                self.image_processor,
                random_base=(lambda: load_base_model(base, self.model_args.model_seed))
                if base.startswith("random:")
                else None,
                card=dict(
                    kind=None if self.is_sam2 else kind,  # SAM2 models and adapters are told apart by their files
                    base_model=None if base.startswith("random:") else base,
                    eval_results=metrics,
                    eval_dataset=self.data_args.validation_data or f"{self.data_args.train_data} (held-out split)",
                    training=self._training_summary(),
                ),
            )
        self.accelerator.wait_for_everyone()
        return target

    def _training_summary(self) -> str:
        args = self.args
        return (
            f"{self.model_args.method} on `{self.data_args.train_data}`, {self.total_steps} steps, AdamW lr "
            f"{args.learning_rate} (wd {args.weight_decay}) cosine to {args.min_learning_rate}, batch "
            f"{args.per_device_train_batch_size}×{args.gradient_accumulation_steps}×{self.accelerator.num_processes}"
            f", loss {args.loss}, input {self.image_size}², hf_promptseg.training."
        )

    # -- loop ---------------------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Train (resuming if the output dir holds state), validate each epoch, keep the best; returns metrics."""
        args, accelerator = self.args, self.accelerator
        progress = self._load_progress()
        if "before" not in progress:
            progress["before"] = self.evaluate()
        bar = tqdm(
            total=self.total_steps, initial=progress["step"], desc="training", disable=not accelerator.is_main_process
        )
        self.model.train()
        stopped_early = False
        # An epoch with batches done is finished (evaluated, saved) even when its last step was the final one.
        while (progress["step"] < self.total_steps or progress["batches_in_epoch"]) and not stopped_early:
            epoch = progress["epoch"]
            self.train_loader.set_epoch(epoch)
            loader = self.train_loader
            if progress["batches_in_epoch"]:
                loader = accelerator.skip_first_batches(self.train_loader, progress["batches_in_epoch"])
            running, count = progress["epoch_loss_sum"], progress["epoch_loss_count"]
            for micro_step, batch in enumerate(loader, start=progress["batches_in_epoch"]):
                if progress["step"] >= self.total_steps:
                    break
                pixel_values, labels = batch["pixel_values"], batch["labels"]
                if self.data_args.augment:
                    generator = self._augmentation_generator(progress["step"], micro_step)
                    pixel_values, labels = random_flip_scale_crop(pixel_values, labels, generator)
                with accelerator.accumulate(self.model):
                    loss = self.loss_fn(prompt_free_logits(self.model, pixel_values).float(), labels)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and args.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad()
                running, count = running + loss.item(), count + 1
                if not accelerator.sync_gradients:
                    continue
                progress["step"] += 1
                progress["batches_in_epoch"] = micro_step + 1
                progress["epoch_loss_sum"], progress["epoch_loss_count"] = running, count
                bar.update(1)
                if progress["step"] % max(args.logging_steps, 1) == 0:
                    bar.set_postfix(loss=f"{running / count:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
                if args.checkpoint_every_steps and progress["step"] % args.checkpoint_every_steps == 0:
                    self._save_state(progress)
                if progress["step"] >= self.total_steps:
                    break
                if args.stop_after_steps and progress["step"] >= args.stop_after_steps:
                    stopped_early = True
                    break
            if not stopped_early:
                self._end_epoch(progress, running / max(count, 1))
        bar.close()
        if stopped_early:
            self._save_state(progress)
            accelerator.end_training()
            return {"stopped_at_step": progress["step"], **progress}
        self._restore_best()
        after = self.evaluate()
        results = {
            "before": progress["before"],
            "after": after,
            "metric_for_best": args.metric_for_best,
            "best_epoch": progress["best_epoch"],
            "steps": progress["step"],
            "history": progress["history"],
            "arguments": {
                "model": asdict(self.model_args),
                "data": asdict(self.data_args),
                "training": asdict(args),
            },
        }
        best_dir = self.save_best(after)
        if accelerator.is_main_process:
            atomic_write_text(self.output_dir / "metrics.json", json.dumps(results, indent=2))
            if args.push_to_hub:
                push_run_directory(best_dir, args.hub_model_id, private=args.hub_private)
        accelerator.end_training()
        return results

    def _end_epoch(self, progress: dict[str, Any], mean_loss: float) -> None:
        epoch = progress["epoch"]
        entry: dict[str, Any] = {"epoch": epoch, "step": progress["step"], "train_loss": mean_loss}
        last = progress["step"] >= self.total_steps
        if (epoch + 1) % max(self.args.eval_every_epochs, 1) == 0 or last:
            metrics = self.evaluate()
            entry["validation"] = metrics
            value = metrics[self.args.metric_for_best]
            if is_better(value, progress["best"], METRIC_DIRECTIONS[self.args.metric_for_best]):
                progress["best"], progress["best_epoch"] = value, epoch
                self._remember_best()
        progress["history"].append(entry)
        progress["epoch"], progress["batches_in_epoch"] = epoch + 1, 0
        progress["epoch_loss_sum"], progress["epoch_loss_count"] = 0.0, 0
        self._save_state(progress)
