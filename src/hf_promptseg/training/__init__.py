"""Fine-tuning SAM for prompt-free segmentation with accelerate: SAM-Adapter (PEFT), LoRA, full or decoder-only."""

from hf_promptseg.training.arguments import DataArguments, ModelArguments, SegmentationTrainingArguments
from hf_promptseg.training.evaluation import evaluate_model
from hf_promptseg.training.losses import build_loss
from hf_promptseg.training.trainer import SegmentationTrainer

__all__ = [
    "DataArguments",
    "ModelArguments",
    "SegmentationTrainer",
    "SegmentationTrainingArguments",
    "build_loss",
    "evaluate_model",
]
