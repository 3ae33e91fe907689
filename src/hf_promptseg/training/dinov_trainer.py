"""Accelerate training of DINOv (spec §6): generic in-context and self-referring tasks on instance data.

The loop is the SAM trainer's (`hf_promptseg.training.trainer`): one code path for one or many processes
(`ACCELERATE_USE_CPU=1 torchrun --standalone --nproc_per_node 2 -m hf_promptseg train --family dinov ...`),
gradients all-reduced by DDP, resumable state written with `accelerator.save_state` and a rerun with the same
`output_dir` continuing to the same weights as an uninterrupted run (batch order, prompt sampling, matcher points
and DN jitter are all functions of (seed, rank, step)). Optimiser as the reference: AdamW with the backbone at
×`backbone_lr_multiplier`, no weight decay on norms, embeddings, biases and position tables; linear warmup then
×`lr_gamma` steps at the `lr_milestones` fractions of the run; full-model grad-norm clipping.

Differences from the reference, stated: generic prompts come from the batch of one process (the reference gathers
every GPU's prompt tokens); one image mapper (longest edge → `image_size`, pad to a square) and an optional
horizontal flip instead of large-scale jitter.

Modes (`method`): `full` (optionally `freeze_backbone`) and `lora` (PEFT LoRA in the decoder and prompt-encoder
layers, `lora_modules_to_save` heads trained fully); `activation_checkpointing` recomputes the Swin backbone.

With `validation_data`, the whole validation set is scored on the main process (`evaluate_dinov`, task
`eval_task`) every `eval_every_steps` and after the last step, while the other processes wait; the model that
improves `metric_for_best` is written to `best/` at once, and the best value and step are part of the resumable
progress. `push_to_hub` pushes `best/` (`final/` without validation) with its card in one commit at the end.

Run directory: `checkpoint/` (accelerate state + `progress.json` + `manifest.json`, written whole or not at all by
`hf_promptseg.training.checkpointing.save_training_state`, so a run killed even mid-save resumes exactly), `final/` (`save_pretrained` model + image
processor; with `method: lora` the adapter only — `adapter_model.safetensors` + `adapter_config.json`, loaded with
`PeftModel.from_pretrained` — plus `base/` when the base is a random preset) and `best/` (the same, of the best
step), each with a model card (training summary, eval results), written whole or not at all; `metrics.json` (loss
history with each step's `validation`, `best_metric` / `best_step`, `final_validation`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hf_promptseg.training.checkpointing import load_training_state, save_training_state
from hf_promptseg.training.lora import (
    check_modules_exist,
    scoped_modules,
    split_module_names,
)
from hf_promptseg.training.outputs import atomic_write_text, is_better, push_run_directory, save_trained_model
from hf_promptseg.utils.files import recover_output_dir
from hf_promptseg.utils.validation import check_positive_int

TASKS = ("generic", "referring", "both")
METHODS = ("full", "lora")
# LoRA goes into the layers of these modules (the decoder and the visual prompt encoder), never the backbone or
# the pixel decoder.
LORA_SCOPES = (r"model\.decoder\.layers\.\d+", r"model\.prompt_encoder\.layers\.\d+")


@dataclass
class DinovTrainingArguments:
    """Every option of `hf-promptseg train --family dinov` (YAML/JSON config keys or flags)."""

    output_dir: str | None = field(default=None, metadata={"help": "run directory (checkpoint, final model)"})
    train_data: str | None = field(
        default=None,
        metadata={"help": "'scenes:<count>[:seed[:size]]', a COCO instances JSON (with image_dir), parquet or Hub id"},
    )
    image_dir: str | None = field(default=None, metadata={"help": "image folder of a COCO JSON"})
    base_model: str = field(default="random:tiny", metadata={"help": "DINOv dir or 'random:<tiny|small|swin-t>'"})
    model_seed: int = field(default=0)
    method: str = field(
        default="full",
        metadata={"help": f"one of {METHODS}: 'full' trains every weight (but the backbone with freeze_backbone); "
                  "'lora' trains PEFT LoRA adapters in the decoder and prompt-encoder layers plus "
                  "`lora_modules_to_save`, and saves the adapter only"},
    )  # fmt: skip
    freeze_backbone: bool = field(default=False, metadata={"help": "train everything but the Swin backbone"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator"})
    lora_target_modules: str = field(
        default="self_attn,cross_attn,value_proj,output_proj,fc1,fc2",
        metadata={"help": "comma-separated module names inside the decoder / prompt-encoder layers for LoRA"},
    )
    lora_modules_to_save: str = field(
        default="mask_embed,iou_head,bbox_head",
        metadata={"help": "comma-separated modules trained fully (and saved with the adapter) in LoRA mode"},
    )
    activation_checkpointing: bool = field(
        default=False, metadata={"help": "recompute the Swin backbone's activations in the backward pass"}
    )
    task: str = field(default="generic", metadata={"help": f"one of {TASKS} ('both' sums the two tasks' losses)"})
    image_size: int = field(default=64, metadata={"help": "longest edge after resize; padded to this square"})
    horizontal_flip: bool = field(default=True)
    per_device_train_batch_size: int = field(default=4)
    max_steps: int = field(default=100)
    learning_rate: float = field(default=1e-4)
    weight_decay: float = field(default=0.05)
    backbone_lr_multiplier: float = field(default=0.1)
    warmup_steps: int = field(default=10)
    lr_milestones: str = field(default="0.4,0.62", metadata={"help": "fractions of max_steps where lr ×= lr_gamma"})
    lr_gamma: float = field(default=0.1)
    max_grad_norm: float = field(default=0.01, metadata={"help": "full-model clip norm (0 disables)"})
    mixed_precision: str = field(default="no", metadata={"help": "'no' or 'bf16' (autocast)"})
    num_points: int = field(default=12544, metadata={"help": "points per mask in the matcher and mask losses"})
    denoising: bool = field(default=True, metadata={"help": "DN queries in the generic task"})
    num_denoising: int = field(default=100)
    max_train_examples: int = field(default=4, metadata={"help": "most examples averaged into a category prompt"})
    generic_prompt_kinds: str = field(default="mask", metadata={"help": "kind:share list, e.g. 'mask:1,scribble:1'"})
    referring_prompt_kinds: str = field(default="mask:1,scribble:1,box:1,point:1")
    num_clicks: int = field(default=50)
    num_content_prompts: int = field(default=8)
    seed: int = field(default=0)
    checkpoint_every_steps: int = field(default=0)
    stop_after_steps: int = field(default=0, metadata={"help": "leave after N steps with resumable state"})
    logging_steps: int = field(default=10)
    validation_data: str | None = field(
        default=None,
        metadata={"help": "held-out instance data (the specs of `train_data`) scored by whole-set validation; "
                  "enables best/ and the card's eval results"},
    )  # fmt: skip
    validation_image_dir: str | None = field(
        default=None, metadata={"help": "image folder of a COCO JSON `validation_data` (default: `image_dir`)"}
    )
    eval_every_steps: int = field(default=0, metadata={"help": "validate every N steps (0: only after the last)"})
    eval_task: str | None = field(default=None, metadata={"help": f"one of {TASKS} (default: `task`)"})
    metric_for_best: str | None = field(
        default=None,
        metadata={"help": "validation metric that picks best/ (higher is better; default referring_miou, map for "
                  "eval_task generic)"},
    )  # fmt: skip
    eval_bank_images: int = field(
        default=4, metadata={"help": "generic validation: images whose instances are the bank"}
    )
    per_device_eval_batch_size: int = field(default=8)
    push_to_hub: bool = field(default=False, metadata={"help": "push best/ (or final/ without validation) at the end"})
    hub_model_id: str | None = field(default=None)
    hub_private: bool = field(default=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}, got {self.task!r}")
        if self.method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, got {self.method!r}")
        if self.method == "lora" and self.freeze_backbone:
            raise ValueError(
                "`freeze_backbone` conflicts with `method` 'lora': LoRA already freezes every base weight (the "
                "backbone included); drop `freeze_backbone` or use `method` 'full'"
            )
        if self.method == "lora":
            for name in ("lora_r", "lora_alpha"):
                check_positive_int(getattr(self, name), name)
            split_module_names(self.lora_target_modules, "lora_target_modules")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"`mixed_precision` must be 'no' or 'bf16', got {self.mixed_precision!r}")
        if self.image_size % 32:
            raise ValueError(f"`image_size` must be a multiple of 32, got {self.image_size}")
        for name in ("per_device_train_batch_size", "max_steps", "per_device_eval_batch_size", "eval_bank_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        check_positive_int(self.eval_every_steps, "eval_every_steps", minimum=0)
        self.milestones()
        if self.eval_task is None:
            self.eval_task = self.task
        if self.eval_task not in TASKS:
            raise ValueError(f"`eval_task` must be one of {TASKS}, got {self.eval_task!r}")
        if self.metric_for_best is None:
            self.metric_for_best = "map" if self.eval_task == "generic" else "referring_miou"
        metrics = validation_metric_names(self.eval_task)
        if self.metric_for_best not in metrics:
            raise ValueError(
                f"`metric_for_best` {self.metric_for_best!r} is not a metric of `eval_task` {self.eval_task!r}; "
                f"choose from {metrics}"
            )
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("`push_to_hub` needs `hub_model_id`")

    def milestones(self) -> list[int]:
        """LR drop steps from `lr_milestones` fractions."""
        try:
            fractions = [float(v) for v in self.lr_milestones.split(",") if v.strip()]
        except ValueError:
            raise ValueError(
                f"`lr_milestones` must be comma-separated fractions, got {self.lr_milestones!r}"
            ) from None
        if any(not 0 < f <= 1 for f in fractions):
            raise ValueError(f"`lr_milestones` fractions must be in (0, 1], got {self.lr_milestones!r}")
        return [round(f * self.max_steps) for f in fractions]


def validation_metric_names(task: str) -> list[str]:
    """The model metrics `evaluate_dinov` reports for `task` (higher is better for all), the `metric_for_best`
    choices; the pasted-prompt baselines and counts are not among them."""
    from hf_promptseg.models.dinov.prompt_sampling_dinov import PROMPT_KINDS

    names = []
    if task in ("referring", "both"):
        names += [
            "referring_miou",
            "referring_ciou",
            "referring_hit_rate",
            *(f"referring_miou_{k}" for k in PROMPT_KINDS),
        ]
    if task in ("generic", "both"):
        names += ["map", "map_50", "map_75", "mar", "semantic_miou", "semantic_background_iou"]
    return names


def parse_kind_shares(text: str, argument: str) -> dict[str, float]:
    """'mask:1,box:0.5' → {'mask': 1.0, 'box': 0.5}."""
    shares = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, value = item.partition(":")
        try:
            shares[kind] = float(value) if value else 1.0
        except ValueError:
            raise ValueError(f"`{argument}`: {item!r} is not 'kind:share'") from None
    return shares


# Architectures small enough to train on a CPU; "swin-t" is the released one.
TRAINING_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(backbone=dict(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4),
                 hidden_size=32, mask_dim=32, feedforward_dim=64, encoder_layers=1, decoder_layers=2,
                 num_queries=8, points_per_side=3, projection_dim=16, prompt_attention_heads=4,
                 encoder_attention_heads=4, decoder_attention_heads=4, group_norm_groups=8),
    "small": dict(backbone=dict(embed_dim=32, depths=[1, 1, 2, 1], num_heads=[2, 2, 4, 4], window_size=4),
                  hidden_size=64, mask_dim=64, feedforward_dim=128, encoder_layers=2, decoder_layers=3,
                  num_queries=16, points_per_side=4, projection_dim=64, prompt_attention_heads=4,
                  encoder_attention_heads=4, decoder_attention_heads=4, group_norm_groups=8),
}  # fmt: skip


def build_dinov(base_model: str, seed: int = 0):
    """A `DinovForVisualPromptSegmentation` from a directory or `random:<preset>` (seeded random weights)."""
    from hf_promptseg.models.dinov import DinovConfig, DinovForVisualPromptSegmentation, swin_backbone_config

    if not base_model.startswith("random:"):
        return DinovForVisualPromptSegmentation.from_pretrained(base_model, dtype=torch.float32)
    name = base_model.split(":", 1)[1]
    if name == "swin-t":
        config = DinovConfig.from_preset("swin-t")
    elif name in TRAINING_PRESETS:
        values = dict(TRAINING_PRESETS[name])
        config = DinovConfig(backbone_config=swin_backbone_config(**values.pop("backbone")), **values)
    else:
        raise ValueError(f"`base_model` 'random:{name}': unknown preset; choose from {['swin-t', *TRAINING_PRESETS]}")
    torch.manual_seed(seed)
    return DinovForVisualPromptSegmentation(config)


def checkpoint_backbone(model: nn.Module) -> None:
    """Activation checkpointing of the Swin backbone of a DINOv: each Swin block keeps only its input in the forward
    pass and runs again in the backward pass.

    transformers' own mechanism (`SwinBackbone.activation_checkpointing_enable`, non-reentrant `torch.utils.checkpoint`)
    marks both the Swin stages and the blocks inside them; nested like that, a block would run three times (forward,
    its stage's recompute, its own recompute), so only the innermost marked layers stay checkpointed.
    """
    from transformers.modeling_layers import GradientCheckpointingLayer

    backbone = model.model.backbone
    backbone.activation_checkpointing_enable()
    for module in backbone.modules():
        inner = [m for m in module.modules() if m is not module and isinstance(m, GradientCheckpointingLayer)]
        if isinstance(module, GradientCheckpointingLayer) and any(m.gradient_checkpointing for m in inner):
            module.gradient_checkpointing = False


def dinov_lora_model(model: nn.Module, args: DinovTrainingArguments):
    """`model` as a PEFT `PeftModel` with LoRA on `args.lora_target_modules` of the decoder and prompt-encoder
    layers and `args.lora_modules_to_save` trained fully; every other weight frozen.

    A linear layer gets PEFT's `lora.Linear`; an `nn.MultiheadAttention` (`self_attn`, `cross_attn`) gets LoRA on its
    fused q/k/v weight `in_proj_weight` through `target_parameters` (a parametrisation: W + BA computed at each
    forward). PEFT's `lora.MultiheadAttention` is not used: it adds BA into the frozen weights before every forward
    and subtracts it after, which leaves them off by rounding (1.5e-8 after two steps) — the base would not stay the
    base. The attention's output projection is not adapted (`nn.MultiheadAttention` never calls it as a module).

    ```python
    from hf_promptseg.training.dinov_trainer import DinovTrainingArguments, build_dinov, dinov_lora_model

    peft_model = dinov_lora_model(build_dinov("random:tiny"), DinovTrainingArguments(method="lora", lora_r=2))
    peft_model.print_trainable_parameters()
    ```
    """
    from peft import LoraConfig, get_peft_model

    targets = split_module_names(args.lora_target_modules, "lora_target_modules")
    to_save = [name.strip() for name in str(args.lora_modules_to_save).split(",") if name.strip()]
    check_modules_exist(model, to_save, "lora_modules_to_save")
    found = scoped_modules(model, LORA_SCOPES, targets, "lora_target_modules")
    attention = [f"{name}.in_proj_weight" for name, m in found.items() if isinstance(m, nn.MultiheadAttention)]
    linear = sorted(name for name, module in found.items() if isinstance(module, nn.Linear))
    other = sorted(set(found) - set(linear) - {name.rsplit(".", 1)[0] for name in attention})
    if other:
        raise ValueError(f"`lora_target_modules`: LoRA takes linear and attention layers, not {other}")
    inside_attention = [name for name in linear if isinstance(model.get_submodule(name.rsplit(".", 1)[0]),
                                                               nn.MultiheadAttention)]  # fmt: skip
    if inside_attention:
        raise ValueError(
            f"`lora_target_modules`: {inside_attention} are never called by their nn.MultiheadAttention (LoRA there "
            "would do nothing); name the attention module itself (e.g. 'self_attn') to adapt its q/k/v projection"
        )
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        target_modules=linear,
        target_parameters=attention or None,
        modules_to_save=to_save or None,
    )
    torch.manual_seed(args.model_seed)
    return get_peft_model(model, config)


def parameter_groups(model: nn.Module, learning_rate: float, weight_decay: float, backbone_multiplier: float):
    """AdamW groups as the reference: backbone × `backbone_multiplier`; no decay on norms, embeddings, biases and
    position/level tables."""
    no_decay_modules = (nn.LayerNorm, nn.GroupNorm, nn.Embedding)
    no_decay = set()
    for module in model.modules():
        if isinstance(module, no_decay_modules):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    groups: dict[tuple[bool, bool], list] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        backbone = ".backbone." in f".{name}"
        decay = not (id(parameter) in no_decay or name.endswith(".bias") or "position" in name or "level_embed" in name
                     or "relative_position_bias_table" in name)  # fmt: skip
        groups.setdefault((backbone, decay), []).append(parameter)
    return [
        {"params": params, "lr": learning_rate * (backbone_multiplier if backbone else 1.0),
         "weight_decay": weight_decay if decay else 0.0, "name": f"{'backbone' if backbone else 'heads'}"
         f"{'' if decay else '_no_decay'}"}
        for (backbone, decay), params in sorted(groups.items())
    ]  # fmt: skip


def warmup_step_schedule(optimizer, warmup_steps: int, milestones: list[int], gamma: float):
    """LambdaLR: linear warmup from 1/warmup to 1, then ×gamma at every milestone."""

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        return warm * gamma ** sum(step >= m for m in milestones)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def load_instances(args: DinovTrainingArguments):
    """The training rows (`InstanceDataset`) named by `train_data`."""
    from hf_promptseg.data.instances import load_coco_instances, load_instance_dataset, scene_instance_dataset
    from hf_promptseg.data.scenes import make_scenes

    source = args.train_data
    if not source:
        raise ValueError("`train_data` is required ('scenes:<count>[:seed[:size]]', a COCO JSON, parquet or Hub id)")
    if source.startswith("scenes:"):
        parts = source.split(":")[1:]
        try:
            count, seed, size = (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0,
                                 int(parts[2]) if len(parts) > 2 else args.image_size)  # fmt: skip
        except (ValueError, IndexError):
            raise ValueError(f"`train_data` {source!r}: expected 'scenes:<count>[:seed[:size]]'") from None
        return scene_instance_dataset(make_scenes(count, seed, size, size))
    if source.endswith(".json"):
        if not args.image_dir:
            raise ValueError("`image_dir` is required with a COCO JSON `train_data`")
        return load_coco_instances(source, args.image_dir)
    return load_instance_dataset(source)


def load_validation_data(args: DinovTrainingArguments):
    """The `validation_data` rows (`InstanceDataset`), or None; a spec that cannot be read, or too small for
    `eval_task`, is a `ValueError` naming the argument (raised before any training)."""
    from hf_promptseg.models.dinov.evaluation_dinov import load_evaluation_data

    if not args.validation_data:
        return None
    try:
        data = load_evaluation_data(args.validation_data, args.validation_image_dir or args.image_dir,
                                    image_size=args.image_size)  # fmt: skip
    # any loader failure: pycocotools, datasets and the file readers raise their own error types
    except Exception as err:
        raise ValueError(f"`validation_data` {args.validation_data!r} cannot be read: {err}") from err
    if args.eval_task in ("generic", "both") and len(data.dataset) <= args.eval_bank_images:
        raise ValueError(
            f"`validation_data` {args.validation_data!r} has {len(data.dataset)} images, but generic validation "
            f"builds its bank from the first `eval_bank_images`={args.eval_bank_images} and scores the rest"
        )
    return data


def validation_table(metrics: dict[str, Any], task: str, dataset: str | None, step: int | None = None) -> str:
    """Markdown table of the model's validation metrics beside the pasted-prompt baseline (for the model card)."""
    rows = []
    for name in validation_metric_names(task):
        if name not in metrics:
            continue
        baseline = metrics.get("paste_" + name.removeprefix("referring_"))
        rows.append(f"| {name} | {metrics[name]:.4f} | {'' if baseline is None else f'{baseline:.4f}'} |")
    when = f" after step {step}" if step is not None else ""
    header = (
        f"On `{dataset}`{when} (`hf_promptseg.models.dinov.evaluation_dinov`; baseline: the prompt pasted onto "
        "the target)"
    )
    return f"{header}:\n\n| metric | model | pasted-prompt baseline |\n|---|---|---|\n" + "\n".join(rows)


class InstanceCollator:
    """Rows → pixel values (B, 3, S, S) and `DinovInstances` at the padded size, through `DinovImageProcessor`."""

    def __init__(self, image_size: int) -> None:
        from hf_promptseg.models.dinov import DinovImageProcessor

        self.size = image_size
        self.processor = DinovImageProcessor(size={"shortest_edge": image_size, "longest_edge": image_size})

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        from hf_promptseg.data.instances import decode_instances
        from hf_promptseg.models.dinov.prompt_sampling_dinov import DinovInstances

        pixel_values = torch.zeros(len(rows), 3, self.size, self.size)
        instances = []
        for index, row in enumerate(rows):
            decoded = decode_instances(row)
            masks = decoded["masks"]
            processed = self.processor(decoded["image"], prompt_masks=[masks] if len(masks) else None)
            height, width = processed["pixel_values"].shape[-2:]
            pixel_values[index, :, :height, :width] = processed["pixel_values"][0]
            full = torch.zeros(len(masks), self.size, self.size, dtype=torch.bool)
            if len(masks):
                full[:, :height, :width] = processed["prompt_masks"][0] > 0
            size = tuple(int(v) for v in processed["image_sizes"][0])
            instances.append(DinovInstances(full, torch.as_tensor(decoded["category_ids"]), size))
        return {"pixel_values": pixel_values, "instances": instances}


def flip_batch(batch: dict[str, Any], flips: list[bool]) -> dict[str, Any]:
    """Horizontally flip the chosen images inside their valid region (masks too)."""
    from hf_promptseg.models.dinov.prompt_sampling_dinov import DinovInstances

    pixel_values = batch["pixel_values"].clone()
    instances = []
    for index, (flip, image) in enumerate(zip(flips, batch["instances"])):
        if flip:
            height, width = image.image_size
            pixel_values[index, :, :height, :width] = pixel_values[index, :, :height, :width].flip(-1)
            masks = image.masks.clone()
            masks[:, :height, :width] = masks[:, :height, :width].flip(-1)
            image = DinovInstances(masks, image.category_ids, image.image_size)
        instances.append(image)
    return {"pixel_values": pixel_values, "instances": instances}


class TrainingStep(nn.Module):
    """Runs a step's computation inside `forward`, so DDP (which prepares its gradient all-reduce in the wrapped
    module's forward) synchronises gradients although the step calls several DINOv components, not one forward."""

    def __init__(self, dinov: nn.Module) -> None:
        super().__init__()
        self.dinov = dinov

    def forward(self, compute, *args):
        return compute(self.dinov, *args)


class DinovTrainer:
    """Trains DINOv with accelerate.

    Example (a tiny random DINOv on 8 procedural scenes, a few seconds):

    ```python
    from hf_promptseg.training.dinov_trainer import DinovTrainer, DinovTrainingArguments

    args = DinovTrainingArguments(output_dir="dinov-run", train_data="scenes:8", max_steps=2,
                                  per_device_train_batch_size=2, num_points=256, num_denoising=8)
    result = DinovTrainer(args).train()  # {"steps": 2, "history": [...], ...}
    ```
    """

    def __init__(self, args: DinovTrainingArguments) -> None:
        from hf_promptseg.models.dinov.loss_dinov import DinovCriterion, DinovLossConfig
        from hf_promptseg.models.dinov.prompt_sampling_dinov import DinovPromptSamplingConfig

        if not args.output_dir:
            raise ValueError("`output_dir` is required")
        self.args = args
        self.output_dir = Path(args.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoint"
        self.accelerator = Accelerator(
            mixed_precision=args.mixed_precision,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
            # a generic-only step leaves the referring heads without gradients (and vice versa)
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        self.data = load_instances(args)
        self.validation = load_validation_data(args)
        self.model = build_dinov(args.base_model, args.model_seed)
        if args.freeze_backbone:
            self.model.model.backbone.requires_grad_(False)
        self.peft_model = None
        if args.method == "lora":
            self.peft_model = dinov_lora_model(self.model, args)
            # the loss reads DINOv's components directly; LoRA layers are injected into this same module
            self.model = self.peft_model.base_model.model
        if args.activation_checkpointing:
            # after PEFT: a PeftModel built on a checkpointed model hooks the Swin patch embedding to make its output
            # require grad (for reentrant checkpointing; this one is non-reentrant), and that hook fails on Swin
            checkpoint_backbone(self.model)
        self.sampling = DinovPromptSamplingConfig(
            generic_kind_shares=parse_kind_shares(args.generic_prompt_kinds, "generic_prompt_kinds"),
            referring_kind_shares=parse_kind_shares(args.referring_prompt_kinds, "referring_prompt_kinds"),
            max_train_examples=args.max_train_examples, num_clicks=args.num_clicks,
            num_content_prompts=min(args.num_content_prompts, self.model.config.max_prompts),
        )  # fmt: skip
        self.criterion = DinovCriterion(DinovLossConfig(num_points=args.num_points))
        self.collator = InstanceCollator(args.image_size)
        batch_size = args.per_device_train_batch_size
        loader = DataLoader(
            self.data.dataset, batch_size=batch_size, shuffle=True, collate_fn=self.collator,
            drop_last=len(self.data.dataset) > batch_size,
        )  # fmt: skip
        self.model = TrainingStep(self.model)
        groups = parameter_groups(self.model, args.learning_rate, args.weight_decay, args.backbone_lr_multiplier)
        self.optimizer = torch.optim.AdamW(groups, lr=args.learning_rate)
        # stepped once per optimizer step by this loop (not by accelerate), saved with the state
        self.scheduler = warmup_step_schedule(self.optimizer, args.warmup_steps, args.milestones(), args.lr_gamma)
        self.model, self.optimizer, self.train_loader = self.accelerator.prepare(self.model, self.optimizer, loader)
        self.accelerator.register_for_checkpointing(self.scheduler)

    def unwrapped_model(self):
        """The `DinovForVisualPromptSegmentation` being trained (without DDP and the step wrapper)."""
        return self.accelerator.unwrap_model(self.model).dinov

    # -- state --------------------------------------------------------------------------------------------------
    def _save_state(self, progress: dict[str, Any]) -> None:
        """The whole resumable state, written whole or not at all (`save_training_state`, as the SAM trainer)."""
        save_training_state(self.accelerator, self.checkpoint_dir, progress)

    def _load_progress(self) -> dict[str, Any]:
        """Remove what a killed run left (main process), then resume from the verified checkpoint."""
        if self.accelerator.is_main_process:
            for directory in ("best", "final"):  # leftovers of a writer killed mid-save
                recover_output_dir(self.output_dir / directory)
            (self.output_dir / ".metrics.json.tmp").unlink(missing_ok=True)
        new = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "history": [], "best_metric": None, "best_step": None}
        progress = load_training_state(self.accelerator, self.checkpoint_dir)
        return new if progress is None else {**new, **progress}

    def _step_seed(self, step: int) -> int:
        entropy = [self.args.seed, self.accelerator.process_index, step]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    # -- one step -----------------------------------------------------------------------------------------------
    def compute_loss(self, batch: dict[str, Any], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The step's summed loss and its logged parts (the task(s), prompts and noise all drawn from the step)."""
        return self.model(self._loss, batch, step)

    def _loss(self, model, batch: dict[str, Any], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        from hf_promptseg.models.dinov.denoising_dinov import build_denoising_queries
        from hf_promptseg.models.dinov.prompt_sampling_dinov import sample_generic_prompts, sample_referring_prompts
        from hf_promptseg.models.dinov.training_forward_dinov import (
            category_queries,
            generic_training_predictions,
            referring_training_predictions,
        )

        seed = self._step_seed(step)
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        if self.args.horizontal_flip:
            batch = flip_batch(batch, [bool(v) for v in rng.integers(0, 2, len(batch["instances"]))])
        device = self.accelerator.device
        pixel_values = batch["pixel_values"].to(device)
        images = [image for image in batch["instances"] if image.masks.flatten(1).any(1).any()]
        keep = [i for i, image in enumerate(batch["instances"]) if image.masks.flatten(1).any(1).any()]
        if not images:
            return sum(p.sum() * 0.0 for p in model.parameters()), {}
        pixel_values = pixel_values[keep]
        with self.accelerator.autocast():
            features = model.model.get_image_features(pixel_values)
        total, logged = pixel_values.new_zeros(()), {}
        if self.args.task in ("generic", "both"):
            prompts = sample_generic_prompts(images, self.sampling, rng)
            denoising = None
            if self.args.denoising:
                denoising = build_denoising_queries(model.model.label_enc.weight[0], prompts.targets,
                                                    self.args.num_denoising, rng=rng)  # fmt: skip
            with self.accelerator.autocast():
                queries, boxes = category_queries(model, features, prompts.prompt_masks.to(device),
                                                  prompts.aggregation, len(images))  # fmt: skip
                layers = generic_training_predictions(model, features, queries, boxes, denoising)
            loss, parts = self.criterion.generic(layers, _to(prompts.targets, device), denoising, generator)
            total = total + loss
            logged["generic"] = loss.item()
        if self.args.task in ("referring", "both"):
            prompts = sample_referring_prompts(images, self.sampling, rng)
            with self.accelerator.autocast():
                encoded = model.model.encode_visual_prompts(
                    features.multi_scale_features, prompts.prompt_masks.to(device)
                )
                layers = referring_training_predictions(model, features, encoded.content_queries,
                                                        encoded.content_boxes, prompts.click_boxes.to(device))  # fmt: skip
            prompts.targets = _to(prompts.targets, device)
            loss, parts = self.criterion.referring(layers, prompts, generator)
            total = total + loss
            logged["referring"] = loss.item()
        return total, logged

    def training_step(self, batch: dict[str, Any], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One optimizer step on `batch` (loss, backward, clip, AdamW, schedule); returns the loss and its parts."""
        loss, logged = self.compute_loss(batch, step)
        self.accelerator.backward(loss)
        if self.args.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        return loss, logged

    # -- validation and saving ----------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float | int]:
        """`evaluate_dinov` of the current weights on the whole `validation_data` (call on the main process)."""
        from hf_promptseg.models.dinov.evaluation_dinov import evaluate_dinov

        args = self.args
        options = dict(batch_size=args.per_device_eval_batch_size, seed=args.seed, progress=False)
        if args.eval_task in ("generic", "both"):
            options["bank_images"] = args.eval_bank_images
        return evaluate_dinov(
            self.unwrapped_model(), self.collator.processor, self.validation, task=args.eval_task, **options
        )

    def _validate(self, progress: dict[str, Any]) -> dict[str, float | int]:
        """Validate on the main process (the others wait: DDP is not involved), record it, save `best/` if better."""
        from accelerate.utils import broadcast_object_list

        accelerator = self.accelerator
        results = [self.evaluate() if accelerator.is_main_process else None]
        broadcast_object_list(results, from_process=0)
        metrics = results[0]
        value = float(metrics[self.args.metric_for_best])
        if is_better(value, progress["best_metric"]):
            progress["best_metric"], progress["best_step"] = value, progress["step"]
            self.save_model(self.output_dir / "best", progress["step"], metrics)
        accelerator.wait_for_everyone()
        return metrics

    def save_model(self, target: Path, step: int, metrics: dict[str, float | int] | None = None) -> None:
        """The trained model (the adapter in LoRA mode) + image processor + model card into `target`, whole or not at
        all (main process only)."""
        if not self.accelerator.is_main_process:
            return
        args = self.args
        random_base = args.base_model.startswith("random:")
        card = dict(
            kind="dinov", base_model=None if random_base else args.base_model, training=self._training_summary()
        )
        if args.hub_model_id:
            card["repo_id"] = args.hub_model_id
        if metrics:
            card.update(
                eval_results={k: v for k, v in metrics.items() if k in validation_metric_names(args.eval_task)},
                eval_dataset=args.validation_data,
                eval_table=validation_table(metrics, args.eval_task, args.validation_data, step),
            )
        save_trained_model(
            target, self.peft_model if self.peft_model is not None else self.unwrapped_model(), self.collator.processor,
            random_base=(lambda: build_dinov(args.base_model, args.model_seed)) if random_base else None, card=card,
        )  # fmt: skip

    def _training_summary(self) -> str:
        args = self.args
        mode = {"full": "full fine-tuning", "lora": f"PEFT LoRA (r {args.lora_r}, alpha {args.lora_alpha})"}
        mode = mode[args.method] + (", frozen backbone" if args.freeze_backbone else "")
        summary = (
            f"{mode} from `{args.base_model}` on `{args.train_data}` with hf_promptseg.training.dinov_trainer: task "
            f"{args.task}, {args.max_steps} steps × batch {args.per_device_train_batch_size}×"
            f"{self.accelerator.num_processes}, AdamW lr {args.learning_rate} (backbone ×{args.backbone_lr_multiplier},"
            f" wd {args.weight_decay}), warmup {args.warmup_steps}, ×{args.lr_gamma} at steps {args.milestones()}, "
            f"grad clip {args.max_grad_norm}, input {args.image_size}², {args.num_points} points per mask, seed "
            f"{args.seed}."
        )
        if args.validation_data:
            summary += f" Validated on `{args.validation_data}` ({args.eval_task}); best `{args.metric_for_best}` picks best/."
        return summary

    # -- loop ---------------------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Train to `max_steps` (resuming from `output_dir/checkpoint`), save `final/`; returns the history."""
        args, accelerator = self.args, self.accelerator
        progress = self._load_progress()
        bar = tqdm(
            total=args.max_steps, initial=progress["step"], desc="dinov", disable=not accelerator.is_main_process
        )
        self.model.train()
        stopped = False
        while progress["step"] < args.max_steps and not stopped:
            self.train_loader.set_epoch(progress["epoch"])
            loader = self.train_loader
            if progress["batches_in_epoch"]:
                loader = accelerator.skip_first_batches(self.train_loader, progress["batches_in_epoch"])
            for batch_index, batch in enumerate(loader, start=progress["batches_in_epoch"]):
                loss, logged = self.training_step(batch, progress["step"])
                progress["step"] += 1
                progress["batches_in_epoch"] = batch_index + 1
                bar.update(1)
                validate = self.validation is not None and (
                    progress["step"] == args.max_steps
                    or (args.eval_every_steps and progress["step"] % args.eval_every_steps == 0)
                )
                if (
                    validate
                    or progress["step"] % max(args.logging_steps, 1) == 0
                    or progress["step"] == args.max_steps
                ):
                    progress["history"].append({"step": progress["step"], "loss": loss.item(), **logged})
                    bar.set_postfix(loss=f"{loss.item():.3f}")
                if validate:
                    progress["history"][-1]["validation"] = self._validate(progress)
                if args.checkpoint_every_steps and progress["step"] % args.checkpoint_every_steps == 0:
                    self._save_state(progress)
                if progress["step"] >= args.max_steps:
                    break
                if args.stop_after_steps and progress["step"] >= args.stop_after_steps:
                    stopped = True
                    break
            else:
                progress["epoch"], progress["batches_in_epoch"] = progress["epoch"] + 1, 0
        bar.close()
        self._save_state(progress)
        if stopped:
            accelerator.end_training()
            return {"stopped_at_step": progress["step"], **progress}
        final = self.output_dir / "final"
        last = progress["history"][-1].get("validation") if progress["history"] else None
        self.save_model(final, progress["step"], last)
        results = {
            "steps": progress["step"],
            "history": progress["history"],
            "final": str(final),
            **self._best_results(progress, last),
        }
        if accelerator.is_main_process:
            atomic_write_text(
                self.output_dir / "metrics.json", json.dumps({**results, "arguments": asdict(args)}, indent=2)
            )
            if args.push_to_hub:
                pushed = results.get("best", results["final"])
                results["pushed"] = push_run_directory(
                    pushed, args.hub_model_id, private=args.hub_private, kind="dinov"
                )
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return results

    def _best_results(self, progress: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
        if self.validation is None:
            return {}
        return {
            "best": str(self.output_dir / "best"),
            "metric_for_best": self.args.metric_for_best,
            "best_metric": progress["best_metric"],
            "best_step": progress["best_step"],
            "final_validation": last,
        }


def _to(targets, device):
    from hf_promptseg.models.dinov.prompt_sampling_dinov import DinovTargets

    return [DinovTargets(t.masks.to(device), t.boxes.to(device), t.labels.to(device)) for t in targets]


__all__ = [
    "TRAINING_PRESETS",
    "DinovTrainer",
    "DinovTrainingArguments",
    "build_dinov",
    "checkpoint_backbone",
    "dinov_lora_model",
    "load_validation_data",
    "parameter_groups",
    "validation_metric_names",
    "validation_table",
    "warmup_step_schedule",
]
