import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import SamConfig, SamModel

from hf_promptseg.cli import main as cli_main
from hf_promptseg.models.sam import convert_sam_checkpoint, detect_checkpoint_family, infer_sam_config
from hf_promptseg.models.sam.convert_sam_checkpoint import detect_model_type, to_segment_anything_state_dict
from hf_promptseg.utils.checkpoint_io import CheckpointError
from tests.conftest import fixture_dir

NONSTANDARD = SamConfig(
    vision_config={
        "hidden_size": 48,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "image_size": 256,
        "patch_size": 16,
        "window_size": 5,
        "global_attn_indexes": [1],
        "output_channels": 40,
        "mlp_dim": 96,
        "mlp_ratio": 2.0,
        "num_pos_feats": 20,
    },
    prompt_encoder_config={"hidden_size": 40, "image_size": 256, "patch_size": 16, "mask_input_channels": 8},
    mask_decoder_config={
        "hidden_size": 40,
        "mlp_dim": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "attention_downsample_rate": 2,
        "iou_head_depth": 4,
        "iou_head_hidden_dim": 24,
        "layer_norm_eps": 1e-5,
    },
)


def _random_model(config):
    torch.manual_seed(0)
    model = SamModel(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.2)
    return model


@pytest.fixture()
def nonstandard_checkpoint(tmp_path):
    model = _random_model(NONSTANDARD)
    path = tmp_path / "sam_custom.safetensors"
    save_file({k: v.contiguous() for k, v in to_segment_anything_state_dict(model.state_dict()).items()}, path)
    return model, path


def test_nonstandard_sizes_are_inferred_from_shapes(nonstandard_checkpoint):
    _, path = nonstandard_checkpoint
    config = infer_sam_config(load_file(path), decoder_num_heads=4)
    vision, decoder = config.vision_config, config.mask_decoder_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (48, 3, 4)
    assert (vision.image_size, vision.window_size, list(vision.global_attn_indexes)) == (256, 5, [1])
    assert (vision.output_channels, vision.mlp_dim, vision.num_pos_feats) == (40, 96, 20)
    assert config.prompt_encoder_config.mask_input_channels == 8
    assert (decoder.num_hidden_layers, decoder.mlp_dim, decoder.attention_downsample_rate) == (3, 64, 2)
    assert (decoder.iou_head_depth, decoder.iou_head_hidden_dim, decoder.layer_norm_eps) == (4, 24, 1e-5)
    assert detect_model_type(config) == "custom"


def test_round_trip_convert_save_load_same_outputs(nonstandard_checkpoint, tmp_path):
    original, path = nonstandard_checkpoint
    out = convert_sam_checkpoint(path, tmp_path / "converted", decoder_num_heads=4)
    loaded = SamModel.from_pretrained(out, dtype=torch.float32).eval()
    original_weights, loaded_weights = original.state_dict(), loaded.state_dict()
    assert all(torch.equal(original_weights[k], loaded_weights[k]) for k in original_weights)
    pixel_values = torch.randn(1, 3, 256, 256)
    points = torch.tensor([[[[100.0, 60.0], [20.0, 200.0]]]])
    labels = torch.tensor([[[1, 0]]])
    with torch.no_grad():
        expected = original(pixel_values=pixel_values, input_points=points, input_labels=labels)
        got = loaded(pixel_values=pixel_values, input_points=points, input_labels=labels)
        assert torch.equal(loaded.get_image_embeddings(pixel_values), original.get_image_embeddings(pixel_values))
    # Weights are bit-identical; BLAS kernels may pick another summation order for tensors loaded from disk.
    torch.testing.assert_close(got.pred_masks, expected.pred_masks, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.iou_scores, expected.iou_scores, atol=1e-6, rtol=0)
    preprocessor = json.loads((out / "preprocessor_config.json").read_text())
    assert preprocessor["size"] == {"longest_edge": 256}
    assert preprocessor["pad_size"] == {"height": 256, "width": 256}


def test_pth_wrapped_in_model_key_is_accepted(nonstandard_checkpoint, tmp_path):
    _, path = nonstandard_checkpoint
    pth = tmp_path / "wrapped.pth"
    torch.save({"model": load_file(path), "epoch": 3}, pth)
    out = convert_sam_checkpoint(pth, tmp_path / "from_pth", decoder_num_heads=4)
    assert (out / "model.safetensors").is_file()


def test_released_presets_are_detected():
    sd = to_segment_anything_state_dict(SamModel(SamConfig()).state_dict())
    config = infer_sam_config(sd)
    assert detect_model_type(config) == "vit_b"
    assert config.mask_decoder_config.num_attention_heads == 8
    with pytest.raises(ValueError, match="`model_type='vit_h'` expects width 1280 and depth 32"):
        infer_sam_config(sd, model_type="vit_h")


def test_cli_convert(nonstandard_checkpoint, tmp_path, capsys):
    _, path = nonstandard_checkpoint
    code = cli_main(["convert", "sam", str(path), str(tmp_path / "cli_out"), "--decoder-num-heads", "4"])
    assert code == 0
    assert "converted" in capsys.readouterr().out
    assert (tmp_path / "cli_out" / "config.json").is_file()
    assert cli_main(["convert", "sam", str(path), str(tmp_path / "cli_out"), "--decoder-num-heads", "4"]) == 2
    assert "output directory is not empty" in capsys.readouterr().err


