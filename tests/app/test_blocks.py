"""The app's event handlers without a browser: click → mask, undo, clear, candidates, downloads, Everything's
sliders re-filtering cached candidates (the encoder runs once per image), prompt-free and in-context tabs."""

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from hf_promptseg.app import everything
from hf_promptseg.app.blocks import AppModels, Handlers
from hf_promptseg.app.prompt import PromptState
from hf_promptseg.data.scenes import make_scene
from hf_promptseg.utils.masks import mask_iou
from hf_promptseg.utils.prompt_geometry import bounding_box, interior_point

gr = pytest.importorskip("gradio")


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    return Handlers(AppModels.load(), tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    scene = make_scene(3, 256, 256)
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    Image.fromarray(scene.image).save(path)
    return scene, str(path)


def test_click_undo_clear_and_downloads(handlers, scene):
    scene, path = scene
    calls = handlers.models.sam.encoder_calls
    image, state, view, gallery, files, status = handlers.prompt_upload(path)
    assert np.array_equal(image, scene.image) and state == PromptState() and "embedding computed" in status
    target = scene.masks[2]
    state, view, gallery, files, status = handlers.prompt_click(image, state, "positive", *interior_point(target))
    assert status.startswith("3 candidate(s)") and len(gallery) == 3 and "predicted IoU" in gallery[0][1]
    png, rle_path = files
    shown = np.asarray(Image.open(png)) > 0
    assert mask_iou(shown, target) > 0.9
    record = json.loads(open(rle_path).read())
    decoded = mask_utils.decode({"size": record["segmentation"]["size"],
                                 "counts": record["segmentation"]["counts"].encode()})  # fmt: skip
    assert np.array_equal(decoded.astype(bool), shown) and record["area"] == shown.sum()
    assert np.asarray(view).shape == scene.image.shape and not np.array_equal(np.asarray(view), scene.image)

    state, *_, status = handlers.prompt_click(image, state, "negative", 30, 200)
    assert state.labels == (1, 0) and status.startswith("1 candidate(s)")  # several points: one mask
    state, *_, status = handlers.prompt_undo(image, state)
    assert state.labels == (1,) and status.startswith("3 candidate(s)")
    state, _, _, _, status = handlers.prompt_pick(image, state, 2)
    assert "shown: 3" in status
    state, view, gallery, files, status = handlers.prompt_clear(image, state)
    assert state == PromptState() and status == "no prompt" and files is None and np.array_equal(view, scene.image)

    box = bounding_box(scene.masks[0])
    state, *_, status = handlers.prompt_click(image, state, "box", box[0], box[1])
    assert "opposite corner" in status and state.corner is not None
    state, _, _, files, status = handlers.prompt_click(image, state, "box", box[2], box[3])
    assert state.box == box and mask_iou(np.asarray(Image.open(files[0])) > 0, scene.masks[0]) > 0.9
    assert handlers.models.sam.encoder_calls == calls + 1  # one encoding for the whole session


def test_bad_uploads_and_clicks_say_what_is_wrong(handlers, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(gr.Error, match="not an image PIL can read"):
        handlers.prompt_upload(str(text))
    with pytest.raises(gr.Error, match="no image: upload a PNG or JPEG first"):
        handlers.prompt_upload(None)
    with pytest.raises(gr.Error, match="no image"):
        handlers.prompt_click(None, PromptState(), "positive", 1, 1)
    small = Handlers(AppModels(sam=handlers.models.sam, sam_name="demo", max_pixels=1000), tmp_path)
    with pytest.raises(gr.Error, match=r"64×64 = 0.0 megapixels; the limit is 0.0 megapixels"):
        small.prompt_upload(np.zeros((64, 64, 3), np.uint8))


def test_everything_sliders_reuse_the_cached_embedding_and_candidates(handlers, scene, monkeypatch):
    scene, path = scene
    decoded = []
    original = everything.compute_candidates
    monkeypatch.setattr(everything, "compute_candidates", lambda *a, **k: decoded.append(1) or original(*a, **k))
    handlers.models.sam.set_image(scene.image)
    calls = handlers.models.sam.encoder_calls
    cache, view, status = handlers.everything_generate(path, None, 16, 0.6, 0.85, 0.7)
    assert decoded == [1] and "masks of 768 candidates" in status  # 16×16 points × 3 candidates (the default grid)
    many = int(status.split()[0])
    view2, status2 = handlers.everything_filter(cache, 0.0, 0.0, 0.7)
    view3, status3 = handlers.everything_filter(cache, 0.99, 0.99, 0.7)
    cache2, *_ = handlers.everything_generate(path, cache, 16, 0.6, 0.85, 0.7)
    assert cache2 is cache and decoded == [1]  # the button again on the same image: nothing re-decoded
    assert int(status2.split()[0]) >= many >= int(status3.split()[0])
    assert handlers.models.sam.encoder_calls == calls  # the Prompt tab's embedding of this image was reused
    masks = everything.filter_candidates(cache[2], 0.6, 0.85, 0.7)
    assert any(mask_iou(m, t) > 0.8 for t in scene.masks for m in masks)  # objects are found
    with pytest.raises(ValueError, match="`pred_iou_thresh` must be in"):
        everything.filter_candidates(cache[2], 1.5)


def test_prompt_free_tab(handlers, scene, tmp_path):
    from hf_promptseg.app.prompt_free import load_prompt_free
    from hf_promptseg.models.sam.image_processing_sam import HfPromptsegSamImageProcessor
    from hf_promptseg.training.modeling import load_base_model

    scene, path = scene
    with pytest.raises(gr.Error, match="start the app with --adapter"):
        handlers.prompt_free_run(path, 0.5)
    load_base_model("random:tiny").save_pretrained(tmp_path / "model")  # a random prompt-free SAM directory
    HfPromptsegSamImageProcessor().save_pretrained(tmp_path / "model")
    segmenter = load_prompt_free(tmp_path / "model")
    tab = Handlers(AppModels(sam=handlers.models.sam, sam_name="demo", adapter=segmenter), tmp_path)
    grey, view, status = tab.prompt_free_run(path, 0.5)
    probability = np.asarray(grey) / 255
    served = np.asarray(segmenter(Image.fromarray(scene.image))[0]["mask"]) > 0  # the pipeline's own answer
    assert probability.shape == (256, 256) and status.startswith(f"{int(served.sum())} foreground pixels")
    assert np.abs((probability > 0.5).mean() - served.mean()) < 0.01  # the map shown is the one thresholded


def test_in_context_tab(handlers, scene, tmp_path):
    scene, path = scene
    reference, clicks, view, status = handlers.reference_upload(path)
    box = bounding_box(scene.masks[0])
    clicks, view, status = handlers.reference_click(reference, clicks, "box", box[0], box[1])
    clicks, view, status = handlers.reference_click(reference, clicks, "box", box[2], box[3])
    assert len(clicks) == 2 and status == "box prompt: 2 click(s)"
    target, status = handlers.target_upload(path)
    view, status = handlers.in_context_run(reference, clicks, "box", path)
    assert "match(es) in the target" in status and not status.startswith("0 ")
    assert np.asarray(view).shape == scene.image.shape
    clicks, view, status = handlers.reference_click(reference, [], "mask", *interior_point(scene.masks[2]))
    shown = np.abs(np.asarray(view, np.float32) - scene.image).sum(-1) > 45
    assert mask_iou(shown, scene.masks[2]) > 0.8  # the SAM-outlined mask prompt
    with pytest.raises(gr.Error, match="no box prompt drawn"):
        handlers.in_context_run(reference, [], "box", path)


def test_app_builds_with_its_tabs(handlers):
    from hf_promptseg.app.blocks import build_app

    app = build_app(handlers.models)
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    assert {"prompt-view", "everything-view", "prompt-free-disabled", "in-context-notice"} <= ids
