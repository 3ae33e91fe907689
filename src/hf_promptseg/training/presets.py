"""Moved to `hf_promptseg.models.sam.configuration_sam` (SAM presets live with SAM's configuration)."""

from hf_promptseg.utils.deprecation import moved_names

__getattr__ = moved_names(__name__, {"preset_sam_config": "hf_promptseg.models.sam.configuration_sam"})
