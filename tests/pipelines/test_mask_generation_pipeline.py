import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline
from transformers.models.sam.image_processing_pil_sam import _rle_to_mask

from hf_promptseg.models.sam import convert_sam_checkpoint
from hf_promptseg.pipelines.mask_generation import HfPromptsegMaskGenerationPipeline
from tests.conftest import fixture_dir

FAST = {
    "points_per_crop": 6,
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "crops_nms_thresh": 1.0,
}  # keep every candidate


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipe") / "sam"
    convert_sam_checkpoint(fixture_dir("sam") / "reference_state_dict.safetensors", out)
    return pipeline("mask-generation", model=str(out), dtype=torch.float32)


@pytest.fixture(scope="module")
def images():
    rng = np.random.RandomState(0)
    return [
        Image.fromarray(rng.randint(0, 255, (90, 120, 3), dtype=np.uint8)),
        Image.fromarray(rng.randint(0, 255, (120, 70, 3), dtype=np.uint8)),
    ]


def test_pipeline_runs_without_torchvision(generator, images):
    assert isinstance(generator, HfPromptsegMaskGenerationPipeline)
    out = generator(images[0], points_per_batch=16, output_rle_mask=True, output_bboxes_mask=True, **FAST)
    assert set(out) == {"masks", "scores", "rle_mask", "bounding_boxes"}
    assert len(out["masks"]) >= 2 and len(out["masks"]) == len(out["scores"]) == len(out["rle_mask"])
    assert out["masks"][0].shape == (90, 120)
    assert out["bounding_boxes"].shape == (len(out["masks"]), 4)
    for mask, rle in zip(out["masks"], out["rle_mask"]):
        assert np.array_equal(_rle_to_mask(rle), mask)
    assert torch.all(out["scores"][:-1] >= out["scores"][1:])


def _same_masks(first, second) -> bool:
    """Equal up to logits within float rounding of the threshold: at most 0.1 % of a mask's pixels may flip."""
    return len(first) == len(second) and all(np.mean(a != b) <= 1e-3 for a, b in zip(first, second))


def test_points_per_batch_does_not_change_results(generator, images):
    one = generator(images[0], points_per_batch=36, **FAST)
    many = generator(images[0], points_per_batch=5, **FAST)
    torch.testing.assert_close(one["scores"], many["scores"], atol=1e-5, rtol=0)
    assert _same_masks(one["masks"], many["masks"])


def test_batch_size_above_one_matches_single_runs(generator, images):
    singles = [generator(image, points_per_batch=8, **FAST) for image in images]
    batched = generator(images, points_per_batch=8, batch_size=3, **FAST)
    assert len(batched) == 2
    for single, together in zip(singles, batched):
        torch.testing.assert_close(single["scores"], together["scores"], atol=1e-5, rtol=0)
        assert len(single["masks"]) == len(together["masks"])
        assert _same_masks(single["masks"], together["masks"])


def test_bad_images_are_refused(generator):
    with pytest.raises(ValueError, match="no channel axis of size 1 or 3"):
        generator(np.zeros((20, 30, 4, 2), dtype=np.uint8)[..., 0, :].repeat(3, axis=-1)[..., :5])
    with pytest.raises(TypeError, match="dtype float16|dtype int64"):
        generator(np.zeros((20, 30, 3), dtype=np.int64))


def test_sam_hq_runs_single_and_batched(tmp_path):
    from hf_promptseg.models.sam.convert_sam_checkpoint import build_sam_processor
    from tests.testing_utils import random_sam_hq

    model = random_sam_hq(std=None)
    model.save_pretrained(tmp_path)
    build_sam_processor(model.config).image_processor.save_pretrained(tmp_path)
    hq = pipeline("mask-generation", model=str(tmp_path), dtype=torch.float32)
    rng = np.random.RandomState(0)
    images = [Image.fromarray(rng.randint(0, 255, (64, 80, 3), dtype=np.uint8)) for _ in range(3)]
    options = {"points_per_batch": 8, "points_per_crop": 4, "pred_iou_thresh": 0, "stability_score_thresh": 0}
    single = [hq(image, **options) for image in images]
    batched = hq(images, batch_size=2, **options)
    for one, many in zip(single, batched):
        assert len(one["masks"]) == len(many["masks"]) >= 1
        assert np.allclose(np.asarray(one["scores"]), np.asarray(many["scores"]), atol=1e-5)


FILTERED = {
    "points_per_crop": 6,
    "pred_iou_thresh": 1.0,
    "stability_score_thresh": 0.5,
    "stability_score_offset": 0.01,
}


def _assert_same_output(stock, fast):
    assert len(stock["masks"]) == len(fast["masks"]) >= 1
    torch.testing.assert_close(fast["scores"], stock["scores"], atol=1e-5, rtol=0)
    assert _same_masks(stock["masks"], fast["masks"])
    assert set(fast) == set(stock)
    if "rle_mask" in stock:
        assert _same_masks([_rle_to_mask(rle) for rle in fast["rle_mask"]], stock["masks"])
    if "bounding_boxes" in stock:
        assert (fast["bounding_boxes"] - stock["bounding_boxes"]).abs().max() <= 1


@pytest.fixture(scope="module")
def random_generator(tmp_path_factory):
    """A random SAM whose masks are not all alike, saved by hf_promptseg (so the fast path is the default)."""
    from hf_promptseg.models.sam.convert_sam_checkpoint import build_sam_processor
    from tests.testing_utils import random_sam

    out = tmp_path_factory.mktemp("random-sam")
    model = random_sam(std=0.2)
    model.save_pretrained(out)
    build_sam_processor(model.config).save_pretrained(out)
    return pipeline("mask-generation", model=str(out), dtype=torch.float32)


