"""README code blocks that run offline are executed, so the documentation cannot drift from the code."""

from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(section: str) -> str:
    text = README.read_text(encoding="utf-8")
    if section not in text:
        pytest.fail(f"README has no section {section!r}")
    return text.split(section, 1)[1].split("```python", 1)[1].split("```", 1)[0]


def test_dinov_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_python_block("## DINOv: segmentation from visual prompts"), "README.md", "exec"), namespace)
    assert len(namespace["found"]) == 3 and all(r["mask"].shape == (96, 128) for r in namespace["found"])
    assert namespace["instances"] and (tmp_path / "my-bank" / "prompt_bank.safetensors").is_file()
