"""Uploading hf_promptseg artefacts to the Hugging Face Hub."""

from __future__ import annotations

import os

from huggingface_hub import HfApi


def push_directory(
    local_dir: str | os.PathLike,
    repo_id: str,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload with hf_promptseg",
    token: str | None = None,
) -> str:
    """Create `repo_id` if needed and upload every file of `local_dir` in one commit; return the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(local_dir), repo_id=repo_id, revision=revision, commit_message=commit_message
    )
    return str(info)
