"""Dataclass arguments of `hf-promptseg train`, parsed by transformers' `HfArgumentParser` (CLI, YAML or JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hf_promptseg.utils.validation import check_positive_int, check_threshold

METHODS = ("sam_adapter", "lora", "full", "decoder")
MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class ModelArguments:
    """What to fine-tune and how."""

    base_model: str = field(
        default="random:tiny",
        metadata={"help": "SAM dir or Hub id, or 'random:<tiny|vit-b|vit-l|vit-h>' for a random-weight model"},
    )
    method: str = field(default="sam_adapter", metadata={"help": f"one of {METHODS}"})
    model_seed: int = field(default=0, metadata={"help": "initialisation seed of random models and new adapters"})
    adapter_scale_factor: int = field(default=32, metadata={"help": "SAM-Adapter width = hidden_size // this"})
    adapter_freq_nums: float = field(default=0.25, metadata={"help": "SAM-Adapter low-frequency area removed"})
    adapter_init_weights: str = field(default="reference", metadata={"help": "'reference' or 'zero_up'"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator"})
    lora_target_modules: str = field(default="qkv", metadata={"help": "comma-separated module names for LoRA"})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, got {self.method!r}")
        for name in ("adapter_scale_factor", "lora_r", "lora_alpha"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.model_seed, "model_seed", minimum=0)
        check_threshold(self.adapter_freq_nums, "adapter_freq_nums", 0.0, 1.0, high_inclusive=False)


@dataclass
class DataArguments:
    """Where the images and masks come from (see `hf_promptseg.data.segmentation`)."""

    train_data: str | None = field(
        default=None,
        metadata={"help": "COD-style folder, imagefolder, parquet, Hub id or 'synthetic:<n>[:seed[:size]]'"},
    )
    validation_data: str | None = field(default=None, metadata={"help": "same kinds; default: split off train"})
    validation_fraction: float = field(default=0.1, metadata={"help": "used when no validation_data is given"})
    image_column: str = field(default="image")
    mask_column: str = field(default="mask")
    image_size: int | None = field(default=None, metadata={"help": "square input size; default: the model's"})
    augment: bool = field(default=True, metadata={"help": "random flip + scale-crop on training batches"})

    def __post_init__(self) -> None:
        check_threshold(
            self.validation_fraction, "validation_fraction", 0.0, 1.0, low_inclusive=False, high_inclusive=False
        )
        check_positive_int(self.image_size, "image_size", allow_none=True, minimum=16)


@dataclass
class SegmentationTrainingArguments:
    """Optimisation, evaluation and checkpointing. Defaults follow SAM-Adapter's COD recipe."""

    output_dir: str | None = field(default=None, metadata={"help": "run directory (checkpoints, best model, metrics)"})
    num_train_epochs: int = field(default=20)
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; overrides num_train_epochs when > 0"})
    per_device_train_batch_size: int = field(default=2)
    per_device_eval_batch_size: int = field(default=2)
    gradient_accumulation_steps: int = field(default=1)
    learning_rate: float = field(default=2e-4)
    min_learning_rate: float = field(default=1e-7, metadata={"help": "end of the cosine schedule"})
    weight_decay: float = field(default=0.01)
    warmup_steps: int = field(default=0)
    max_grad_norm: float = field(default=0.0, metadata={"help": "gradient clipping norm; 0 disables"})
    loss: str = field(default="bce+iou", metadata={"help": "'+'-joined terms of bce, iou, bbce, dice, focal"})
    mixed_precision: str = field(default="no", metadata={"help": f"one of {MIXED_PRECISION}"})
    activation_checkpointing: bool = field(default=False, metadata={"help": "recompute encoder activations"})
    seed: int = field(default=0)
    metric_set: str = field(default="cod", metadata={"help": "'cod', 'ber' or 'polyp'"})
    metric_for_best: str = field(default="s_measure", metadata={"help": "validation metric that picks the best"})
    eval_every_epochs: int = field(default=1)
    checkpoint_every_steps: int = field(default=0, metadata={"help": "also save resumable state every N steps"})
    stop_after_steps: int = field(
        default=0, metadata={"help": "leave after N optimizer steps with resumable state (time-boxed jobs)"}
    )
    logging_steps: int = field(default=10)
    push_to_hub: bool = field(default=False)
    hub_model_id: str | None = field(default=None)
    hub_private: bool = field(default=False)

    def __post_init__(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"`mixed_precision` must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        for name in ("num_train_epochs", "max_steps", "warmup_steps", "seed", "eval_every_epochs",
                     "checkpoint_every_steps", "stop_after_steps", "logging_steps"):  # fmt: skip
            check_positive_int(getattr(self, name), name, minimum=-1 if name == "max_steps" else 0)
        check_threshold(self.learning_rate, "learning_rate", 0.0, None, low_inclusive=False)
        for name in ("min_learning_rate", "weight_decay", "max_grad_norm"):
            check_threshold(getattr(self, name), name, 0.0, None)
        if self.num_train_epochs < 1 and self.max_steps <= 0:
            raise ValueError("set `num_train_epochs` >= 1 or `max_steps` > 0")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("`push_to_hub` needs `hub_model_id`")
