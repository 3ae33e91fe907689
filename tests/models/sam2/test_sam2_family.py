"""SAM2 as a family plug-in: detection, model cards and push for saved SAM2 models and SAM2-based adapters."""

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard
from peft import LoraConfig, get_peft_model

from hf_promptseg.families import FAMILY_NAMES, artifact_kinds
from hf_promptseg.hub import build_model_card, count_parameters, detect_artifact_kind, push_directory
from hf_promptseg.models.sam2 import build_sam2_processor
from hf_promptseg.tuners import SamAdapterConfig
from tests.testing_utils import random_sam, random_sam2


def test_sam2_is_a_family_with_its_kinds():
    assert "sam2" in FAMILY_NAMES
    assert {"sam2", "sam2_adapter"} <= set(artifact_kinds())


def test_saved_sam2_gets_its_card(tmp_path):
    model = random_sam2()
    model.save_pretrained(tmp_path)
    build_sam2_processor(model.config).save_pretrained(tmp_path)
    assert detect_artifact_kind(tmp_path) == "sam2"
    card = build_model_card(tmp_path, repo_id="me/tiny-sam2")
    assert card.data.pipeline_tag == "mask-generation" and "sam2" in card.data.tags
    assert "`Sam2Model`" in card.text and "Hiera image encoder: stage widths [16, 32, 64, 128]" in card.text
    assert f"{count_parameters(tmp_path):,} parameters" in card.text
    assert 'AutoProcessor.from_pretrained("me/tiny-sam2")' in card.text


def test_sam2_adapters_get_the_sam2_card_and_sam_adapters_keep_theirs(tmp_path):
    sam2_adapter = tmp_path / "sam2_adapter"
    get_peft_model(random_sam2(), SamAdapterConfig(scale_factor=8)).save_pretrained(sam2_adapter)
    sam2_lora = tmp_path / "sam2_lora"
    get_peft_model(random_sam2(), LoraConfig(target_modules=["q_proj", "v_proj"])).save_pretrained(sam2_lora)
    sam_adapter = tmp_path / "sam_adapter"
    get_peft_model(random_sam(), SamAdapterConfig(scale_factor=8)).save_pretrained(sam_adapter)
    assert detect_artifact_kind(sam2_adapter) == "sam2_adapter"
    assert detect_artifact_kind(sam2_lora) == "sam2_adapter"
    assert detect_artifact_kind(sam_adapter) == "sam_adapter"
    card = build_model_card(sam2_adapter, repo_id="me/adapter", base_model="me/sam2-base")
    assert 'Sam2Model.from_pretrained("me/sam2-base"' in card.text and "Hiera block" in card.text
    assert "SAM-Adapter adapter" in card.text and "sam2-adapter" in card.data.tags
    assert "LoRA adapter" in build_model_card(sam2_lora, base_model="me/sam2-base").text
    assert "SamModel.from_pretrained" in build_model_card(sam_adapter, base_model="me/sam").text


def test_push_uploads_a_sam2_card(tmp_path, monkeypatch):
    commits = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(
        HfApi, "create_commit", lambda self, repo_id, operations, **kwargs: commits.append(list(operations)) or "url"
    )
    random_sam2().save_pretrained(tmp_path)
    push_directory(tmp_path, "me/sam2")
    uploaded = {op.path_in_repo: op.path_or_fileobj for op in commits[0] if isinstance(op, CommitOperationAdd)}
    card = ModelCard(uploaded["README.md"].decode())
    assert card.data.pipeline_tag == "mask-generation" and "segment-anything-2" in card.data.tags
    assert not (tmp_path / "README.md").exists()
