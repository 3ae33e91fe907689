"""PEFT tuners shipped by hf_promptseg."""

from hf_promptseg.tuners.sam_adapter import SamAdapterConfig, SamAdapterModel

__all__ = ["SamAdapterConfig", "SamAdapterModel"]
