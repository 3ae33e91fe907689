"""Sharing hf_promptseg artefacts on the Hugging Face Hub: filled model cards and single-commit uploads.

Every artefact we push (SAM conversions, SAM-Adapter/LoRA adapters, DINOv models, DINOv prompt banks) goes up as
weights + config + a model card filled from the templates in `model_cards/`, in **one** commit. transformers and
PEFT write a generic README on their first push; uploading ours in the same commit as the weights means ours wins
and no half-uploaded state is ever visible.

Example (offline: builds the card without pushing):

```python
from hf_promptseg.hub import build_model_card

card = build_model_card("./sam-vit-b", repo_id="me/sam-vit-b")  # kind detected from the directory
print(card.data.pipeline_tag)  # "mask-generation"
```
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData
from safetensors import safe_open

CARD_FILENAME = "README.md"


@dataclass(frozen=True)
class CardKind:
    """How one kind of artefact is described on the Hub."""

    template: str
    library_name: str
    pipeline_tag: str | None
    tags: tuple[str, ...]
    summary: str
    limitations: str


CARD_KINDS: dict[str, CardKind] = {
    "sam": CardKind(
        template="sam.md",
        library_name="transformers",
        pipeline_tag="mask-generation",
        tags=("sam", "segment-anything", "promptable-segmentation", "hf-promptseg"),
        summary="Promptable image segmentation with Segment Anything.",
        limitations="SAM segments what it is prompted with; it does not name objects. Masks near thin structures "
        "and low-contrast boundaries are coarse at the decoder's resolution (4× the image-embedding grid: 256×256 "
        "for the released checkpoints).",
    ),
    "sam_adapter": CardKind(
        template="sam_adapter.md",
        library_name="peft",
        pipeline_tag="image-segmentation",
        tags=("sam", "sam-adapter", "peft", "hf-promptseg"),
        summary="Prompt-free foreground segmentation with an adapter over a frozen SAM encoder.",
        limitations="The adapter is tied to the width and depth of its base model; it segments the foreground class "
        "it was trained for (e.g. camouflaged objects, shadows, polyps) without prompts.",
    ),
    "dinov": CardKind(
        template="dinov.md",
        library_name="transformers",
        pipeline_tag="image-segmentation",
        tags=("dinov", "visual-prompting", "in-context-segmentation", "hf-promptseg"),
        summary="Visual in-context prompting: segment what the reference prompts show.",
        limitations="Quality depends on how representative the reference prompts are; generic segmentation needs "
        "in-context examples for every category it should find.",
    ),
    "dinov_prompt_bank": CardKind(
        template="dinov_prompt_bank.md",
        library_name="hf-promptseg",
        pipeline_tag=None,
        tags=("dinov", "prompt-bank", "in-context-segmentation", "hf-promptseg"),
        summary="In-context examples for DINOv generic segmentation.",
        limitations="A bank only works with the DINOv model it was built with (its features live in that model's "
        "embedding space).",
    ),
}


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def detect_artifact_kind(local_dir: str | os.PathLike) -> str:
    """Which `CARD_KINDS` entry describes the saved artefact in `local_dir`."""
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise FileNotFoundError(f"`local_dir` {local_dir} is not a directory")
    if (local_dir / "adapter_config.json").is_file():
        return "sam_adapter"
    if (local_dir / "prompt_bank_config.json").is_file():
        return "dinov_prompt_bank"
    model_type = str(_read_json(local_dir / "config.json").get("model_type", ""))
    if "dinov" in model_type:
        return "dinov"
    if "sam" in model_type:
        return "sam"
    raise ValueError(
        f"cannot tell what {local_dir} holds: expected adapter_config.json, prompt_bank_config.json or a "
        f"config.json with a SAM or DINOv model_type (got model_type={model_type!r}); pass `kind=` explicitly "
        f"(one of {sorted(CARD_KINDS)})"
    )


def _count_parameters(local_dir: Path, pattern: str) -> int:
    total = 0
    for weights in sorted(local_dir.glob(pattern)):
        with safe_open(str(weights), framework="pt") as handle:
            for name in handle.keys():
                size = 1
                for dim in handle.get_slice(name).get_shape():
                    size *= dim
                total += size
    return total


def _architecture_summary(kind: str, local_dir: Path) -> str:
    config = _read_json(local_dir / "config.json")
    parameters = _count_parameters(local_dir, "*.safetensors")
    if kind == "sam":
        vision = config.get("vision_config", {})
        decoder = config.get("mask_decoder_config", {})
        return (
            f"ViT image encoder: width {vision.get('hidden_size')}, {vision.get('num_hidden_layers')} layers, "
            f"{vision.get('num_attention_heads')} heads, global attention at {vision.get('global_attn_indexes')}, "
            f"window {vision.get('window_size')}, input {vision.get('image_size')}²; two-way mask decoder: width "
            f"{decoder.get('hidden_size')}, {decoder.get('num_hidden_layers')} layers, "
            f"{decoder.get('num_attention_heads')} heads. {parameters:,} parameters."
        )
    return f"`{config.get('model_type', kind)}`, {parameters:,} parameters."


def _eval_table(eval_results: Mapping[str, float], dataset: str) -> str:
    rows = "\n".join(f"| {dataset} | {name} | {value:.4f} |" for name, value in eval_results.items())
    return f"| dataset | metric | value |\n|---|---|---|\n{rows}"


def build_model_card(
    local_dir: str | os.PathLike,
    kind: str | None = None,
    repo_id: str | None = None,
    *,
    base_model: str | None = None,
    datasets: Sequence[str] | None = None,
    license: str = "apache-2.0",
    eval_results: Mapping[str, float] | None = None,
    eval_dataset: str | None = None,
    summary: str | None = None,
    source: str | None = None,
    training: str | None = None,
    extra_tags: Sequence[str] = (),
) -> ModelCard:
    """Fill the template of `kind` (detected from `local_dir` when omitted) into a `huggingface_hub.ModelCard`.

    The YAML metadata carries `library_name`, `pipeline_tag`, `base_model`, `tags`, `datasets`, `license` and, when
    `eval_results` are given (metric name → value on `eval_dataset`), a `model-index` with them.
    """
    local_dir = Path(local_dir)
    kind = kind or detect_artifact_kind(local_dir)
    if kind not in CARD_KINDS:
        raise ValueError(f"`kind` must be one of {sorted(CARD_KINDS)}, got {kind!r}")
    if eval_results and not eval_dataset:
        raise ValueError("`eval_dataset` must name the dataset that `eval_results` were measured on")
    spec = CARD_KINDS[kind]
    repo_id = repo_id or local_dir.resolve().name
    model_name = repo_id.split("/")[-1]
    adapter_config = _read_json(local_dir / "adapter_config.json")
    bank_config = _read_json(local_dir / "prompt_bank_config.json")
    base_model = base_model or adapter_config.get("base_model_name_or_path") or bank_config.get("model_name_or_path")
    card_data = ModelCardData(
        model_name=model_name,
        library_name=spec.library_name,
        pipeline_tag=spec.pipeline_tag,
        base_model=base_model,
        tags=[*spec.tags, *extra_tags],
        datasets=list(datasets) if datasets else None,
        license=license,
        eval_results=[
            EvalResult(
                task_type=spec.pipeline_tag or "image-segmentation",
                dataset_type=eval_dataset,
                dataset_name=eval_dataset,
                metric_type=name,
                metric_value=float(value),
            )
            for name, value in (eval_results or {}).items()
        ]
        or None,
    )
    categories = bank_config.get("categories", [])
    template = resources.files("hf_promptseg") / "model_cards" / spec.template
    return ModelCard.from_template(
        card_data,
        template_str=template.read_text(encoding="utf-8"),
        model_name=model_name,
        repo_id=repo_id,
        base_model=base_model,
        summary=summary or spec.summary,
        limitations=spec.limitations,
        source=source,
        training=training,
        architecture=_architecture_summary(kind, local_dir) if kind in ("sam", "dinov") else None,
        eval_table=_eval_table(eval_results, eval_dataset) if eval_results else None,
        method="LoRA" if str(adapter_config.get("peft_type", "")).upper() == "LORA" else "SAM-Adapter",
        modules_to_save=", ".join(adapter_config.get("modules_to_save") or []) or "none",
        categories=", ".join(map(str, categories)),
        num_categories=len(categories),
    )


def _is_our_card(path: Path) -> bool:
    if not path.is_file():
        return False
    tags = ModelCard.load(path).data.tags or []
    return "hf-promptseg" in tags


def write_model_card(local_dir: str | os.PathLike, **card_kwargs: Any) -> Path:
    """Write the filled card of `local_dir` to `local_dir/README.md` (atomically) and return its path."""
    local_dir = Path(local_dir)
    card = build_model_card(local_dir, **card_kwargs)
    target = local_dir / CARD_FILENAME
    with tempfile.NamedTemporaryFile("w", dir=local_dir, suffix=".tmp", delete=False, encoding="utf-8") as handle:
        handle.write(str(card))
    os.replace(handle.name, target)
    return target


def push_directory(
    local_dir: str | os.PathLike,
    repo_id: str,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload with hf_promptseg",
    token: str | None = None,
    card_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Create `repo_id` if needed and upload every file of `local_dir` plus its model card in exactly one commit.

    `HfApi.upload_folder` may split large folders into several commits; artefacts (weights, config, card) must
    appear together, so the commit is built explicitly. A card of ours already in `local_dir` (tagged
    `hf-promptseg`) is uploaded as is; a missing or generic one (transformers and PEFT write their own on save and
    push) is replaced by ours, filled from the templates (`card_kwargs` go to `build_model_card`). Returns the
    commit URL.
    """
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise FileNotFoundError(f"`local_dir` {local_dir} is not a directory")
    keep_card = _is_our_card(local_dir / CARD_FILENAME)
    files = sorted(
        p
        for p in local_dir.rglob("*")
        if p.is_file() and not p.name.startswith(".") and (keep_card or p != local_dir / CARD_FILENAME)
    )
    if not files:
        raise ValueError(f"`local_dir` {local_dir} holds no files to push")
    operations = [
        CommitOperationAdd(path_in_repo=p.relative_to(local_dir).as_posix(), path_or_fileobj=str(p)) for p in files
    ]
    if not keep_card:
        card = build_model_card(local_dir, repo_id=repo_id, **dict(card_kwargs or {}))
        operations.append(CommitOperationAdd(path_in_repo=CARD_FILENAME, path_or_fileobj=str(card).encode()))
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    info = api.create_commit(repo_id, operations=operations, commit_message=commit_message, revision=revision)
    return str(info)


