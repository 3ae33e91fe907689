"""Uploading hf_promptseg artefacts to the Hugging Face Hub."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi


def push_directory(
    local_dir: str | os.PathLike,
    repo_id: str,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload with hf_promptseg",
    token: str | None = None,
) -> str:
    """Create `repo_id` if needed and upload every file of `local_dir` in exactly one commit.

    `HfApi.upload_folder` may split large folders into several commits; artefacts (weights, config, card) must
    appear together, so the commit is built explicitly. Returns the commit URL.
    """
    local_dir = Path(local_dir)
    files = sorted(p for p in local_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ValueError(f"`local_dir` {local_dir} holds no files to push")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    operations = [
        CommitOperationAdd(path_in_repo=p.relative_to(local_dir).as_posix(), path_or_fileobj=str(p)) for p in files
    ]
    info = api.create_commit(repo_id, operations=operations, commit_message=commit_message, revision=revision)
    return str(info)
