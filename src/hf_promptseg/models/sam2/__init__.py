from hf_promptseg.models.sam2.configuration_sam2 import HfPromptsegSam2Config
from hf_promptseg.models.sam2.image_processing_sam2 import HfPromptsegSam2ImageProcessor
from hf_promptseg.models.sam2.processing_sam2 import HfPromptsegSam2Processor
from hf_promptseg.models.sam2.registration import register_sam2_processors

__all__ = [
    "HfPromptsegSam2Config",
    "HfPromptsegSam2ImageProcessor",
    "HfPromptsegSam2Processor",
    "register_sam2_processors",
]
