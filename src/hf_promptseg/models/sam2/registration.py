"""Auto-class registration of hf_promptseg's SAM2 config, image processor and processor (idempotent)."""

from __future__ import annotations


def register_sam2_processors() -> None:
    """Make `AutoConfig`, `AutoImageProcessor` and `AutoProcessor` resolve hf_promptseg's SAM2 classes by name.

    Registered on `HfPromptsegSam2Config` (its own `model_type`), never on transformers' `Sam2Config`. The image
    processor is filed under both backend keys, so it is chosen with or without torchvision installed.

    Example:
        >>> from transformers import AutoImageProcessor
        >>> from hf_promptseg.models.sam2 import register_sam2_processors
        >>> register_sam2_processors()
        >>> AutoImageProcessor.for_model("hf_promptseg_sam2").__class__.__name__  # doctest: +SKIP
        'HfPromptsegSam2ImageProcessor'
    """
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor

    from hf_promptseg.models.sam2.configuration_sam2 import HfPromptsegSam2Config
    from hf_promptseg.models.sam2.image_processing_sam2 import HfPromptsegSam2ImageProcessor
    from hf_promptseg.models.sam2.processing_sam2 import HfPromptsegSam2Processor

    AutoConfig.register(HfPromptsegSam2Config.model_type, HfPromptsegSam2Config, exist_ok=True)
    AutoImageProcessor.register(
        HfPromptsegSam2Config,
        image_processor_classes={"torchvision": HfPromptsegSam2ImageProcessor, "pil": HfPromptsegSam2ImageProcessor},
        exist_ok=True,
    )
    AutoProcessor.register(HfPromptsegSam2Config, HfPromptsegSam2Processor, exist_ok=True)


__all__ = ["register_sam2_processors"]