# ---- bad input: clear errors, nothing half-written ------------------------------------------------------------


def _expect_failure(path, out, match, exc=ValueError, **kwargs):
    with pytest.raises(exc, match=match):
        convert_sam_checkpoint(path, out, **kwargs)
    assert not out.exists(), "a failed conversion must not leave an output directory"
    assert not list(out.parent.glob(f".{out.name}.*")), "temporary directories must be cleaned up"


def test_unknown_and_missing_keys(nonstandard_checkpoint, tmp_path):
    _, path = nonstandard_checkpoint
    sd = load_file(path)
    save_file({**sd, "mask_decoder.extra_head.weight": torch.zeros(2)}, tmp_path / "extra.safetensors")
    _expect_failure(
        tmp_path / "extra.safetensors", tmp_path / "o1", r"1 unknown key\(s\).*extra_head", decoder_num_heads=4
    )
    del sd["mask_decoder.iou_token.weight"]
    save_file(sd, tmp_path / "missing.safetensors")
    _expect_failure(
        tmp_path / "missing.safetensors", tmp_path / "o2", r"missing 1 key\(s\).*iou_token", decoder_num_heads=4
    )


def test_wrong_shapes_and_heads(nonstandard_checkpoint, tmp_path):
    _, path = nonstandard_checkpoint
    _expect_failure(path, tmp_path / "o", "does not divide the decoder width 40", decoder_num_heads=7)
    sd = load_file(path)
    sd["mask_decoder.iou_token.weight"] = torch.zeros(1, 39)
    save_file(sd, tmp_path / "shape.safetensors")
    _expect_failure(tmp_path / "shape.safetensors", tmp_path / "o", "wrong shape.*iou_token", decoder_num_heads=4)


@pytest.mark.parametrize(
    ("family", "match"), [("sam_adapter", "SAM-Adapter checkpoint"), ("dinov", "DINOv checkpoint")]
)
def test_other_families_are_refused(family, match, tmp_path):
    path = fixture_dir(family) / "reference_state_dict.safetensors"
    assert detect_checkpoint_family(load_file(path)) == family
    _expect_failure(path, tmp_path / "o", match)


def test_truncated_and_non_checkpoint_files(nonstandard_checkpoint, tmp_path):
    _, path = nonstandard_checkpoint
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    _expect_failure(tmp_path / "cut.safetensors", tmp_path / "o", "not a readable safetensors file", CheckpointError)
    torch.save(load_file(path), tmp_path / "full.pth")
    pth = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(pth[: len(pth) // 2])
    _expect_failure(tmp_path / "cut.pth", tmp_path / "o", "truncated or not a torch checkpoint", CheckpointError)
    (tmp_path / "notes.txt").write_text("hello")
    _expect_failure(tmp_path / "notes.txt", tmp_path / "o", "unsupported checkpoint suffix", CheckpointError)
    _expect_failure(tmp_path / "absent.pth", tmp_path / "o", "checkpoint not found", FileNotFoundError)


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_needing_code_are_refused(tmp_path, capsys):
    torch.save({"model": {"w": torch.zeros(1)}, "evil": _Payload()}, tmp_path / "evil.pth")
    _expect_failure(tmp_path / "evil.pth", tmp_path / "o", "refused to unpickle", CheckpointError)
    assert "this must never run" not in capsys.readouterr().out
    torch.save({"weights": [1, 2, 3], "step": 4}, tmp_path / "lists.pth")
    _expect_failure(tmp_path / "lists.pth", tmp_path / "o", "non-tensor entries", CheckpointError)


def test_existing_output_is_kept_on_failure(nonstandard_checkpoint, tmp_path):
    _, path = nonstandard_checkpoint
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        convert_sam_checkpoint(path, out, decoder_num_heads=4)
    with pytest.raises(ValueError, match="does not divide"):
        convert_sam_checkpoint(path, out, decoder_num_heads=7, overwrite=True)
    assert (out / "keep.txt").read_text() == "precious"
    convert_sam_checkpoint(path, out, decoder_num_heads=4, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_export_names_round_trip_on_the_fixture_layout():
    reference = load_file(fixture_dir("sam") / "reference_state_dict.safetensors")
    from hf_promptseg.models.sam import convert_sam_state_dict

    assert set(to_segment_anything_state_dict(convert_sam_state_dict(reference))) == set(reference)


def test_push_to_hub_uploads_the_converted_dir_in_one_commit(nonstandard_checkpoint, tmp_path, monkeypatch):
    from huggingface_hub import CommitOperationAdd, HfApi

    commits = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(
        HfApi, "create_commit", lambda self, repo_id, operations, **kwargs: commits.append((repo_id, list(operations)))
    )
    _, path = nonstandard_checkpoint
    out = convert_sam_checkpoint(path, tmp_path / "pushed", decoder_num_heads=4, push_to_hub="me/sam-custom")
    assert len(commits) == 1 and commits[0][0] == "me/sam-custom"
    uploaded = {op.path_in_repo: op for op in commits[0][1] if isinstance(op, CommitOperationAdd)}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "processor_config.json"} <= set(uploaded)
    assert uploaded["model.safetensors"].path_or_fileobj in (
        str(out / "model.safetensors"),
        out / "model.safetensors",
    ) or (uploaded["model.safetensors"].upload_info.size == (out / "model.safetensors").stat().st_size)
