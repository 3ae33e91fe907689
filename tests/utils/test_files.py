import json

import pytest
import torch
from safetensors.torch import save_file

from hf_promptseg.utils.checkpoint_io import CheckpointError, load_checkpoint_state_dict
from hf_promptseg.utils.files import CorruptFileError, atomic_output_dir, load_safetensors, read_json


def _write(path, content: bytes):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty file"),
        (b"{", "invalid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"\xff\xfe\x00", "not a UTF-8"),
    ],  # fmt: skip
)
def test_broken_json_names_the_file(tmp_path, content, match):
    path = _write(tmp_path / "adapter_config.json", content)
    with pytest.raises(CorruptFileError, match=match) as info:
        read_json(path)
    assert str(path) in str(info.value) and info.value.path == path and isinstance(info.value, ValueError)


def test_missing_optional_and_required_json(tmp_path):
    assert read_json(tmp_path / "absent.json") == {}
    with pytest.raises(FileNotFoundError, match="absent.json"):
        read_json(tmp_path / "absent.json", required=True)


@pytest.fixture()
def weights(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.arange(1000, dtype=torch.float32)}, path)
    return path


@pytest.mark.parametrize(
    "damage",
    ["empty", "text", "truncated", "header_only"],
)
def test_broken_safetensors_and_checkpoints_name_the_file(tmp_path, weights, damage):
    data = weights.read_bytes()
    content = {"empty": b"", "text": b"not a tensor file\n" * 4, "truncated": data[: len(data) // 2],
               "header_only": data[:8]}[damage]  # fmt: skip
    broken = _write(tmp_path / f"{damage}.safetensors", content)
    with pytest.raises(CorruptFileError, match=damage) as info:
        load_safetensors(broken)
    assert str(broken) in str(info.value)
    with pytest.raises(CorruptFileError, match=damage):
        load_checkpoint_state_dict(broken)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        (b"PK\x03\x04garbage", "truncated or not a torch checkpoint"),
        (b"plain text", "truncated or not a torch checkpoint"),
    ],  # fmt: skip
)
def test_broken_pth_names_the_file(tmp_path, content, match):
    path = _write(tmp_path / "sam_vit_b.pth", content)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint_state_dict(path)
    assert isinstance(info.value, CorruptFileError) and str(path) in str(info.value)


def test_truncated_pth_names_the_file(tmp_path):
    full = tmp_path / "full.pth"
    torch.save({"model": {"w": torch.zeros(5000)}}, full)
    path = _write(tmp_path / "cut.pth", full.read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_checkpoint_state_dict(path)


def test_a_failed_write_leaves_the_previous_directory(tmp_path):
    out = tmp_path / "bank"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.json").write_text(json.dumps({"v": 1}))
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out, overwrite=True) as tmp:
            (tmp / "a.json").write_text("partial")
            raise RuntimeError("killed")
    assert read_json(out / "a.json") == {"v": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["bank"]
