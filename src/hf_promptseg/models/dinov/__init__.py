"""DINOv (visual in-context prompting) as a transformers-style family."""

from hf_promptseg.models.dinov.configuration_dinov import DinovConfig, swin_backbone_config
from hf_promptseg.models.dinov.convert_dinov_checkpoint import convert_dinov_checkpoint
from hf_promptseg.models.dinov.image_processing_dinov import DinovImageProcessor
from hf_promptseg.models.dinov.modeling_dinov import (
    DinovForVisualPromptSegmentation,
    DinovModel,
    DinovPreTrainedModel,
    DinovSegmentationOutput,
)
from hf_promptseg.models.dinov.processing_dinov import DinovProcessor, rasterize_prompts
from hf_promptseg.models.dinov.prompt_bank import DinovPromptBank

__all__ = [
    "DinovConfig",
    "DinovForVisualPromptSegmentation",
    "DinovImageProcessor",
    "DinovModel",
    "DinovPreTrainedModel",
    "DinovProcessor",
    "DinovPromptBank",
    "DinovSegmentationOutput",
    "convert_dinov_checkpoint",
    "rasterize_prompts",
    "swin_backbone_config",
]
