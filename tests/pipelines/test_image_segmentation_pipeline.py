"""`pipeline("image-segmentation")`: SAM models get the prompt-free pipeline, others transformers' own; and what a
trained model is fed at serving time is bit-identical to what it was fed in training."""

import torch
from accelerate.state import AcceleratorState
from PIL import Image
from transformers import pipeline
from transformers.pipelines.image_segmentation import ImageSegmentationPipeline

import hf_promptseg  # noqa: F401  (registers the SAM-aware pipeline)
from hf_promptseg.data.segmentation import load_segmentation_dataset
from hf_promptseg.models.sam.image_processing_sam import HfPromptsegSamImageProcessor
from hf_promptseg.pipelines.image_segmentation import (
    HfPromptsegImageSegmentationPipeline,
    PromptFreeSamSegmentationPipeline,
)
from hf_promptseg.training import DataArguments, ModelArguments, SegmentationTrainer, SegmentationTrainingArguments


def _capture_vision_inputs(model, captured):
    def hook(module, args, kwargs):
        captured.append((args[0] if args else kwargs["pixel_values"]).detach().clone())

    encoder = next(module for name, module in model.named_modules() if name.endswith("vision_encoder"))
    return encoder.register_forward_pre_hook(hook, with_kwargs=True)


def test_sam_models_get_the_prompt_free_pipeline_and_others_transformers_own():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    from hf_promptseg.models.sam_adapter.predict import reference_image_processor
    from tests.testing_utils import random_sam

    sam = random_sam()
    processor = reference_image_processor(sam.config.vision_config.image_size)
    served = pipeline("image-segmentation", model=sam, image_processor=processor)
    assert type(served) is PromptFreeSamSegmentationPipeline
    segformer = SegformerForSemanticSegmentation(
        SegformerConfig(num_encoder_blocks=1, depths=[1], sr_ratios=[1], hidden_sizes=[16], num_attention_heads=[1],
                        patch_sizes=[7], strides=[4], decoder_hidden_size=16, num_labels=2)
    )  # fmt: skip
    other = pipeline(
        "image-segmentation",
        model=segformer,
        image_processor=SegformerImageProcessor(size={"height": 32, "width": 32}),
    )
    assert isinstance(other, ImageSegmentationPipeline) and isinstance(other, HfPromptsegImageSegmentationPipeline)
    assert not isinstance(other, PromptFreeSamSegmentationPipeline)
    assert {entry["label"] for entry in other(Image.new("RGB", (40, 30)))} <= {"LABEL_0", "LABEL_1"}


def test_served_pixel_values_equal_the_trained_ones(tmp_path):
    from hf_promptseg.training.modeling import load_base_model

    base = tmp_path / "base"
    load_base_model("random:tiny").save_pretrained(base)
    HfPromptsegSamImageProcessor().save_pretrained(base)  # a SAM directory's prompt processor (resize + pad)
    AcceleratorState._reset_state(reset_partial_state=True)
    trainer = SegmentationTrainer(
        ModelArguments(base_model=str(base), method="sam_adapter", adapter_scale_factor=8),
        DataArguments(train_data="synthetic:1:0:96", validation_data="synthetic:1:0:96", augment=False),
        SegmentationTrainingArguments(
            output_dir=str(tmp_path / "run"), num_train_epochs=1, max_steps=1, per_device_train_batch_size=1,
            per_device_eval_batch_size=1, learning_rate=1e-3,
        ),
    )  # fmt: skip
    trained = []
    handle = _capture_vision_inputs(trainer.accelerator.unwrap_model(trainer.model), trained)
    trainer.train()
    handle.remove()
    AcceleratorState._reset_state(reset_partial_state=True)

    image = load_segmentation_dataset("synthetic:1:0:96")[0]["image"]
    segmenter = pipeline("image-segmentation", model=str(tmp_path / "run" / "best"))
    assert type(segmenter) is PromptFreeSamSegmentationPipeline
    served = []
    handle = _capture_vision_inputs(segmenter.model, served)
    result = segmenter(image)
    handle.remove()
    assert result[0]["mask"].size == image.size
    assert trained and served
    assert torch.equal(trained[0], served[0])


def test_encoder_backend_gives_the_default_probabilities():
    import numpy as np
    import pytest

    from hf_promptseg.models.sam_adapter.predict import predict_masks, reference_image_processor
    from tests.testing_utils import random_sam

    sam = random_sam()
    processor = reference_image_processor(sam.config.vision_config.image_size)
    image = Image.fromarray(np.random.RandomState(0).randint(0, 255, (48, 64, 3), dtype=np.uint8))
    default = predict_masks(sam, [image], processor)[0]
    for backend in ("eager", "sdpa"):
        np.testing.assert_allclose(predict_masks(sam, [image], processor, encoder_backend=backend)[0], default,
                                   atol=1e-5)  # fmt: skip
    served = pipeline("image-segmentation", model=sam, image_processor=processor)
    assert served(image, encoder_backend="eager", threshold=0.5)[0]["mask"].size == (64, 48)
    with pytest.raises(ValueError, match="`encoder_backend` must be one of"):
        served(image, encoder_backend="cuda")
