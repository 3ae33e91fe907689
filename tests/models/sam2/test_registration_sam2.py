"""Auto classes for SAM2-generation checkpoints without torchvision; transformers' own entries are left in place."""

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoImageProcessor, AutoProcessor, EdgeTamConfig, Sam2Config, Sam3TrackerConfig
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

import hf_promptseg  # noqa: F401  (registration)
from hf_promptseg.models.sam2 import (
    HfPromptsegSam2ImageProcessor,
    StockSam2ImageProcessor,
    StockSam3TrackerImageProcessor,
    build_sam2_processor,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sam2"


def test_only_a_pil_fallback_is_added_to_transformers_entries():
    for config_class, fallback, stock in (
        (Sam2Config, StockSam2ImageProcessor, "Sam2ImageProcessor"),
        (EdgeTamConfig, StockSam2ImageProcessor, "Sam2ImageProcessor"),
        (Sam3TrackerConfig, StockSam3TrackerImageProcessor, "Sam3ImageProcessor"),
    ):
        assert IMAGE_PROCESSOR_MAPPING[config_class] == {"torchvision": stock, "pil": fallback}


def test_stock_sam3_tracker_processor_loads_with_sam3_normalisation():
    processor = AutoProcessor.from_pretrained(FIXTURES / "stock_sam3_tracker_processor")
    assert type(processor).__name__ == "Sam3TrackerProcessor"
    image_processor = processor.image_processor
    assert type(image_processor) is StockSam3TrackerImageProcessor
    assert list(image_processor.image_mean) == [0.5, 0.5, 0.5] and dict(image_processor.size) == {
        "height": 64,
        "width": 64,
    }
    pixel_values = image_processor(np.full((10, 20, 3), 255, np.uint8), return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 64, 64) and float(pixel_values.min()) == pytest.approx(1.0)
    assert StockSam3TrackerImageProcessor().size == {"height": 1008, "width": 1008}
    with pytest.raises(NotImplementedError, match="install torchvision"):
        image_processor.post_process_semantic_segmentation(None)


def test_build_sam2_processor_sizes_and_round_trip(tmp_path):
    config = Sam2Config(prompt_encoder_config={"image_size": 512})
    processor = build_sam2_processor(config)
    assert dict(processor.image_processor.size) == {"height": 512, "width": 512}
    assert dict(processor.image_processor.mask_size) == {"height": 128, "width": 128}
    processor.save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is HfPromptsegSam2ImageProcessor and dict(loaded.size) == {"height": 512, "width": 512}
    tracker = build_sam2_processor(Sam3TrackerConfig()).image_processor
    assert list(tracker.image_mean) == [0.5, 0.5, 0.5] and dict(tracker.size) == {"height": 1008, "width": 1008}
    with pytest.raises(TypeError, match="must be a SAM2 / SAM3-tracker / EdgeTAM config"):
        build_sam2_processor(object())
