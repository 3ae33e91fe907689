import numpy as np
import pytest
import torch
from peft import PeftModel
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import SamModel, pipeline

from hf_promptseg.cli import main as cli_main
from hf_promptseg.models.sam_adapter import build_sam_adapter_model, convert_sam_adapter_checkpoint
from hf_promptseg.models.sam_adapter.predict import predict_logits, predict_masks, reference_pixel_values
from tests.conftest import fixture_dir


@pytest.fixture(scope="module")
def reference():
    path = fixture_dir("sam_adapter")
    return {
        "checkpoint": path / "reference_state_dict.safetensors",
        "image": load_file(path / "inputs.safetensors")["image.original"].numpy(),
        "outputs": load_file(path / "outputs.safetensors"),
    }


@pytest.fixture(scope="module")
def converted(reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("sam_adapter") / "converted"
    assert cli_main(["convert", "sam-adapter", str(reference["checkpoint"]), str(out)]) == 0
    return out


def test_converted_dirs_reproduce_the_reference(converted, reference):
    assert {p.name for p in (converted / "adapter").iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    model = PeftModel.from_pretrained(
        SamModel.from_pretrained(converted / "base", dtype=torch.float32), converted / "adapter"
    )
    pixel_values = reference_pixel_values([reference["image"]])
    logits = predict_logits(model.eval(), pixel_values)
    expected = reference["outputs"]["reference.masks_stride3"][0, 0]
    assert (logits[0, ::3, ::3] - expected).abs().max().item() < 1e-5


def test_predict_masks_returns_probabilities_at_original_size(converted, reference):
    model = SamModel.from_pretrained(converted / "base", dtype=torch.float32)
    model.load_adapter(str(converted / "adapter"))
    (probability,) = predict_masks(model, [reference["image"]])
    assert probability.shape == reference["image"].shape[:2]
    assert probability.dtype == np.float32 and 0.0 <= probability.min() <= probability.max() <= 1.0


def test_image_segmentation_pipeline_from_the_adapter_dir(converted, reference):
    segmenter = pipeline("image-segmentation", model=str(converted / "adapter"), dtype=torch.float32)
    (result,) = segmenter(Image.fromarray(reference["image"]))
    assert result["label"] == "foreground" and result["mask"].size == (420, 300)
    probability = predict_masks(segmenter.model, [reference["image"]])[0]
    assert np.array_equal(np.asarray(result["mask"]) > 0, probability > 0.5)
    # the adapter sits inside the ViT, so a named encoder backend (here eager attention) runs it too
    eager = predict_masks(segmenter.model, [reference["image"]], encoder_backend="eager")[0]
    np.testing.assert_allclose(eager, probability, atol=1e-5)
    with pytest.raises(ValueError, match=r"`threshold` is 2; expected a finite number in \[0, 1\]"):
        segmenter(reference["image"], threshold=2)


def test_bhwc_layout_is_recorded(reference, tmp_path):
    out = convert_sam_adapter_checkpoint(reference["checkpoint"], tmp_path / "bhwc", embedding_layout="bhwc")
    assert '"embedding_layout": "bhwc"' in (out / "adapter" / "adapter_config.json").read_text()


def test_bad_inputs(reference, tmp_path):
    state = load_file(reference["checkpoint"])
    without_adapter = {k: v for k, v in state.items() if ".prompt_generator." not in k}
    save_file(without_adapter, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a SAM-Adapter checkpoint"):
        convert_sam_adapter_checkpoint(tmp_path / "plain.safetensors", tmp_path / "out")
    model = build_sam_adapter_model(state)
    with pytest.raises(ValueError, match=r"`pixel_values` must be \(B, 3, 1024, 1024\)"):
        predict_logits(model, torch.zeros(1, 3, 512, 512))
    with pytest.raises(TypeError, match="`model` must be a SAM model"):
        predict_masks(torch.nn.Linear(2, 2), [reference["image"]])
    assert cli_main(["convert", "sam-adapter", str(tmp_path / "plain.safetensors"), str(tmp_path / "o2")]) == 2
