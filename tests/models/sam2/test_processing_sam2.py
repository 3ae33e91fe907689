"""HfPromptsegSam2Processor reproduces transformers' Sam2Processor (stored fixture) and refuses impossible prompts."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hf_promptseg.models.sam2 import HfPromptsegSam2ImageProcessor, HfPromptsegSam2Processor

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "sam2"


@pytest.fixture(scope="module")
def fixture():
    return json.loads((FIXTURE / "processor_fixture.json").read_text()), load_file(
        FIXTURE / "processor_fixture.safetensors"
    )


def test_processor_matches_transformers(fixture):
    meta, tensors = fixture
    assert len(meta["processor"]) == 3
    for case in meta["processor"]:
        processor = HfPromptsegSam2Processor(HfPromptsegSam2ImageProcessor(**case["settings"]))
        arguments = {}
        if case["images"] is not None:
            arguments["images"] = [tensors[spec["tensor"]].numpy().copy() for spec in case["images"]]
        out = processor(**arguments, **case["kwargs"], return_tensors="pt")
        assert set(out) == set(case["outputs"]), case["name"]
        for key, name in case["outputs"].items():
            expected = tensors[name]
            assert out[key].dtype == expected.dtype, (case["name"], key)
            assert torch.equal(out[key], expected), (case["name"], key)


def test_impossible_prompts_are_refused():
    processor = HfPromptsegSam2Processor(HfPromptsegSam2ImageProcessor(size={"height": 32, "width": 32}))
    image = np.zeros((50, 70, 3), np.uint8)
    with pytest.raises(ValueError, match=r"`input_points`\[0\] has 1 point\(s\) outside the 70x50"):
        processor(image, input_points=[[[[80, 10]]]], input_labels=[[[1]]])
    with pytest.raises(ValueError, match="prompts for 2 image"):
        processor(image, input_points=[[[[1, 1]]], [[[2, 2]]]], input_labels=[[[1]], [[1]]])
    with pytest.raises(ValueError, match=r"label\(s\) \[7\]"):
        processor(image, input_points=[[[[1, 1]]]], input_labels=[[[7]]])
    with pytest.raises(ValueError, match="x2 < x1"):
        processor(image, input_boxes=[[[30, 3, 10, 20]]])
    with pytest.raises(ValueError, match="outside the 70x50"):
        processor(image, input_boxes=[[[0, 0, 71, 20]]])
    with pytest.raises(TypeError, match="`input_points` must be a nested list"):
        processor(image, input_points="10,12")
