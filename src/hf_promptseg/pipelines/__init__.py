"""transformers pipelines for hf_promptseg's tasks; each family's registration hook registers the ones it serves."""

from __future__ import annotations

from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import logging


def register_task_pipeline(task: str, pipeline_class: type, pt_model, type: str) -> None:
    """`PIPELINE_REGISTRY.register_pipeline`, without the "Overwriting pipeline" warning a replaced stock task logs."""
    pipelines_logger = logging.get_logger("transformers.pipelines.base")
    level = pipelines_logger.level
    pipelines_logger.setLevel(logging.ERROR)
    try:
        PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=pipeline_class, pt_model=pt_model, type=type)
    finally:
        pipelines_logger.setLevel(level)


__all__ = ["register_task_pipeline"]
