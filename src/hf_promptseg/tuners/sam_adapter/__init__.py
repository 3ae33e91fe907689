"""SAM-Adapter as a PEFT method (SAM / SAM-HQ ViT and SAM2 Hiera encoders), registered with PEFT at import."""

from hf_promptseg.tuners.sam_adapter.config import SamAdapterConfig, SamPeftType
from hf_promptseg.tuners.sam_adapter.layer import PromptAdapterLayer, SamAdapterLayer, highpass_magnitude
from hf_promptseg.tuners.sam_adapter.layer_hiera import Sam2HieraAdapterLayer
from hf_promptseg.tuners.sam_adapter.model import SamAdapterModel


def register_sam_adapter() -> None:
    """Make PEFT (and transformers' `load_adapter`) resolve `peft_type: "SAM_ADAPTER"`.

    `peft.register_peft_method` only accepts members of PEFT's closed `PeftType` enum, so our type object (a
    str-Enum member, which hashes and compares equal to its JSON string) is written into PEFT's three mapping
    dicts directly. Tested against the pinned PEFT range by `test_peft_registry_shape_we_rely_on` in
    `tests/tuners/sam_adapter/test_sam_adapter_peft.py`.
    """
    from peft import mapping

    peft_type = SamPeftType.SAM_ADAPTER
    mapping.PEFT_TYPE_TO_CONFIG_MAPPING[peft_type] = SamAdapterConfig
    mapping.PEFT_TYPE_TO_TUNER_MAPPING[peft_type] = SamAdapterModel
    mapping.PEFT_TYPE_TO_PREFIX_MAPPING[peft_type] = SamAdapterModel.prefix


__all__ = [
    "PromptAdapterLayer",
    "Sam2HieraAdapterLayer",
    "SamAdapterConfig",
    "SamAdapterLayer",
    "SamAdapterModel",
    "SamPeftType",
    "highpass_magnitude",
    "register_sam_adapter",
]
