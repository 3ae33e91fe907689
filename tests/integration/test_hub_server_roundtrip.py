"""Round trips through a real HF-compatible server: push lands in its git repos, `from_pretrained` reads over HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from peft import LoraConfig, get_peft_model
from transformers import SamModel

from hf_promptseg.hub import push_to_hub
from tests.testing_utils import tiny_sam_dir


def _sha256_of_dir(local_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in local_dir.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def local_outputs():
    """The prompted output of a locally loaded model, computed like the client does."""
    from tests.integration.hub_client import _prompted_output

    return _prompted_output


def test_pushed_sam_comes_back_byte_identical_and_loads_by_repo_id(git_backed_push, tmp_path, local_outputs):
    server = git_backed_push
    out = tiny_sam_dir(tmp_path / "sam", seed=0, push_to_hub="org/sam-tiny")
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
    first = tiny_sam_dir(tmp_path / "a", seed=1, push_to_hub="org/sam-versions")
    first_sha = _git_log(server, "org/sam-versions")[0]
    second = tiny_sam_dir(tmp_path / "b", seed=2)
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
    base_dir = tiny_sam_dir(tmp_path / "base", seed=3)
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


def test_sam_adapter_loads_by_repo_id_with_peft_and_load_adapter(git_backed_push, tmp_path, local_outputs):
    import hf_promptseg

    server = git_backed_push
    base_dir = tiny_sam_dir(tmp_path / "base", seed=4)
    model = get_peft_model(
        SamModel.from_pretrained(base_dir, dtype=torch.float32), hf_promptseg.SamAdapterConfig(scale_factor=8)
    )
    push_to_hub(
        model, "org/sam-adapter", base_model="org/sam-base", eval_results={"s_measure": 0.5}, eval_dataset="synthetic"
    )

    card = ModelCard.load(server.repo_dir("org/sam-adapter") / "README.md")
    assert card.data.library_name == "peft" and "SAM-Adapter adapter" in card.text
    assert card.data.eval_results[0].metric_value == 0.5
    loaded = server.client("peft", "org/sam-adapter", "--base", str(base_dir))
    expected = local_outputs(model)
    assert loaded["peft_output"] == pytest.approx(expected, rel=1e-5)
    assert loaded["load_adapter_output"] == pytest.approx(expected, rel=1e-5)


def test_dinov_model_and_prompt_bank_round_trip_by_repo_id(git_backed_push, tmp_path):
    from hf_promptseg.models.dinov import (
        DinovForVisualPromptSegmentation,
        DinovImageProcessor,
        DinovProcessor,
        DinovPromptBank,
    )
    from tests.integration.hub_client import _dinov_output
    from tests.models.dinov.test_modeling_dinov import tiny_config

    server = git_backed_push
    torch.manual_seed(0)
    model = DinovForVisualPromptSegmentation(tiny_config()).eval()
    model_dir = tmp_path / "dinov"
    model.save_pretrained(model_dir)
    DinovProcessor(DinovImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})).save_pretrained(model_dir)
    push_to_hub(model_dir, "org/dinov-tiny")
    assert len(_git_log(server, "org/dinov-tiny")) == 2, "the push must be exactly one commit"
    card = ModelCard.load(server.repo_dir("org/dinov-tiny") / "README.md")
    assert card.data.library_name == "transformers" and "dinov" in card.data.tags
    loaded = server.client("dinov", "org/dinov-tiny")
    assert (loaded["model"], loaded["auto_model"], loaded["processor"], loaded["pipeline"]) == (
        "DinovForVisualPromptSegmentation", "DinovModel", "DinovProcessor", "VisualPromptSegmentationPipeline",
    )  # fmt: skip
    assert loaded["output"] == pytest.approx(_dinov_output(model), rel=1e-6)

    first = DinovPromptBank(
        {"cat": torch.randn(3, 32), "dog": torch.randn(2, 32)}, model_name_or_path="org/dinov-tiny"
    )
    first.push_to_hub("org/dinov-bank")
    first_sha = _git_log(server, "org/dinov-bank")[0]
    card = ModelCard.load(server.repo_dir("org/dinov-bank") / "README.md")
    assert card.data.base_model == "org/dinov-tiny" and "Categories (2): cat, dog" in card.text
    second = DinovPromptBank({"cat": torch.randn(4, 32)}, model_name_or_path="org/dinov-tiny")
    second.push_to_hub("org/dinov-bank")
    staged = tmp_path / "bank"
    first.save_pretrained(staged)
    pinned = server.client("files", "org/dinov-bank", "--revision", first_sha)
    assert {k: v for k, v in pinned.items() if k != "README.md"} == _sha256_of_dir(staged)
    latest = server.client("bank", "org/dinov-bank")
    assert latest["categories"] == ["cat"] and latest["counts"] == [4]
    old = server.client("bank", "org/dinov-bank", "--revision", first_sha)
    assert old["categories"] == ["cat", "dog"]
    torch.testing.assert_close(torch.tensor(old["means"]), first.sample_means(4, seed=0), rtol=1e-6, atol=1e-7)


def test_dinov_trainer_pushes_its_best_model_with_the_card(git_backed_push, tmp_path):
    from accelerate.state import AcceleratorState

    from hf_promptseg.models.dinov import DinovForVisualPromptSegmentation
    from hf_promptseg.training.dinov_trainer import DinovTrainer, DinovTrainingArguments
    from tests.integration.hub_client import _dinov_output

    server = git_backed_push
    AcceleratorState._reset_state(True)
    args = DinovTrainingArguments(
        output_dir=str(tmp_path / "run"), train_data="scenes:6:0:64", validation_data="scenes:4:7:64",
        eval_bank_images=2, task="referring", max_steps=2, per_device_train_batch_size=2, num_points=256,
        num_clicks=3, num_content_prompts=2, push_to_hub=True, hub_model_id="org/dinov-trained",
    )  # fmt: skip
    try:
        result = DinovTrainer(args).train()
    finally:
        AcceleratorState._reset_state(True)
    assert len(_git_log(server, "org/dinov-trained")) == 2, "the push must be exactly one commit"
    best = Path(result["best"])
    assert server.client("files", "org/dinov-trained") == _sha256_of_dir(best)
    card = ModelCard.load(server.repo_dir("org/dinov-trained") / "README.md")
    assert card.data.model_name == "dinov-trained" and "dinov" in card.data.tags
    listed = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert listed["referring_miou"] == pytest.approx(result["best_metric"])
    loaded = server.client("dinov", "org/dinov-trained")
    expected = _dinov_output(DinovForVisualPromptSegmentation.from_pretrained(best).eval())
    assert loaded["model"] == "DinovForVisualPromptSegmentation"
    assert loaded["output"] == pytest.approx(expected, rel=1e-6)
