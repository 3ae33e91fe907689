"""`pipeline("image-segmentation")` that also serves SAM models without prompts (SAM-Adapter and friends).

transformers' image-segmentation pipeline does not know SAM. `HfPromptsegImageSegmentationPipeline` is registered
for the task in its place and decides in one spot, `__new__`, which pipeline serves the model:
`PromptFreeSamSegmentationPipeline` for SAM models (a SamModel with a loaded adapter, a PeftModel, or an adapter
directory/repo whose `base_model_name_or_path` points at its SAM), transformers' own class for every other model.

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
from transformers import (
    AutoModelForImageSegmentation,
    AutoModelForMaskGeneration,
    AutoModelForSemanticSegmentation,
    Pipeline,
)
from transformers.image_utils import load_image
from transformers.pipelines.image_segmentation import ImageSegmentationPipeline

from hf_promptseg.models.sam.encoder_backends import check_encoder_backend
from hf_promptseg.models.sam.image_processing_sam import validate_images
from hf_promptseg.models.sam.prompt_free import prompt_free_input_size
from hf_promptseg.models.sam2.processing_sam2 import prompt_free_sam2_image_processor
from hf_promptseg.models.sam2.registration import SAM2_MODEL_TYPES
from hf_promptseg.models.sam_adapter.predict import predict_masks, prompt_free_image_processor
from hf_promptseg.pipelines import register_task_pipeline
from hf_promptseg.utils.validation import check_known_arguments, check_threshold, to_pil_image


def is_sam_model(model: Any) -> bool:
    """SAM-family models (directly or under PEFT) carry a vision encoder and a mask decoder config."""
    config = getattr(model, "config", None)
    return config is not None and hasattr(config, "vision_config") and hasattr(config, "mask_decoder_config")


class PromptFreeSamSegmentationPipeline(Pipeline):
    """Foreground segmentation without prompts for SAM(-Adapter) models.

    Output per image: `[{"score": mean foreground probability inside the mask, "label": "foreground",
    "mask": PIL "L" image (0/255) at the original size}]`, the format of transformers' image-segmentation pipeline.
    Call options: `threshold` (probability above which a pixel is foreground, default 0.5), `encoder_backend`
    (how the ViT runs, `encoder_backends.ENCODER_BACKENDS`, default "default").

    Preprocessing is the one the model trained with (`prompt_free_image_processor`): a square-mode processor passed
    as `image_processor`, else the reference's square resize at the model's input size (which is also what
    hf_promptseg's trainer saves beside the model). For an adapter directory transformers hands over the *base*
    model's processor, SAM's resize + pad for prompts, which is therefore not used here.
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        model = kwargs.get("model", args[0] if args else None)
        if getattr(model.config, "model_type", None) in SAM2_MODEL_TYPES:
            kwargs["image_processor"] = prompt_free_sam2_image_processor(model.config, kwargs.get("image_processor"))
        else:
            kwargs["image_processor"] = prompt_free_image_processor(
                prompt_free_input_size(model), kwargs.get("image_processor")
            )
        super().__init__(*args, **kwargs)

    def _sanitize_parameters(self, threshold=None, timeout=None, encoder_backend=None, **kwargs):
        check_known_arguments(kwargs, ("threshold", "timeout", "encoder_backend"), "prompt-free image segmentation")
        postprocess, forward = {}, {}
        if threshold is not None:
            check_threshold(threshold, "threshold", 0.0, 1.0)
            postprocess["threshold"] = float(threshold)
        if encoder_backend is not None:
            forward["encoder_backend"] = check_encoder_backend(encoder_backend)
        preprocess = {"timeout": timeout} if timeout is not None else {}
        return preprocess, forward, postprocess

    def preprocess(self, image, timeout=None):
        if not isinstance(image, str):
            validate_images(image, argument="image")
            image = to_pil_image(image, argument="image")
        return {"image": load_image(image, timeout=timeout)}

    def _forward(self, model_inputs, encoder_backend="default"):
        probability = predict_masks(
            self.model, [model_inputs["image"]], self.image_processor, encoder_backend=encoder_backend
        )[0]
        return {"probability": torch.from_numpy(probability)}

    def postprocess(self, model_outputs, threshold: float = 0.5):
        probability = model_outputs["probability"].numpy()
        foreground = probability > threshold
        score = float(probability[foreground].mean()) if foreground.any() else 0.0
        mask = Image.fromarray(foreground.astype(np.uint8) * 255, mode="L")
        return [{"score": score, "label": "foreground", "mask": mask}]


class HfPromptsegImageSegmentationPipeline(ImageSegmentationPipeline):
    """transformers' image-segmentation pipeline, except that SAM models get `PromptFreeSamSegmentationPipeline`."""

    def __new__(cls, *args, **kwargs):
        model = kwargs.get("model", args[0] if args else None)
        if cls is HfPromptsegImageSegmentationPipeline and is_sam_model(model):
            return PromptFreeSamSegmentationPipeline(*args, **kwargs)
        return super().__new__(cls)


def register_image_segmentation_pipeline() -> None:
    """Serve `pipeline("image-segmentation")` with the SAM-aware class (other models behave as before)."""
    register_task_pipeline(
        "image-segmentation",
        HfPromptsegImageSegmentationPipeline,
        (AutoModelForImageSegmentation, AutoModelForSemanticSegmentation, AutoModelForMaskGeneration),
        type="multimodal",
    )


__all__ = [
    "HfPromptsegImageSegmentationPipeline",
    "PromptFreeSamSegmentationPipeline",
    "is_sam_model",
    "register_image_segmentation_pipeline",
]