@pytest.mark.parametrize(
    "options",
    [
        {**FILTERED, "output_rle_mask": True, "output_bboxes_mask": True},
        {**FAST, "output_rle_mask": True},
        {**FILTERED, "crops_n_layers": 1, "crops_nms_thresh": 0.9},
    ],
    ids=["filtered", "unfiltered", "crops"],
)
def test_fast_path_gives_the_stock_masks(random_generator, images, options):
    assert random_generator._fast_by_default()
    stock = random_generator(images[0], fast_decoder=False, **options)
    fast = random_generator(images[0], **options)
    _assert_same_output(stock, fast)


def test_fast_path_is_opt_in_for_stock_processors(random_generator, images):
    """A stock transformers image processor keeps the stock path unless `fast_decoder=True` is passed."""
    from transformers import SamImageProcessorPil

    stock_processor = SamImageProcessorPil(**random_generator.image_processor.to_dict())
    stock_processor.post_process_for_mask_generation = (
        random_generator.image_processor.post_process_for_mask_generation
    )
    generator = HfPromptsegMaskGenerationPipeline(model=random_generator.model, image_processor=stock_processor)
    assert not generator._fast_by_default()
    _assert_same_output(generator(images[1], **FILTERED), generator(images[1], fast_decoder=True, **FILTERED))


def test_fast_path_with_a_sam_adapter(random_generator, images, tmp_path):
    from peft import get_peft_model

    from hf_promptseg.tuners.sam_adapter import SamAdapterConfig
    from tests.testing_utils import random_sam

    adapted = get_peft_model(random_sam(std=0.2), SamAdapterConfig())
    with torch.no_grad():
        for param in adapted.parameters():
            if param.requires_grad:
                param.normal_(0, 0.2)
    adapted.save_pretrained(tmp_path)
    model = random_sam(std=0.2)
    model.load_adapter(str(tmp_path))
    generator = HfPromptsegMaskGenerationPipeline(model=model, image_processor=random_generator.image_processor)
    stock = generator(images[0], fast_decoder=False, **FAST)
    _assert_same_output(stock, generator(images[0], **FAST))
    plain = random_generator(images[0], **FAST)
    assert len(plain["scores"]) == len(stock["scores"])
    assert not torch.allclose(plain["scores"], stock["scores"], atol=1e-3)  # the adapter took part


def test_fast_path_with_sam_hq(tmp_path, images):
    from hf_promptseg.models.sam.convert_sam_checkpoint import build_sam_processor
    from tests.testing_utils import random_sam_hq

    model = random_sam_hq(std=0.2)
    model.save_pretrained(tmp_path)
    build_sam_processor(model.config).image_processor.save_pretrained(tmp_path)
    hq = pipeline("mask-generation", model=str(tmp_path), dtype=torch.float32)
    options = {**FILTERED, "output_rle_mask": True, "output_bboxes_mask": True}
    _assert_same_output(hq(images[0], fast_decoder=False, **options), hq(images[0], **options))


def test_fast_path_arguments_are_checked(random_generator, images):
    with pytest.raises(TypeError, match="fast_decoder"):
        random_generator(images[0], fast_decoder="yes")
    with pytest.raises(ValueError, match="max_hole_area"):
        random_generator(images[0], max_hole_area=10.0, **FAST)


def test_stability_scores_of_the_kept_masks(generator, images):
    out = generator(images[0], points_per_batch=36, output_stability_scores=True, **{**FAST, "crops_nms_thresh": 0.7})
    assert out["stability_scores"].shape == out["scores"].shape and len(out["masks"]) > 0
    assert bool(((out["stability_scores"] >= 0) & (out["stability_scores"] <= 1)).all())
    strict = generator(
        images[0], points_per_batch=36, output_stability_scores=True, **{**FAST, "stability_score_thresh": 0.5}
    )
    assert bool((strict["stability_scores"] > 0.5).all())
    with pytest.raises(ValueError, match="needs `fast_decoder=True`"):
        generator(images[0], output_stability_scores=True, fast_decoder=False, **FAST)


def test_encoder_backend_gives_the_default_masks(random_generator, images):
    """`encoder_backend=` runs the ViT another way (eager / SDPA attention, ONNX Runtime when installed); the masks
    are the default's, and each backend's embedding is computed once per image (the shared cache)."""
    from hf_promptseg.models.sam.embedding_cache import EmbeddingCache

    cache = EmbeddingCache()
    default = random_generator(images[0], **FAST, output_rle_mask=True, embedding_cache=False)
    for backend in ("eager", "sdpa"):
        out = random_generator(images[0], **FAST, output_rle_mask=True, encoder_backend=backend, embedding_cache=cache)
        torch.testing.assert_close(out["scores"], default["scores"], atol=1e-4, rtol=0)
        assert _same_masks(out["masks"], default["masks"])
    assert cache.misses == 1 and cache.hits == 1  # exact backends share the entry
    random_generator(images[0], **FAST, encoder_backend="bf16", embedding_cache=cache)
    assert cache.misses == 2  # bf16 is not exact: its own entry


def test_encoder_backend_is_checked(random_generator, images):
    with pytest.raises(ValueError, match=r"`encoder_backend` must be one of \('default'.*got 'fastest'"):
        random_generator(images[0], **FAST, encoder_backend="fastest")
