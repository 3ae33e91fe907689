"""`pipeline("mask-generation")` on SAM2 checkpoints without torchvision: stock and hf_promptseg-saved directories."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoProcessor, Sam2Processor, pipeline

import hf_promptseg  # noqa: F401  (registers the processors and the pipeline)
from hf_promptseg.models.sam2 import (
    HfPromptsegSam2ImageProcessor,
    HfPromptsegSam2Processor,
    StockSam2ImageProcessor,
    build_sam2_processor,
)
from tests.testing_utils import random_sam2

STOCK_PROCESSOR = Path(__file__).resolve().parents[1] / "fixtures" / "sam2" / "stock_sam2_processor"
# a random model's IoU head puts every candidate near 0.3-0.7: keep about half, and let NMS keep every survivor
FILTERS = {"pred_iou_thresh": 0.5, "stability_score_thresh": 0.0, "crops_nms_thresh": 1.0}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sam2")
    model = random_sam2()
    ours, stock = root / "ours", root / "stock"
    model.save_pretrained(ours)
    build_sam2_processor(model.config).save_pretrained(ours)
    model.save_pretrained(stock)
    shutil.copy(STOCK_PROCESSOR / "processor_config.json", stock)  # written by transformers' own Sam2Processor
    return ours, stock


@pytest.fixture(scope="module")
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 72, 3), dtype=np.uint8))


def _masks(out):
    return np.stack([np.asarray(mask) for mask in out["masks"]]) if out["masks"] else np.zeros((0,))


def test_auto_classes_resolve_without_torchvision(model_dirs, tmp_path):
    ours, stock = model_dirs
    assert type(AutoImageProcessor.from_pretrained(ours)) is HfPromptsegSam2ImageProcessor
    assert type(AutoProcessor.from_pretrained(ours)) is HfPromptsegSam2Processor
    stock_processor = AutoProcessor.from_pretrained(stock)
    assert type(stock_processor) is Sam2Processor
    assert type(stock_processor.image_processor) is StockSam2ImageProcessor
    stock_processor.save_pretrained(tmp_path)  # a re-saved stock checkpoint still names transformers' class
    assert '"image_processor_type": "Sam2ImageProcessor"' in (tmp_path / "processor_config.json").read_text()


def test_fast_path_is_the_default_only_for_directories_we_saved(model_dirs):
    ours, stock = model_dirs
    assert pipeline("mask-generation", model=str(ours))._fast_by_default()
    assert not pipeline("mask-generation", model=str(stock))._fast_by_default()


def test_fast_and_stock_amg_agree(model_dirs, image):
    ours, _ = model_dirs
    generator = pipeline("mask-generation", model=str(ours))
    kwargs = {"points_per_crop": 8, "points_per_batch": 24, "output_bboxes_mask": True, **FILTERS}
    stock = generator(image, fast_decoder=False, **kwargs)
    fast = generator(image, **kwargs)
    assert 5 <= len(stock["masks"]) < 3 * 64  # the IoU filter dropped some candidates, kept many
    np.testing.assert_array_equal(_masks(fast), _masks(stock))
    torch.testing.assert_close(fast["scores"], stock["scores"], atol=1e-5, rtol=0)
    assert torch.equal(fast["bounding_boxes"], stock["bounding_boxes"])
    batched = generator(image, batch_size=2, **kwargs)
    np.testing.assert_array_equal(_masks(batched), _masks(stock))


def test_crop_layers_agree(model_dirs, image):
    _, stock_dir = model_dirs
    generator = pipeline("mask-generation", model=str(stock_dir))
    kwargs = {"points_per_crop": 4, "crops_n_layers": 1, "points_per_batch": 16, **FILTERS}
    stock = generator(image, **kwargs)
    fast = generator(image, fast_decoder=True, **kwargs)
    assert len(stock["masks"]) > 0
    np.testing.assert_array_equal(_masks(fast), _masks(stock))
