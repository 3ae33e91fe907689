"""The Prompt tab's state: clicks, two-corner boxes, undo, candidate choice, and what a click decodes."""

import numpy as np
import pytest

from hf_promptseg.app.prompt import PromptState, add_click, pick_candidate, predict_masks, render, undo
from hf_promptseg.assets import demo_sam_path
from hf_promptseg.data.scenes import make_scene
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter


def test_clicks_boxes_and_undo():
    state = add_click(PromptState(), 10, 20, "positive")
    state = add_click(state, 30, 5, "negative")
    assert state.points == ((10.0, 20.0), (30.0, 5.0)) and state.labels == (1, 0)
    state = add_click(state, 50, 60, "box")
    assert state.corner == (50.0, 60.0) and state.box is None
    state = add_click(state, 20, 90, "box")
    assert state.box == (20.0, 60.0, 50.0, 90.0) and state.corner is None  # corners in any order
    assert undo(state).corner == (50.0, 60.0) and undo(undo(undo(state))).points == ((10.0, 20.0),)
    assert undo(PromptState()) == PromptState()
    assert (
        pick_candidate(state, 2).candidate == 2
        and add_click(pick_candidate(state, 2), 1, 1, "positive").candidate is None
    )
    with pytest.raises(ValueError, match="too close"):
        add_click(add_click(PromptState(), 5, 5, "box"), 5.5, 40, "box")
    with pytest.raises(ValueError, match="`mode` must be one of"):
        add_click(PromptState(), 1, 1, "lasso")


def test_one_point_gives_three_candidates_and_more_prompts_one():
    scene = make_scene(3, 128, 128)
    segmenter = PromptedSegmenter(demo_sam_path())
    assert predict_masks(segmenter, scene.image, PromptState()) is None
    state = add_click(PromptState(), 60, 30, "positive")
    result = predict_masks(segmenter, scene.image, state)
    assert result.masks.shape == (3, 128, 128) and result.chosen == int(np.argmax(result.iou_scores))
    assert predict_masks(segmenter, scene.image, pick_candidate(state, 1)).chosen == 1
    both = predict_masks(segmenter, scene.image, add_click(state, 5, 120, "negative"))
    assert both.masks.shape == (1, 128, 128)
    picture = np.asarray(render(scene.image, state, result))
    assert picture.shape == scene.image.shape and (picture[result.mask] != scene.image[result.mask]).any()
