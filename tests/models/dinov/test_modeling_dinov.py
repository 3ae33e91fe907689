import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

import hf_promptseg  # noqa: F401  (registers the dinov model type)
from hf_promptseg.cli import main
from hf_promptseg.models.dinov import (
    DinovConfig,
    DinovForVisualPromptSegmentation,
    DinovImageProcessor,
    DinovSegmentationOutput,
    convert_dinov_checkpoint,
)
from tests.conftest import fixture_dir


def tiny_config(**overrides):
    values = dict(hidden_size=32, mask_dim=32, feedforward_dim=64, encoder_layers=1, decoder_layers=2,
                  num_queries=8, points_per_side=3, projection_dim=16, prompt_attention_heads=4,
                  encoder_attention_heads=4, decoder_attention_heads=4)  # fmt: skip
    values.update(overrides)
    from hf_promptseg.models.dinov import swin_backbone_config

    backbone = swin_backbone_config(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4)
    return DinovConfig(backbone_config=backbone, group_norm_groups=8, **values)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DinovForVisualPromptSegmentation(tiny_config()).eval()


def test_presets_and_config_round_trip(tmp_path):
    swin_l = DinovConfig.from_preset("swin-l")
    assert swin_l.backbone_config.embed_dim == 192 and swin_l.num_feature_levels == 5
    swin_l.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, DinovConfig)
    assert loaded.to_diff_dict() == swin_l.to_diff_dict()
    assert loaded.backbone_config.to_dict() == swin_l.backbone_config.to_dict()
    with pytest.raises(ValueError, match="unknown preset"):
        DinovConfig.from_preset("swin-b")
    with pytest.raises(ValueError, match="encoder_stages"):
        DinovConfig(encoder_stages=[3, 1])


def test_save_load_is_exact_and_auto_classes_resolve(model, tmp_path):
    model.save_pretrained(tmp_path)
    DinovImageProcessor().save_pretrained(tmp_path)
    loaded = DinovForVisualPromptSegmentation.from_pretrained(tmp_path).eval()
    pixel_values, masks = torch.randn(1, 3, 64, 96), torch.zeros(1, 2, 64, 96)
    masks[0, 0, 8:30, 8:40] = 1
    with torch.no_grad():
        first, second = model(pixel_values, prompt_masks=masks), loaded(pixel_values, prompt_masks=masks)
        generic = loaded(pixel_values, prompt_masks=masks, task="generic")
    assert torch.equal(first.match_scores, second.match_scores) and torch.equal(first.pred_masks, second.pred_masks)
    assert generic.logits.shape == (1, 8, 2) and generic.pred_masks.shape == (1, 8, 16, 24)
    assert type(AutoModel.from_pretrained(tmp_path)).__name__ == "DinovModel"
    assert isinstance(AutoImageProcessor.from_pretrained(tmp_path), DinovImageProcessor)


def test_empty_prompt_attends_everywhere(model):
    """A prompt without a positive pixel is not an error: like the reference, it attends to the whole image."""
    with torch.no_grad():
        features = model.model.get_image_features(torch.randn(1, 3, 64, 64))
        empty = model.model.encode_visual_prompts(features.multi_scale_features, torch.zeros(1, 1, 64, 64))
        full = model.model.encode_visual_prompts(features.multi_scale_features, torch.ones(1, 1, 64, 64))
    torch.testing.assert_close(empty.tokens, full.tokens)


def test_bad_calls(model):
    with pytest.raises(ValueError, match="task"):
        model(torch.randn(1, 3, 64, 64), prompt_masks=torch.ones(1, 1, 64, 64), task="panoptic")
    with pytest.raises(ValueError, match="prompt_masks"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="max_prompts"):
        model(torch.randn(1, 3, 64, 64), prompt_masks=torch.ones(1, 300, 64, 64))
    with pytest.raises(ValueError, match="max_prompts"):
        model(torch.randn(1, 3, 64, 64), content_queries=torch.zeros(1, 0, 32))
    with pytest.raises(ValueError, match=r"\(batch, prompts, height, width\)"):
        model.model.encode_visual_prompts((torch.zeros(1, 32, 8, 8),), torch.ones(1, 64, 64))