def push_to_hub(
    artefact: Any,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload with hf_promptseg",
    token: str | None = None,
    **card_kwargs: Any,
) -> str:
    """Push a saved directory, or anything with `save_pretrained` (model, PeftModel, processor, prompt bank).

    Objects are saved to a temporary directory first, so the weights, configs and the filled card land in one
    commit (see `push_directory`).
    """
    if isinstance(artefact, (str, os.PathLike)):
        return push_directory(artefact, repo_id, private, revision, commit_message, token, card_kwargs)
    if not callable(getattr(artefact, "save_pretrained", None)):
        raise TypeError(f"`artefact` must be a directory or have `save_pretrained`, got {type(artefact).__name__}")
    with tempfile.TemporaryDirectory() as staging:
        artefact.save_pretrained(staging)
        return push_directory(staging, repo_id, private, revision, commit_message, token, card_kwargs)


def add_cli_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a saved model, adapter or prompt bank with its model card in one commit",
        description=push_directory.__doc__,
    )
    parser.add_argument("local_dir", type=Path, metavar="DIR")
    parser.add_argument("repo_id", metavar="REPO_ID")
    parser.add_argument("--private", action="store_true", default=None)
    parser.add_argument("--revision", default=None, help="branch to push to (created if missing)")
    parser.add_argument("--commit-message", default="Upload with hf_promptseg")
    parser.add_argument("--base-model", default=None, help="base model id for the card (adapters, prompt banks)")
    parser.add_argument("--license", default="apache-2.0")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    url = push_directory(
        args.local_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        card_kwargs={"base_model": args.base_model, "license": args.license},
    )
    print(url)
    return 0
