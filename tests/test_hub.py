import json

import pytest
import torch
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard
from safetensors.torch import save_file

from hf_promptseg.cli import main as cli_main
from hf_promptseg.hub import build_model_card, detect_artifact_kind, push_directory, write_model_card
from hf_promptseg.utils.files import CorruptFileError, MissingFileError


@pytest.fixture()
def commits(monkeypatch):
    made = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(HfApi, "create_branch", lambda self, repo_id, **kwargs: made.append(("branch", kwargs)))
    monkeypatch.setattr(
        HfApi,
        "create_commit",
        lambda self, repo_id, operations, **kwargs: made.append((repo_id, list(operations), kwargs)) or "url",
    )
    return made


def _sam_dir(path):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "sam", "vision_config": {"hidden_size": 8}}))
    return path


def _adapter_dir(path, peft_type="LORA"):
    path.mkdir()
    config = {"peft_type": peft_type, "base_model_name_or_path": "org/base", "modules_to_save": ["mask_decoder"]}
    (path / "adapter_config.json").write_text(json.dumps(config))
    save_file(
        {"base_model.model.vision_encoder.q.lora_A.weight": torch.zeros(2, 2)}, path / "adapter_model.safetensors"
    )
    return path


def _uploaded(commit):
    return {op.path_in_repo: op.path_or_fileobj for op in commit[1] if isinstance(op, CommitOperationAdd)}


def test_kinds_are_detected_from_saved_files(tmp_path):
    assert detect_artifact_kind(_sam_dir(tmp_path / "sam")) == "sam"
    assert detect_artifact_kind(_adapter_dir(tmp_path / "adapter")) == "sam_adapter"
    (tmp_path / "bank").mkdir()
    (tmp_path / "bank" / "prompt_bank_config.json").write_text("{}")
    assert detect_artifact_kind(tmp_path / "bank") == "dinov_prompt_bank"
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="cannot tell what"):
        detect_artifact_kind(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        detect_artifact_kind(tmp_path / "missing")


def test_card_metadata_and_eval_results_round_trip(tmp_path):
    card = build_model_card(
        _adapter_dir(tmp_path / "adapter", peft_type="SAM_ADAPTER"),
        repo_id="me/cod-adapter",
        datasets=["cod10k"],
        eval_results={"s_measure": 0.81, "mae": 0.05},
        eval_dataset="cod10k",
    )
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.library_name == "peft"
    assert loaded.data.pipeline_tag == "image-segmentation"
    assert loaded.data.base_model == "org/base"
    assert "hf-promptseg" in loaded.data.tags and loaded.data.datasets == ["cod10k"]
    assert {r.metric_type: r.metric_value for r in loaded.data.eval_results} == {"s_measure": 0.81, "mae": 0.05}
    assert "SAM-Adapter adapter" in loaded.text and 'PeftModel.from_pretrained(base, "me/cod-adapter")' in loaded.text
    assert "| cod10k | mae | 0.0500 |" in loaded.text


def test_card_arguments_are_checked(tmp_path):
    sam = _sam_dir(tmp_path / "sam")
    with pytest.raises(ValueError, match="`kind` must be one of"):
        build_model_card(sam, kind="yolo")
    with pytest.raises(ValueError, match="`eval_dataset` must name"):
        build_model_card(sam, eval_results={"miou": 0.5})


def test_push_adds_our_card_in_the_same_commit(tmp_path, commits):
    sam = _sam_dir(tmp_path / "sam")
    push_directory(sam, "me/sam", revision="dev")
    assert commits[0][0] == "branch" and commits[0][1]["branch"] == "dev"
    repo_id, _, kwargs = commits[1]
    uploaded = _uploaded(commits[1])
    assert repo_id == "me/sam" and kwargs["revision"] == "dev" and set(uploaded) == {"config.json", "README.md"}
    assert b"pipeline_tag: mask-generation" in uploaded["README.md"]
    assert not (sam / "README.md").exists(), "pushing must not modify the local directory"


def test_push_keeps_our_card_and_replaces_generic_ones(tmp_path, commits):
    ours = _sam_dir(tmp_path / "ours")
    written = write_model_card(ours, repo_id="me/ours", training="Trained on shapes.")
    push_directory(ours, "me/ours")
    assert _uploaded(commits[0])["README.md"] == str(written)

    generic = _adapter_dir(tmp_path / "generic")
    (generic / "README.md").write_text("---\nlibrary_name: peft\n---\n# Model Card for Model ID\n")
    push_directory(generic, "me/generic")
    card = _uploaded(commits[1])["README.md"]
    assert isinstance(card, bytes) and b"hf-promptseg" in card and b"Model Card for Model ID" not in card


def test_push_refuses_empty_or_missing_dirs(tmp_path, commits):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        push_directory(tmp_path / "empty", "me/x", card_kwargs={"kind": "sam"})
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        push_directory(tmp_path / "nope", "me/x")
    assert commits == []


def test_push_refuses_a_broken_adapter_before_uploading(tmp_path, commits, capsys):
    adapter = _adapter_dir(tmp_path / "adapter")
    weights = adapter / "adapter_model.safetensors"
    weights.write_text("not safetensors")
    with pytest.raises(CorruptFileError, match="not a readable safetensors file") as info:
        push_directory(adapter, "me/adapter")
    assert info.value.path == weights
    weights.unlink()
    with pytest.raises(MissingFileError, match="adapter_model.safetensors: missing"):
        push_directory(adapter, "me/adapter", card_kwargs={"kind": "sam_adapter"})
    assert cli_main(["push", str(adapter), "me/adapter"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hf-promptseg push: error:") and str(weights) in err and "\n" not in err
    assert commits == []


def test_push_cli(tmp_path, commits, capsys):
    adapter = _adapter_dir(tmp_path / "adapter")
    assert cli_main(["push", str(adapter), "me/adapter", "--base-model", "me/base", "--private"]) == 0
    assert capsys.readouterr().out.strip() == "url"
    card = ModelCard(_uploaded(commits[0])["README.md"].decode())
    assert card.data.base_model == "me/base" and "LoRA adapter" in card.text
    assert cli_main(["push", str(tmp_path / "missing"), "me/x"]) == 2
    assert "hf-promptseg push: error:" in capsys.readouterr().err
