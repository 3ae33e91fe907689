"""Moved: `evaluate_segmentation` to `hf_promptseg.training.evaluation`, the command to `hf_promptseg.commands.evaluate`."""

from hf_promptseg.utils.deprecation import moved_names

__getattr__ = moved_names(
    __name__,
    {
        "evaluate_segmentation": "hf_promptseg.training.evaluation",
        "evaluate_model": "hf_promptseg.training.evaluation",
        "format_table": "hf_promptseg.commands.evaluate",
    },
)
