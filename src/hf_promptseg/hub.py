"""Sharing hf_promptseg artefacts on the Hugging Face Hub: filled model cards and single-commit uploads.

Every artefact a family publishes (converted models, adapters, prompt banks; see `hf_promptseg.families`) goes up as
weights + config + a model card filled from the family's template, in **one** commit. transformers and PEFT write a
generic README on their first push; uploading ours in one commit with the weights means ours wins and no
half-uploaded state is ever visible.

Example (offline: builds the card without pushing):

```python
from hf_promptseg.hub import build_model_card

card = build_model_card("./my-model", repo_id="me/my-model")  # kind detected from the directory
print(card.data.pipeline_tag)
```
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData
from safetensors import safe_open

from hf_promptseg.families import artifact_kinds

CARD_FILENAME = "README.md"


def detect_artifact_kind(local_dir: str | os.PathLike) -> str:
    """Which artefact kind (of any family, see `hf_promptseg.families`) the saved directory `local_dir` holds."""
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise FileNotFoundError(f"`local_dir` {local_dir} is not a directory")
    kinds = artifact_kinds()
    for name, kind in kinds.items():
        if kind.holds(local_dir):
            return name
    raise ValueError(
        f"cannot tell what {local_dir} holds: no family recognises its files (a config.json with a known model_type, "
        f"adapter_config.json, prompt_bank_config.json); pass `kind=` explicitly (one of {sorted(kinds)})"
    )


def count_parameters(local_dir: str | os.PathLike, pattern: str = "*.safetensors") -> int:
    """Number of weights in the safetensors files of `local_dir` (read from their headers, no tensor loaded)."""
    total = 0
    for weights in sorted(Path(local_dir).glob(pattern)):
        with safe_open(str(weights), framework="pt") as handle:
            for name in handle.keys():
                size = 1
                for dim in handle.get_slice(name).get_shape():
                    size *= dim
                total += size
    return total


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
    eval_table: str | None = None,
    limitations: str | None = None,
) -> ModelCard:
    """Fill the card template of artefact `kind` (detected from `local_dir` when omitted) into a `ModelCard`.

    The kind, its template and the values read from the directory come from the family that publishes it
    (`hf_promptseg.families`).

    The YAML metadata carries `library_name`, `pipeline_tag`, `base_model`, `tags`, `datasets`, `license` and, when
    `eval_results` are given (metric name → value on `eval_dataset`), a `model-index` with them. `eval_table`
    (markdown) replaces the card's table of `eval_results`, e.g. to compare with baselines; `limitations` replaces
    the kind's generic limitations.
    """
    local_dir = Path(local_dir)
    kinds = artifact_kinds()
    kind = kind or detect_artifact_kind(local_dir)
    if kind not in kinds:
        raise ValueError(f"`kind` must be one of {sorted(kinds)}, got {kind!r}")
    if eval_results and not eval_dataset:
        raise ValueError("`eval_dataset` must name the dataset that `eval_results` were measured on")
    spec = kinds[kind]
    details = dict(spec.details(local_dir))
    repo_id = repo_id or local_dir.resolve().name
    model_name = repo_id.split("/")[-1]
    detected_base_model = details.pop("base_model", None)
    base_model = base_model or detected_base_model
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
    return ModelCard.from_template(
        card_data,
        template_str=spec.template.read_text(encoding="utf-8"),
        model_name=model_name,
        repo_id=repo_id,
        base_model=base_model,
        summary=summary or spec.summary,
        limitations=limitations or spec.limitations,
        source=source,
        training=training,
        eval_table=eval_table or (_eval_table(eval_results, eval_dataset) if eval_results else None),
        **details,
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
    kind = dict(card_kwargs or {}).get("kind")
    for name, spec in artifact_kinds().items():
        if name == kind or (kind is None and spec.holds(local_dir)):
            spec.check(local_dir)  # a broken artefact is refused before anything is uploaded
            break
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