def test_image_processor_resizes_and_pads_prompt_masks():
    processor = DinovImageProcessor(size={"shortest_edge": 64, "longest_edge": 100})
    image = torch.zeros(50, 120, 3, dtype=torch.uint8).numpy()
    masks = torch.zeros(2, 50, 120)
    masks[0, 10:20, 10:30] = 1
    batch = processor(image, prompt_masks=[masks.numpy()])
    assert batch["image_sizes"].tolist() == [[42, 100]]
    assert tuple(batch["pixel_values"].shape) == (1, 3, 64, 128)
    assert tuple(batch["prompt_masks"].shape) == (1, 2, 64, 128)
    assert batch["prompt_masks"][0, 0].sum() > 0 and batch["prompt_masks"][0, 0, 42:].sum() == 0
    with pytest.raises(ValueError, match="to match its image"):
        processor(image, prompt_masks=[torch.zeros(1, 40, 120).numpy()])
    with pytest.raises(ValueError, match="RGB"):
        processor(torch.zeros(5, 5, 4, dtype=torch.uint8).numpy())


def test_conversion_refuses_wrong_files(tmp_path):
    not_dinov = tmp_path / "sam.safetensors"
    save_file({"model.image_encoder.x": torch.zeros(1)}, not_dinov)
    with pytest.raises(ValueError, match="not a DINOv checkpoint"):
        convert_dinov_checkpoint(not_dinov)
    pickled = tmp_path / "evil.pth"
    torch.save({"model": {"model.sem_seg_head.x": torch.zeros(1)}, "extra": object.__new__(DinovConfig)}, pickled)
    with pytest.raises(ValueError, match="weights_only"):
        convert_dinov_checkpoint(pickled)
    folder = fixture_dir("dinov")
    with pytest.raises(ValueError, match="swin-t"):
        convert_dinov_checkpoint(folder / "reference_state_dict.safetensors", variant="swin-t")


def test_cli_converts_the_fixture(tmp_path, capsys):
    folder = fixture_dir("dinov")
    out = tmp_path / "dinov"
    code = main(["convert", "dinov", str(folder / "reference_state_dict.safetensors"), str(out),
                 "--reference-config", str(folder / "reference_config.json")])  # fmt: skip
    assert code == 0 and (out / "model.safetensors").is_file() and (out / "processor_config.json").is_file()
    assert isinstance(AutoImageProcessor.from_pretrained(out), DinovImageProcessor)
    assert AutoConfig.from_pretrained(out).num_queries == 60
    assert type(AutoProcessor.from_pretrained(out)).__name__ == "DinovProcessor"
    assert main(["convert", "dinov", str(folder / "reference_state_dict.safetensors"), str(out)]) == 2  # not empty


def test_generic_post_processing_formats(model):
    processor = DinovImageProcessor()
    torch.manual_seed(1)
    outputs = DinovSegmentationOutput(logits=torch.randn(1, 8, 3) * 3, pred_masks=torch.randn(1, 8, 16, 24) * 3)
    instance = processor.post_process_instance(outputs, [(60, 90)], [(30, 45)], top_k=5)[0]
    assert instance["segmentation"].shape == (30, 45) and len(instance["segments_info"]) == 5
    scores = [s["score"] for s in instance["segments_info"]]
    assert scores == sorted(scores, reverse=True) and instance["segmentation"].min() >= -1
    maps = processor.post_process_instance(outputs, [(60, 90)], top_k=5, return_binary_maps=True)[0]
    assert maps["segmentation"].shape == (5, 60, 90) and maps["segmentation"].dtype == torch.bool
    semantic = processor.post_process_semantic(outputs, [(60, 90)])[0]
    assert semantic.shape == (60, 90) and int(semantic.max()) < 3
    panoptic = processor.post_process_panoptic(outputs, [(60, 90)], stuff_categories={0})[0]
    ids = set(panoptic["segmentation"].unique().tolist()) - {-1}
    assert ids == {s["id"] for s in panoptic["segments_info"]}
    assert len([s for s in panoptic["segments_info"] if s["label_id"] == 0]) <= 1  # stuff merged per category
