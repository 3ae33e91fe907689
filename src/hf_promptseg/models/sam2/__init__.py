from hf_promptseg.models.sam2.configuration_sam2 import HfPromptsegSam2Config
from hf_promptseg.models.sam2.fast_mask_decoder import FastSam2MaskDecoder
from hf_promptseg.models.sam2.image_processing_sam2 import (
    HfPromptsegSam2ImageProcessor,
    StockSam2ImageProcessor,
    StockSam3TrackerImageProcessor,
)
from hf_promptseg.models.sam2.processing_sam2 import HfPromptsegSam2Processor, build_sam2_processor
from hf_promptseg.models.sam2.registration import SAM2_MODEL_TYPES, register_sam2_processors

__all__ = [
    "SAM2_MODEL_TYPES",
    "FastSam2MaskDecoder",
    "StockSam2ImageProcessor",
    "StockSam3TrackerImageProcessor",
    "build_sam2_processor",
    "HfPromptsegSam2Config",
    "HfPromptsegSam2ImageProcessor",
    "HfPromptsegSam2Processor",
    "register_sam2_processors",
]
