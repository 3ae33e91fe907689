import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForMaskGeneration, pipeline

from hf_promptseg.assets import DEMO_SAM_MASK_GENERATION_THRESHOLDS, demo_sam_path
from hf_promptseg.data.scenes import make_scene
from hf_promptseg.models.sam.embedding_cache import (
    EmbeddingCache,
    image_key,
    load_embeddings,
    pixel_key,
    resolve_cache,
    save_embeddings,
)
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter

AMG = {"points_per_crop": 6, "points_per_batch": 36, **DEMO_SAM_MASK_GENERATION_THRESHOLDS}


def count_encoder_calls(model) -> list:
    calls = []
    model.vision_encoder.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_lru_is_bounded_in_megabytes_and_switchable():
    cache = EmbeddingCache(max_megabytes=1)
    quarter = lambda: torch.zeros(2**16)  # noqa: E731  (256 KiB)
    for key in "abcd":
        cache.get_or_compute(key, quarter)
    cache.get("a")  # most recently used now
    cache.get_or_compute("e", quarter)
    assert "a" in cache and "b" not in cache and cache.nbytes <= 2**20 and len(cache) == 4
    cache.get_or_compute("huge", lambda: torch.zeros(2**19))  # 2 MiB: returned, not kept
    assert "huge" not in cache
    off = EmbeddingCache(enabled=False)
    calls = []
    for _ in range(3):
        off.get_or_compute("k", lambda: calls.append(1) or torch.ones(1))
    assert len(calls) == 3 and len(off) == 0
    assert resolve_cache(False) is None and resolve_cache(off) is off
    with pytest.raises(ValueError, match="max_megabytes"):
        EmbeddingCache(max_megabytes=-1)
    with pytest.raises(TypeError, match="embedding_cache"):
        resolve_cache("yes")


@pytest.fixture(scope="module")
def generator():
    return pipeline("mask-generation", model=demo_sam_path(), dtype=torch.float32)


def test_threshold_sweep_costs_one_encoder_pass(generator):
    image = Image.fromarray(make_scene(3, 128, 128).image)
    calls = count_encoder_calls(generator.model)
    cache = EmbeddingCache(max_megabytes=16)
    sweep = [dict(AMG, pred_iou_thresh=t) for t in (0.5, 0.55, 0.6, 0.65, 0.7)]
    cached = [generator(image, embedding_cache=cache, **kwargs) for kwargs in sweep]
    assert len(calls) == 1 and cache.hits == 4
    uncached = generator(image, embedding_cache=False, **sweep[2])
    assert len(calls) == 2
    assert len(cached[2]["masks"]) == len(uncached["masks"]) > 0
    assert all(np.array_equal(a, b) for a, b in zip(cached[2]["masks"], uncached["masks"]))
    assert torch.equal(cached[2]["scores"], uncached["scores"])
    # a second pipeline call on another image misses; the first stays cached
    generator(Image.fromarray(make_scene(4, 128, 128).image), embedding_cache=cache, **AMG)
    assert len(calls) == 3 and len(cache) == 2


def test_precomputed_image_embeddings_skip_the_encoder(generator):
    image = Image.fromarray(make_scene(5, 128, 128).image)
    expected = generator(image, embedding_cache=False, **AMG)
    inputs = generator.image_processor(image, return_tensors="pt")
    with torch.no_grad():
        embedding = generator.model.get_image_embeddings(inputs["pixel_values"])
    calls = count_encoder_calls(generator.model)
    given = generator(image, embedding_cache=False, image_embeddings=embedding, **AMG)
    assert not calls
    assert all(np.array_equal(a, b) for a, b in zip(given["masks"], expected["masks"]))
    with pytest.raises(ValueError, match="crops_n_layers"):
        generator(image, image_embeddings=embedding, crops_n_layers=1, **AMG)
    with pytest.raises(TypeError, match="image_embeddings"):
        generator(image, image_embeddings=np.zeros((1, 2)), **AMG)


def test_many_clicks_cost_one_encoder_pass():
    scene = make_scene(1, 128, 128)
    cached = PromptedSegmenter(demo_sam_path(), embedding_cache=EmbeddingCache(16))
    calls = count_encoder_calls(cached.model)
    clicks = [(20, 30), (64, 64), (100, 40), (30, 100)]
    results = [cached.segment(scene.image, points=[click]) for click in clicks]
    assert len(calls) == 1
    plain = PromptedSegmenter(demo_sam_path(), embedding_cache=False)
    for click, (masks, scores) in zip(clicks, results):
        expected_masks, expected_scores = plain.segment(scene.image, points=[click])
        assert np.array_equal(masks, expected_masks) and np.array_equal(scores, expected_scores)


def test_embeddings_file_round_trip(tmp_path, generator):
    model = generator.model
    image = Image.fromarray(make_scene(6, 128, 128).image)
    pixel_values = generator.image_processor(image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        embedding = model.get_image_embeddings(pixel_values)
    path = save_embeddings(tmp_path / "emb.safetensors", model, {pixel_key(pixel_values): embedding})
    cache = EmbeddingCache(16)
    loaded = load_embeddings(path, model, cache)
    assert torch.equal(loaded[pixel_key(pixel_values)], embedding)
    calls = count_encoder_calls(model)
    generator(image, embedding_cache=cache, **AMG)
    assert not calls and cache.hits == 1
    other = AutoModelForMaskGeneration.from_pretrained(demo_sam_path(), vision_config={"num_hidden_layers": 1})
    with pytest.raises(ValueError, match="holds embeddings of model"):
        load_embeddings(path, other)
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a safetensors embeddings file"):
        load_embeddings(tmp_path / "bad.safetensors", model)


def test_raw_image_key_follows_content_settings_and_model(generator):
    processor, model = generator.image_processor, generator.model
    image = make_scene(7, 64, 64).image
    key = image_key(image, processor, model)
    assert image_key(Image.fromarray(image), processor, model) == key
    assert image_key(image.copy(), processor, model) == key
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    assert image_key(changed, processor, model) != key
    other_settings = type(processor).from_dict({**processor.to_dict(), "do_normalize": False})
    assert image_key(image, other_settings, model) != key
    with torch.no_grad():
        next(model.vision_encoder.parameters()).add_(0)  # an in-place update (as an optimizer step) invalidates
    assert image_key(image, processor, model) != key
