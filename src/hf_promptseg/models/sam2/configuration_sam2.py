"""Configuration key under which hf_promptseg registers its SAM2 processors with the Auto classes.

SAM2 checkpoints keep transformers' own `model_type="sam2"`, so they load with plain transformers. This subclass,
with its own `model_type`, only names hf_promptseg's image processor and processor for `AutoImageProcessor` /
`AutoProcessor` (registering them on transformers' `Sam2Config` would replace SAM2's classes for every caller).
"""

from __future__ import annotations

from transformers import Sam2Config


class HfPromptsegSam2Config(Sam2Config):
    """`Sam2Config` with its own `model_type`, used to register hf_promptseg's SAM2 classes with the Auto classes.

    Example:
        >>> from hf_promptseg.models.sam2 import HfPromptsegSam2Config
        >>> HfPromptsegSam2Config().model_type
        'hf_promptseg_sam2'
    """

    model_type = "hf_promptseg_sam2"


__all__ = ["HfPromptsegSam2Config"]
