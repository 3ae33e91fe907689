"""Auto-class registration of hf_promptseg's SAM2 config, image processor and processor (idempotent)."""

from __future__ import annotations

SAM2_MODEL_TYPES = ("sam2", "sam3_tracker", "edgetam", "hf_promptseg_sam2")


def register_sam2_processors() -> None:
    """Make `AutoConfig`, `AutoImageProcessor` and `AutoProcessor` resolve hf_promptseg's SAM2 classes by name.

    - Directories hf_promptseg saves name `HfPromptsegSam2ImageProcessor` / `HfPromptsegSam2Processor`; those are
      registered on `HfPromptsegSam2Config` (its own `model_type`) under both backend keys.
    - Stock SAM2, EdgeTAM and SAM3-tracker checkpoints name transformers' `Sam2ImageProcessor` /
      `Sam3ImageProcessor`, which need torchvision. Their configs get a `"pil"` backend entry only
      (`StockSam2ImageProcessor` / `StockSam3TrackerImageProcessor`): transformers takes it when torchvision cannot
      be imported and keeps its own class wherever torchvision is present.

    Example:
        >>> from transformers import AutoImageProcessor
        >>> from hf_promptseg.models.sam2 import register_sam2_processors
        >>> register_sam2_processors()
        >>> AutoImageProcessor.for_model("hf_promptseg_sam2").__class__.__name__  # doctest: +SKIP
        'HfPromptsegSam2ImageProcessor'
    """
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoProcessor,
        EdgeTamConfig,
        Sam2Config,
        Sam3TrackerConfig,
    )
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

    from hf_promptseg.models.sam2.configuration_sam2 import HfPromptsegSam2Config
    from hf_promptseg.models.sam2.image_processing_sam2 import (
        HfPromptsegSam2ImageProcessor,
        StockSam2ImageProcessor,
        StockSam3TrackerImageProcessor,
    )
    from hf_promptseg.models.sam2.processing_sam2 import HfPromptsegSam2Processor

    AutoConfig.register(HfPromptsegSam2Config.model_type, HfPromptsegSam2Config, exist_ok=True)
    AutoImageProcessor.register(
        HfPromptsegSam2Config,
        image_processor_classes={"torchvision": HfPromptsegSam2ImageProcessor, "pil": HfPromptsegSam2ImageProcessor},
        exist_ok=True,
    )
    AutoProcessor.register(HfPromptsegSam2Config, HfPromptsegSam2Processor, exist_ok=True)
    # `AutoImageProcessor.register` would resolve the existing torchvision entry to its import placeholder and
    # refuse it, so the mapping is written directly, keeping transformers' entry as the class name it resolves lazily
    for config_class, fallback in (
        (Sam2Config, StockSam2ImageProcessor),
        (EdgeTamConfig, StockSam2ImageProcessor),
        (Sam3TrackerConfig, StockSam3TrackerImageProcessor),
    ):
        IMAGE_PROCESSOR_MAPPING.register(
            config_class, {"torchvision": fallback.stock_name, "pil": fallback}, exist_ok=True
        )


__all__ = ["SAM2_MODEL_TYPES", "register_sam2_processors"]
