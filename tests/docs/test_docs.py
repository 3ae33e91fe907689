"""Every code block of README.md and docs/*.md runs, so the documentation cannot drift from the code.

Per page, in a fresh working directory (with `examples/` linked in and the files a page names prepared by
`PAGE_FILES`): ```python blocks run in order in one namespace; in ```bash blocks each `hf-promptseg` line runs
in-process, `train` lines (and `accelerate launch` / `torchrun` launches of it) are parsed with the trainer's own
argument parser (training itself runs in tests/training), `python <script>` lines must name an existing script and
`make <target>` lines an existing target. ```text blocks are output, not run, but the scripts they name must exist.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from hf_promptseg.cli import main as cli_main
from hf_promptseg.commands.train import parse_train_arguments
from tests.conftest import fixture_dir

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def code_blocks(page: Path) -> list[tuple[str, str]]:
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(page.read_text(encoding="utf-8"))]


def _photo(directory: Path) -> None:
    from PIL import Image

    from hf_promptseg.data.scenes import make_scenes

    Image.fromarray(make_scenes(1, seed=3, height=180, width=240)[0].image).save(directory / "photo.jpg")


def _sam_checkpoint(directory: Path) -> None:
    from hf_promptseg.models.sam.convert_sam_checkpoint import to_segment_anything_state_dict
    from tests.testing_utils import random_sam

    torch.save(to_segment_anything_state_dict(random_sam().state_dict()), directory / "sam_checkpoint.pth")


def _sam_adapter_checkpoint(directory: Path) -> None:
    shutil.copy(
        fixture_dir("sam_adapter") / "reference_state_dict.safetensors", directory / "model_epoch_best.safetensors"
    )


def _dinov_checkpoint(directory: Path) -> None:
    folder = fixture_dir("dinov")
    shutil.copy(folder / "reference_state_dict.safetensors", directory / "dinov_checkpoint.safetensors")
    shutil.copy(folder / "reference_config.json", directory / "reference_config.json")


def _hub_artefacts(directory: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import SamModel

    from tests.testing_utils import tiny_sam_dir

    sam_dir = tiny_sam_dir(directory / "sam-vit-b")
    adapter = get_peft_model(SamModel.from_pretrained(sam_dir), LoraConfig(target_modules=["qkv"], r=2))
    adapter.peft_config["default"].base_model_name_or_path = "./sam-vit-b"
    adapter.save_pretrained(directory / "cod-adapter")


PAGE_FILES: dict[str, list[Callable[[Path], None]]] = {
    "sam.md": [_photo, _sam_checkpoint],
    "sam-adapter.md": [_sam_adapter_checkpoint],
    "dinov.md": [_dinov_checkpoint],
    "hub.md": [_hub_artefacts],
}


@pytest.fixture
def recorded_commits(monkeypatch):
    """Hub pages push for real through `HfApi`, recorded at the commit (the HTTP path is tested in tests/integration)."""
    from huggingface_hub import HfApi

    made = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(HfApi, "create_branch", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(
        HfApi, "create_commit", lambda self, repo_id, operations, **kwargs: made.append(repo_id) or "commit-url"
    )
    return made


def _logical_lines(block: str) -> list[str]:
    lines, current = [], ""
    for raw in block.splitlines():
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        command = current.split(" #", 1)[0].strip() if not current.lstrip().startswith("#") else ""
        if command:
            lines.append(command)
        current = ""
    return lines


def _train_arguments(words: list[str]) -> list[str]:
    return words[words.index("train") + 1 :]


def run_shell_line(line: str) -> None:
    words = shlex.split(line)
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    program = words[0]
    if program == "hf-promptseg" and words[1] == "train":
        parse_train_arguments(_train_arguments(words))
    elif program == "hf-promptseg":
        assert cli_main(words[1:]) == 0, line
    elif program in ("accelerate", "torchrun"):
        assert "hf_promptseg" in words and "train" in words, f"unknown launch in docs: {line}"
        parse_train_arguments(_train_arguments(words))
    elif program == "python":
        assert (REPO / words[1]).is_file(), f"{line}: no script {words[1]}"
    elif program == "make":
        assert re.search(rf"^{words[1]}:", (REPO / "Makefile").read_text(), re.MULTILINE), line
    elif program == "pip":
        assert words[1] == "install", line
    else:
        raise AssertionError(f"docs run no {program!r} command; teach tests/docs/test_docs.py or use a text block")


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page_code_blocks_run(page, tmp_path, monkeypatch, recorded_commits):
    blocks = code_blocks(page)
    assert blocks, f"{page.name} has no code block"
    for prepare in PAGE_FILES.get(page.name, []):
        prepare(tmp_path)
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    for index, (language, code) in enumerate(blocks):
        where = f"{page.relative_to(REPO)} block {index}"
        if language == "python":
            exec(compile(code, where, "exec"), namespace)
        elif language in ("bash", "sh"):
            for line in _logical_lines(code):
                run_shell_line(line)
        else:
            for line in _logical_lines(code):
                script = re.match(r"python (\S+\.py)", line)
                if script:
                    assert (REPO / script.group(1)).is_file(), f"{where}: no script {script.group(1)}"
    if page.name == "hub.md":
        assert recorded_commits == ["me/sam-vit-b", "me/cod-adapter", "me/cod-adapter"]


def test_every_docs_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme, f"README does not link docs/{page.name}"


def test_fences_are_balanced():
    for page in PAGES:
        assert page.read_text(encoding="utf-8").count("```") % 2 == 0, page.name
