"""Configuration of SAM models that carry hf_promptseg-specific behaviour.

Converted checkpoints keep transformers' own `model_type="sam"` so that they load with plain transformers. This
subclass, with its own `model_type`, is the key under which hf_promptseg registers its SAM image processor and
processor with the Auto classes (registering on transformers' `SamConfig` would replace SAM for every caller).
"""

from __future__ import annotations

from transformers import SamConfig


class HfPromptsegSamConfig(SamConfig):
    """`SamConfig` with its own `model_type`, used to register hf_promptseg's SAM classes with the Auto classes.

    Example:
        >>> from hf_promptseg.models.sam import HfPromptsegSamConfig
        >>> config = HfPromptsegSamConfig()
        >>> config.model_type
        'hf_promptseg_sam'
    """

    model_type = "hf_promptseg_sam"


__all__ = ["HfPromptsegSamConfig"]
