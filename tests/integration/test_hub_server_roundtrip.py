"""Round trips through a real HF-compatible server: push lands in its git repos, `from_pretrained` reads over HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import SamConfig, SamModel

from hf_promptseg.hub import push_to_hub
from hf_promptseg.models.sam import convert_sam_checkpoint
from hf_promptseg.models.sam.convert_sam_checkpoint import to_segment_anything_state_dict

TINY_SAM = SamConfig(
    vision_config={
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 256,
        "window_size": 4,
        "global_attn_indexes": [1],
        "output_channels": 32,
        "mlp_dim": 64,
        "num_pos_feats": 16,
    },
    prompt_encoder_config={"hidden_size": 32, "image_size": 256, "mask_input_channels": 4},
    mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 4, "layer_norm_eps": 1e-5},
)


def _tiny_checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = SamModel(TINY_SAM)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.2)
    save_file({k: v.contiguous() for k, v in to_segment_anything_state_dict(model.state_dict()).items()}, path)
    return path


def _sha256_of_dir(local_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in local_dir.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def local_outputs():
    """The prompted output of a locally loaded model, computed like the client does."""
    from tests.integration.hub_client import _prompted_output

    return _prompted_output


def test_pushed_sam_comes_back_byte_identical_and_loads_by_repo_id(git_backed_push, tmp_path, local_outputs):
    server = git_backed_push
    out = convert_sam_checkpoint(
        _tiny_checkpoint(tmp_path / "sam.safetensors", seed=0), tmp_path / "sam", decoder_num_heads=4,
        push_to_hub="org/sam-tiny",
    )  # fmt: skip
    assert len(_git_log(server, "org/sam-tiny")) == 2, "the push must be exactly one commit"

    pulled = server.client("files", "org/sam-tiny")
    assert pulled == _sha256_of_dir(out)
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= set(pulled)

    loaded = server.client("sam", "org/sam-tiny")
    assert loaded["model"] == "SamModel"
    assert loaded["processor"] == "HfPromptsegSamProcessor"
    assert loaded["pipeline"] == "HfPromptsegMaskGenerationPipeline"
    assert loaded["pipeline_image_processor"] == "HfPromptsegSamImageProcessor"
    expected = local_outputs(SamModel.from_pretrained(out, dtype=torch.float32))
    assert loaded["output"] == pytest.approx(expected, rel=1e-6)


def test_pinned_revision_and_branches_resolve_to_their_own_weights(git_backed_push, tmp_path, local_outputs):
    server = git_backed_push
    first = convert_sam_checkpoint(
        _tiny_checkpoint(tmp_path / "a.safetensors", seed=1), tmp_path / "a", decoder_num_heads=4,
        push_to_hub="org/sam-versions",
    )  # fmt: skip
    first_sha = _git_log(server, "org/sam-versions")[0]
    second = convert_sam_checkpoint(_tiny_checkpoint(tmp_path / "b.safetensors", seed=2), tmp_path / "b")
    push_to_hub(second, "org/sam-versions")
    push_to_hub(first, "org/sam-versions", revision="v1-branch")

    outputs = {
        name: local_outputs(SamModel.from_pretrained(path, dtype=torch.float32))
        for name, path in {"first": first, "second": second}.items()
    }
    assert outputs["first"] != pytest.approx(outputs["second"])
    assert server.client("sam", "org/sam-versions")["output"] == pytest.approx(outputs["second"], rel=1e-6)
    pinned = server.client("sam", "org/sam-versions", "--revision", first_sha)["output"]
    assert pinned == pytest.approx(outputs["first"], rel=1e-6)
    branch = server.client("sam", "org/sam-versions", "--revision", "v1-branch")["output"]
    assert branch == pytest.approx(outputs["first"], rel=1e-6)


def test_lora_adapter_loads_by_repo_id_with_peft_and_load_adapter(git_backed_push, tmp_path, local_outputs):
    server = git_backed_push
    base_dir = convert_sam_checkpoint(
        _tiny_checkpoint(tmp_path / "base.safetensors", seed=3), tmp_path / "base", decoder_num_heads=4
    )
    model = get_peft_model(
        SamModel.from_pretrained(base_dir, dtype=torch.float32),
        LoraConfig(r=4, target_modules=["qkv"], init_lora_weights=False),
    )
    push_to_hub(model, "org/sam-lora", base_model="org/sam-base")

    card = ModelCard.load(server.repo_dir("org/sam-lora") / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model == "org/sam-base"
    assert "LoRA adapter" in card.text
    loaded = server.client("peft", "org/sam-lora", "--base", str(base_dir))
    expected = local_outputs(model)
    assert loaded["peft_output"] == pytest.approx(expected, rel=1e-5)
    assert loaded["load_adapter_output"] == pytest.approx(expected, rel=1e-5)


def _git_log(server, repo_id: str) -> list[str]:
    from tests.integration.conftest import _git

    return _git(server.repo_dir(repo_id), "log", "--format=%H", "main").split()
