"""CLI error battery: broken files and bad arguments print one line naming the file / argument and exit 2."""

import pytest

from hf_promptseg.cli import main as cli_main
from hf_promptseg.utils.files import CorruptFileError


def _run(capsys, argv):
    code = cli_main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def _file(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "command, name, content, match",
    [
        ("sam", "sam_vit_b.pth", b"", "empty (0-byte) file"),
        ("sam", "sam_vit_b.pth", b"PK\x03\x04 truncated zip", "truncated or not a torch checkpoint"),
        ("sam", "sam_vit_b.pth", b"just text", "truncated or not a torch checkpoint"),
        ("sam", "sam_vit_b.safetensors", b"just some text, not tensors", "not a readable safetensors file"),
        ("sam", "sam_vit_b.safetensors", b"", "empty (0-byte) file"),
        ("dinov", "model_swinT.safetensors", b"a text file named .safetensors\n", "not a readable safetensors file"),
        ("dinov", "model_swinT.pth", b"", "empty (0-byte) file"),
        ("dinov", "model_swinT.pth", b"not a pickle at all", "not a plain tensor checkpoint"),
        ("sam-adapter", "sam_adapter.pth", b"", "empty (0-byte) file"),
    ],
)
def test_convert_broken_checkpoints(tmp_path, capsys, command, name, content, match):
    path = _file(tmp_path, name, content)
    code, err = _run(capsys, ["convert", command, str(path), str(tmp_path / "out")])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert str(path) in err and match in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "config, flags, match",
    [
        (("run.json", b"{"), [], "run.json: invalid JSON"),
        (("run.json", b""), [], "run.json: empty file"),
        (("run.yaml", b"a: [1, 2"), [], "run.yaml: invalid YAML"),
        (("run.yaml", b"- 1\n- 2\n"), [], "run.yaml: expected a mapping"),
        (("run.yaml", b"learning_rat: 0.1\n"), [], "unknown arguments ['learning_rat']"),
        (("run.toml", b"x = 1"), [], "must be .yaml, .yml or .json"),
        (None, ["--config", "missing.yaml"], "config file not found: missing.yaml"),
        (None, ["--learning_rate", "-1"], "`learning_rate` is -1"),
        (None, ["--learning_rate", "nan"], "`learning_rate` is nan"),
        (None, ["--validation_fraction", "1.5"], "`validation_fraction` is 1.5"),
        (None, ["--method", "prefix"], "`method` must be one of"),
        (None, ["--adapter_freq_nums", "1"], "`adapter_freq_nums` is 1"),
        (None, ["--lora_r", "0"], "`lora_r` is 0"),
        (None, ["--image_size", "8"], "`image_size` is 8; expected an integer >= 16"),
        (None, ["--warmup_steps", "-2"], "`warmup_steps` is -2"),
        (None, ["--per_device_train_batch_size", "0"], "`per_device_train_batch_size` must be positive"),
        (None, ["--max_grad_norm", "-1"], "`max_grad_norm` is -1"),
        (None, ["--mixed_precision", "fp8"], "`mixed_precision` must be one of"),
    ],
)
def test_train_bad_configs_and_arguments(tmp_path, capsys, config, flags, match):
    argv = ["train", "--output_dir", str(tmp_path / "run"), "--train_data", "synthetic:4", *flags]
    if config is not None:
        argv += ["--config", str(_file(tmp_path, *config))]
    code, err = _run(capsys, argv)
    assert code == 2 and len(err.splitlines()) == 1 and match in err, err
    assert not (tmp_path / "run").exists()


def test_convert_dinov_with_a_broken_reference_config(tmp_path, capsys):
    from tests.conftest import fixture_dir

    checkpoint = fixture_dir("dinov") / "reference_state_dict.safetensors"
    config = _file(tmp_path, "reference_config.json", b'{"MODEL": ')
    argv = ["convert", "dinov", str(checkpoint), str(tmp_path / "out"), "--reference-config", str(config)]
    code, err = _run(capsys, argv)
    assert code == 2 and str(config) in err and "invalid JSON" in err and not (tmp_path / "out").exists()


def test_evaluate_with_a_broken_adapter_names_the_file(tmp_path, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "SAM_ADAPTER"')
    code, err = _run(
        capsys, ["evaluate", "--model", "random:tiny", "--adapter", str(adapter), "--data", "synthetic:2"]
    )
    assert code == 2 and str(adapter / "adapter_config.json") in err and "invalid JSON" in err


def test_debug_shows_the_traceback(tmp_path):
    path = _file(tmp_path, "sam.pth", b"")
    with pytest.raises(CorruptFileError, match="sam.pth"):
        cli_main(["--debug", "convert", "sam", str(path), str(tmp_path / "out")])
    with pytest.raises(ValueError, match="`learning_rate` is -1"):
        cli_main(["train", "--learning_rate", "-1", "--debug"])


@pytest.fixture(scope="module")
def broken_adapter(tmp_path_factory):
    """A SAM-Adapter over a tiny SAM directory whose weights file is a text file."""
    import torch
    from peft import get_peft_model
    from transformers import SamModel

    import hf_promptseg
    from tests.testing_utils import tiny_sam_dir

    root = tmp_path_factory.mktemp("cli-adapter")
    base = tiny_sam_dir(root / "base")
    torch.manual_seed(0)
    adapter = root / "adapter"
    get_peft_model(SamModel.from_pretrained(base), hf_promptseg.SamAdapterConfig(scale_factor=8)).save_pretrained(
        adapter
    )
    (adapter / "adapter_model.safetensors").write_text("a text file named .safetensors\n")
    return base, adapter


@pytest.mark.parametrize("command", ["evaluate", "segment", "app"])
def test_commands_taking_an_adapter_name_its_broken_file(tmp_path, capsys, broken_adapter, command):
    base, adapter = broken_adapter
    image = tmp_path / "image.png"
    __import__("PIL.Image").Image.new("RGB", (32, 32)).save(image)
    argv = {
        "evaluate": ["evaluate", "--model", str(base), "--adapter", str(adapter), "--data", "synthetic:2"],
        "segment": ["segment", str(image), "--points", "5,5", "--model", str(adapter), "--out", str(tmp_path / "o")],
        "app": ["app", "--adapter", str(adapter)],
    }[command]
    code, err = _run(capsys, argv)
    error = err.splitlines()[-1]  # the lines above are weight-loading progress bars of the base SAM
    assert code == 2 and "Traceback" not in err and error.startswith(f"hf-promptseg {command}: error:")
    assert str(adapter / "adapter_model.safetensors") in error and "not a readable safetensors file" in error
