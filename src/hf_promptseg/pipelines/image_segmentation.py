"""`pipeline("image-segmentation")` for SAM-Adapter models: the prompt-free foreground mask.

transformers' image-segmentation pipeline does not know SAM. This subclass serves SAM models (a SamModel with a
loaded adapter, a PeftModel, or an adapter directory/repo whose `base_model_name_or_path` points at its SAM) and
hands every other model to the stock implementation unchanged.

Example:

```python
import hf_promptseg
from transformers import pipeline

segmenter = pipeline("image-segmentation", model="cod-adapter/adapter")
result = segmenter("animal.jpg")  # [{"score": 0.93, "label": "foreground", "mask": <PIL.Image L>}]
```
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoModelForImageSegmentation, AutoModelForMaskGeneration, AutoModelForSemanticSegmentation
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.image_segmentation import ImageSegmentationPipeline
from transformers.utils import logging

from hf_promptseg.models.sam_adapter.predict import predict_masks, reference_image_processor


def _is_sam(model: Any) -> bool:
    config = getattr(model, "config", None)
    return config is not None and hasattr(config, "vision_config") and hasattr(config, "mask_decoder_config")


class SamAdapterImageSegmentationPipeline(ImageSegmentationPipeline):
    """Foreground segmentation without prompts for SAM(-Adapter) models; other models take the stock path.

    Output per image: `[{"score": mean foreground probability inside the mask, "label": "foreground",
    "mask": PIL "L" image (0/255) at the original size}]`, the format of transformers' image-segmentation pipeline.
    Call options: `threshold` (probability above which a pixel is foreground, default 0.5).
    """

    def __init__(self, *args, **kwargs):
        model = kwargs.get("model", args[0] if args else None)
        if _is_sam(model):
            # A SAM directory ships SAM's resize + pad processor (for prompts); prompt-free SAM-Adapter uses the
            # reference's plain square resize unless a square-mode processor is given explicitly.
            if getattr(kwargs.get("image_processor"), "resize_mode", None) != "square":
                kwargs["image_processor"] = reference_image_processor(model.config.vision_config.image_size)
            super(ImageSegmentationPipeline, self).__init__(*args, **kwargs)
        else:
            super().__init__(*args, **kwargs)

    def _sanitize_parameters(self, **kwargs):
        if not _is_sam(self.model):
            return super()._sanitize_parameters(**kwargs)
        postprocess = {}
        if "threshold" in kwargs:
            threshold = kwargs["threshold"]
            if not 0.0 <= float(threshold) <= 1.0:
                raise ValueError(f"`threshold` must be in [0, 1], got {threshold}")
            postprocess["threshold"] = float(threshold)
        preprocess = {"timeout": kwargs["timeout"]} if "timeout" in kwargs else {}
        return preprocess, {}, postprocess

    def preprocess(self, image, subtask=None, timeout=None):
        if not _is_sam(self.model):
            return super().preprocess(image, subtask=subtask, timeout=timeout)
        from transformers.image_utils import load_image

        return {"image": load_image(image, timeout=timeout)}

    def _forward(self, model_inputs):
        if not _is_sam(self.model):
            return super()._forward(model_inputs)
        probability = predict_masks(self.model, [model_inputs["image"]], self.image_processor)[0]
        return {"probability": torch.from_numpy(probability)}

    def postprocess(self, model_outputs, threshold: float = 0.5, **kwargs):
        if not _is_sam(self.model):
            return super().postprocess(model_outputs, threshold=threshold, **kwargs)
        probability = model_outputs["probability"].numpy()
        foreground = probability > threshold
        score = float(probability[foreground].mean()) if foreground.any() else 0.0
        mask = Image.fromarray(foreground.astype(np.uint8) * 255, mode="L")
        return [{"score": score, "label": "foreground", "mask": mask}]


def register_image_segmentation_pipeline() -> None:
    """Serve `pipeline("image-segmentation")` with the SAM-aware subclass (other models behave as before)."""
    pipelines_logger = logging.get_logger("transformers.pipelines.base")
    level = pipelines_logger.level
    pipelines_logger.setLevel(logging.ERROR)  # the "Overwriting pipeline" warning is expected here
    try:
        PIPELINE_REGISTRY.register_pipeline(
            "image-segmentation",
            pipeline_class=SamAdapterImageSegmentationPipeline,
            pt_model=(AutoModelForImageSegmentation, AutoModelForSemanticSegmentation, AutoModelForMaskGeneration),
            type="multimodal",
        )
    finally:
        pipelines_logger.setLevel(level)
