"""Every import path the restructure moved still works, warns `FutureWarning`, and hands out the new object."""

import importlib
import os
import subprocess
import sys

import pytest

from hf_promptseg.utils.deprecation import moved_names

MOVED = [
    ("hf_promptseg.demo", "run_demo", "hf_promptseg.commands.demo", "run_demo"),
    ("hf_promptseg.demo", "DEMO_MODEL_DIR", "hf_promptseg.assets", "DEMO_SAM_DIR"),
    ("hf_promptseg.demo", "default_model_path", "hf_promptseg.assets", "demo_sam_path"),
    ("hf_promptseg.demo", "PromptedSegmenter", "hf_promptseg.models.sam.prompted_segmentation", "PromptedSegmenter"),
    ("hf_promptseg.demo", "interior_point", "hf_promptseg.utils.prompt_geometry", "interior_point"),
    ("hf_promptseg.demo", "mask_iou", "hf_promptseg.utils.masks", "mask_iou"),
    ("hf_promptseg.demo", "overlay", "hf_promptseg.utils.overlays", "overlay"),
    ("hf_promptseg.evaluation", "evaluate_segmentation", "hf_promptseg.training.evaluation", "evaluate_segmentation"),
    ("hf_promptseg.evaluation", "evaluate_model", "hf_promptseg.training.evaluation", "evaluate_model"),
    ("hf_promptseg.train", "main", "hf_promptseg.commands.train", "main"),
    ("hf_promptseg.train", "parse_train_arguments", "hf_promptseg.commands.train", "parse_train_arguments"),
    ("hf_promptseg.training.presets", "preset_sam_config", "hf_promptseg.models.sam.configuration_sam",
     "preset_sam_config"),
    ("hf_promptseg.models.sam.run_length", "encode_run_lengths", "hf_promptseg.utils.run_length",
     "encode_run_lengths"),
    ("hf_promptseg.models.sam.image_processing_sam", "box_iou", "hf_promptseg.utils.boxes", "box_iou"),
]  # fmt: skip


@pytest.mark.parametrize(("old_module", "old_name", "new_module", "new_name"), MOVED)
def test_old_path_warns_and_returns_the_new_object(old_module, old_name, new_module, new_name):
    old = importlib.import_module(old_module)
    with pytest.warns(FutureWarning, match=rf"{new_module}\.{new_name}"):
        value = getattr(old, old_name)
    assert value is getattr(importlib.import_module(new_module), new_name)


def test_unknown_names_still_raise_attribute_error():
    getter = moved_names("some.module", {"kept": "hf_promptseg.utils.masks:mask_iou"})
    with pytest.raises(AttributeError, match="some.module"):
        getter("missing")


def test_python_dash_m_old_train_module_still_runs_with_a_warning():
    env = {**os.environ, "PYTHONWARNINGS": "always::FutureWarning"}
    result = subprocess.run(
        [sys.executable, "-m", "hf_promptseg.train", "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--base_model" in result.stdout or "--base-model" in result.stdout
    assert "moved to `python -m hf_promptseg train`" in result.stderr


def test_python_dash_m_package_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "hf_promptseg", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for command in ("demo", "train", "evaluate", "push", "convert"):
        assert command in result.stdout
