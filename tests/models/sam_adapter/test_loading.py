"""Broken adapter directories: every fault names the file, through every loader, before PEFT or safetensors sees it."""

import json
import shutil

import pytest
import torch
from peft import PeftModel, get_peft_model
from peft.config import PeftConfigMixin
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoModelForMaskGeneration, SamConfig, SamModel, pipeline

import hf_promptseg
from hf_promptseg.models.sam_adapter.loading import (
    FINDER_MODULES,
    check_adapter_dir,
    install_adapter_file_checks,
    load_adapter,
)
from hf_promptseg.utils.files import CorruptFileError, MissingFileError
from tests.testing_utils import TINY_SAM, tiny_sam_dir


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny SAM directory and a SAM-Adapter saved over it (its `base_model_name_or_path` points at the SAM)."""
    root = tmp_path_factory.mktemp("adapter")
    base = tiny_sam_dir(root / "base")
    torch.manual_seed(0)
    adapter = root / "adapter"
    get_peft_model(SamModel.from_pretrained(base), hf_promptseg.SamAdapterConfig(scale_factor=8)).save_pretrained(
        adapter
    )
    return base, adapter


@pytest.fixture()
def adapter(saved, tmp_path):
    copy = tmp_path / "adapter"
    shutil.copytree(saved[1], copy)
    return copy


def _edit_config(config, **changes):
    values = json.loads(config.read_text())
    values.update(changes)
    config.write_text(json.dumps({k: v for k, v in values.items() if v is not None}))


def _damage(adapter, kind):
    config, weights = adapter / "adapter_config.json", adapter / "adapter_model.safetensors"
    if kind == "config_empty":
        config.write_text("")
    elif kind == "config_truncated":
        config.write_text(config.read_text()[:40])
    elif kind == "config_not_object":
        config.write_text("[]")
    elif kind == "config_binary":
        config.write_bytes(b"\xff\xfe\x00garbage")
    elif kind == "config_no_peft_type":
        _edit_config(config, peft_type=None)
    elif kind == "config_unknown_peft_type":
        _edit_config(config, peft_type="NOPE")
    elif kind == "config_bad_value":
        _edit_config(config, scale_factor=-1)
    elif kind == "weights_missing":
        weights.unlink()
    elif kind == "weights_empty":
        weights.write_bytes(b"")
    elif kind == "weights_truncated":
        weights.write_bytes(weights.read_bytes()[:-1000])
    elif kind == "weights_text":
        weights.write_text("this is not a safetensors file, just some text\n")
    elif kind == "weights_foreign_keys":
        save_file({"foo.bar": torch.zeros(3)}, weights)
    elif kind == "weights_partial":
        state = load_file(weights)
        save_file({k: v for k, v in state.items() if "lightweight_mlp_1" not in k}, weights)
    return {"config": config, "weights": weights}[kind.split("_")[0]]


CASES = [
    ("config_empty", CorruptFileError, "empty file"),
    ("config_truncated", CorruptFileError, "invalid JSON"),
    ("config_not_object", CorruptFileError, "expected a JSON object, got list"),
    ("config_binary", CorruptFileError, "not a UTF-8 text file"),
    ("config_no_peft_type", CorruptFileError, "has no `peft_type`"),
    ("config_unknown_peft_type", CorruptFileError, "unknown `peft_type` 'NOPE'"),
    ("config_bad_value", CorruptFileError, "invalid SAM_ADAPTER config: `scale_factor` is -1"),
    ("weights_missing", MissingFileError, "adapter_model.safetensors: missing"),
    ("weights_empty", CorruptFileError, "0-byte file"),
    ("weights_truncated", CorruptFileError, "not a readable safetensors file|truncated"),
    ("weights_text", CorruptFileError, "not a readable safetensors file"),
    ("weights_foreign_keys", CorruptFileError, "wrong keys: foo.bar"),
    ("weights_partial", CorruptFileError, "wrong keys: no weights for lightweight_mlp_1"),
]


def _peft_model_load_adapter(base, adapter, good):
    model = PeftModel.from_pretrained(SamModel.from_pretrained(base), good)
    model.load_adapter(adapter, adapter_name="second")
    return model


def _model_load_adapter(base, adapter, good):
    model = SamModel(TINY_SAM)
    model.load_adapter(adapter)
    return model


ENTRY_POINTS = {  # each returns the loaded model
    "load_adapter": lambda base, adapter, good: load_adapter(SamModel(TINY_SAM), adapter),
    "PeftModel.from_pretrained": lambda base, adapter, good: PeftModel.from_pretrained(SamModel(TINY_SAM), adapter),
    "PeftModel.load_adapter": _peft_model_load_adapter,
    "model.load_adapter": _model_load_adapter,
    "AutoModel.from_pretrained": lambda base, adapter, good: AutoModelForMaskGeneration.from_pretrained(adapter),
    "pipeline": lambda base, adapter, good: pipeline("image-segmentation", model=adapter).model,
}
CAUSES = {
    "config_truncated": json.JSONDecodeError,
    "config_binary": UnicodeDecodeError,
    "weights_text": SafetensorError,
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("kind, error, match", CASES)
def test_broken_adapter_dirs_name_the_file(saved, adapter, kind, error, match, entry):
    broken = _damage(adapter, kind)
    with pytest.raises(error, match=match) as info:
        ENTRY_POINTS[entry](saved[0], str(adapter), saved[1])
    assert str(broken) in str(info.value) and info.value.path == broken
    if kind in CAUSES:  # the original error is kept
        assert isinstance(info.value.__cause__, CAUSES[kind])


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_good_adapter_loads_through_every_entry_point(saved, entry):
    model = ENTRY_POINTS[entry](saved[0], str(saved[1]), saved[1])
    expected = load_file(saved[1] / "adapter_model.safetensors")
    key = "base_model.model.vision_encoder.sam_adapter.sam_adapter_shared_mlp.weight"
    loaded = {
        name: value
        for name, value in model.named_parameters()
        if "sam_adapter_shared_mlp" in name and name.endswith("weight")
    }
    assert loaded and all(torch.equal(value, expected[key]) for value in loaded.values())


def test_config_without_weights_and_a_missing_directory(adapter, tmp_path):
    (adapter / "adapter_config.json").unlink()
    with pytest.raises(MissingFileError, match="adapter_config.json: missing"):
        pipeline("image-segmentation", model=str(adapter))
    with pytest.raises(FileNotFoundError, match="adapter_config.json: missing"):
        load_adapter(SamModel(TINY_SAM), adapter)
    with pytest.raises(FileNotFoundError, match="adapter directory not found"):
        check_adapter_dir(tmp_path / "nowhere")
    assert check_adapter_dir("some-user/some-adapter") is None  # a Hub id: left to the Hub client


def test_weights_of_the_wrong_shape_name_the_file(adapter):
    weights = adapter / "adapter_model.safetensors"
    state = load_file(weights)
    key = "base_model.model.mask_decoder.iou_prediction_head.layers.0.weight"
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    save_file(state, weights)
    with pytest.raises(
        CorruptFileError,
        match=rf"wrong shapes for this SamModel: `{key}` is \[257, 256\] in the file but \[256, 256\]",
    ) as info:
        load_adapter(SamModel(TINY_SAM), adapter)
    assert info.value.path == weights


def _adapter_for(config, directory, base, drop=()):
    """A SAM-Adapter trained on a SAM of `config`, recorded as saved over `base` (what a user mixing sizes has)."""
    torch.manual_seed(0)
    get_peft_model(SamModel(config), hf_promptseg.SamAdapterConfig(scale_factor=8)).save_pretrained(directory)
    _edit_config(directory / "adapter_config.json", base_model_name_or_path=str(base), **dict.fromkeys(drop))
    return directory


ENCODER_FIELDS = (
    "encoder_type",
    "encoder_hidden_size",
    "encoder_depth",
    "encoder_stage_widths",
    "encoder_stage_depths",
)
OTHER_BASE = {  # (how the adapter's SAM differs from TINY_SAM, config fields removed, file named, key / text named)
    "wider_encoder_unrecorded": (
        {"vision_config": {"hidden_size": 64, "mlp_dim": 128}},
        ENCODER_FIELDS,  # an adapter saved before the encoder was recorded: only the weights tell
        "adapter_model.safetensors",
        r"`base_model.model.vision_encoder.sam_adapter.sam_adapter_embedding_generator.bias` is \[8\] in the file "
        r"but \[4\] in the model",
    ),
    "wider_encoder_recorded": (
        {"vision_config": {"hidden_size": 64, "mlp_dim": 128}},
        (),
        "adapter_config.json",
        "made for an encoder of width 64 and depth 2, but the base model's encoder has width 32",
    ),
    "bigger_decoder": (
        {"mask_decoder_config": {"iou_head_hidden_dim": 64}},
        (),
        "adapter_model.safetensors",
        r"`base_model.model.mask_decoder.iou_prediction_head.layers.0.bias` is \[64\] in the file but \[256\]",
    ),
}


@pytest.fixture(scope="module")
def other_base_adapters(saved, tmp_path_factory):
    root = tmp_path_factory.mktemp("other-base")
    adapters = {}
    for case, (change, drop, _, _) in OTHER_BASE.items():
        values = TINY_SAM.to_dict()
        for part, update in change.items():
            values[part] = {**values[part], **update}
        adapters[case] = _adapter_for(SamConfig(**values), root / case, saved[0], drop)
    return adapters


# `pipeline` / `AutoModel*` compare the prompt layers with the recorded base's `config.json` widths before loading
BASE_CHECKED = ("pipeline", "AutoModel.from_pretrained")
PROMPT_WIDTHS = (
    "adapter_model.safetensors",
    r"`base_model.model.vision_encoder.sam_adapter.sam_adapter_lightweight_mlp_0.weight` is \[8, 8\], but the base "
    r"model .*base \(encoder widths \[32\], scale_factor 8\) gives \[c, c\] with c in \[4\]",
)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("case", list(OTHER_BASE))
def test_weights_saved_for_another_base_name_the_file_and_key(saved, other_base_adapters, case, entry):
    """Before any tensor is loaded: the tuner compares the file's header with the layers it made (every loader
    injects through it); `pipeline` / `AutoModel` compare with the recorded base's files first (`pipeline()` would
    turn an error raised while loading into its own ValueError)."""
    name, match = OTHER_BASE[case][2:]
    if entry in BASE_CHECKED and case.startswith("wider_encoder"):
        name, match = PROMPT_WIDTHS
    with pytest.raises(CorruptFileError, match=match) as info:
        ENTRY_POINTS[entry](saved[0], str(other_base_adapters[case]), saved[1])
    assert info.value.path == other_base_adapters[case] / name
    assert str(info.value).endswith("saved for a different base model?")


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_every_saved_key_is_compared(tmp_path, family):
    """The shapes the tuner compares cover every key `save_pretrained` writes (SAM ViT and SAM2 Hiera), at the
    saved shapes: a good adapter passes and no key escapes the comparison."""
    from transformers import Sam2Model

    from hf_promptseg.models.sam_adapter.loading import adapter_parameter_shapes
    from tests.testing_utils import tiny_sam2_config

    base = SamModel(TINY_SAM) if family == "sam" else Sam2Model(tiny_sam2_config())
    model = get_peft_model(base, hf_promptseg.SamAdapterConfig(scale_factor=8))
    model.save_pretrained(tmp_path)
    saved = {
        k.removeprefix("base_model.model."): list(v.shape)
        for k, v in load_file(tmp_path / "adapter_model.safetensors").items()
    }
    compared = adapter_parameter_shapes(model.base_model.model, "default")
    assert saved and {key: compared.get(key) for key in saved} == saved


def test_a_good_sam2_adapter_passes_the_recorded_base_comparison(tmp_path):
    """SAM2's Hiera widths are read from `backbone_config.embed_dim_per_stage`: no false alarm on a good adapter."""
    from transformers import Sam2Model

    from tests.testing_utils import tiny_sam2_config

    torch.manual_seed(0)
    Sam2Model(tiny_sam2_config()).save_pretrained(tmp_path / "base")
    model = get_peft_model(Sam2Model.from_pretrained(tmp_path / "base"), hf_promptseg.SamAdapterConfig(scale_factor=8))
    model.save_pretrained(tmp_path / "adapter")
    loaded = AutoModelForMaskGeneration.from_pretrained(tmp_path / "adapter")
    assert any("sam_adapter_shared_mlp" in name for name, _ in loaded.named_parameters())


def test_the_shape_check_comes_before_any_tensor_is_read(saved, other_base_adapters, monkeypatch):
    import peft.utils.save_and_load

    def no_tensor_reads(*args, **kwargs):
        raise AssertionError("PEFT read the adapter's tensors before the shape check")

    monkeypatch.setattr(peft.utils.save_and_load, "safe_load_file", no_tensor_reads)  # what `load_peft_weights` uses
    with pytest.raises(CorruptFileError, match="wrong shapes for this SamModel"):
        PeftModel.from_pretrained(SamModel(TINY_SAM), str(other_base_adapters["bigger_decoder"]))
    with pytest.raises(AssertionError, match="PEFT read"):  # the patch is in PEFT's path: a good adapter gets there
        PeftModel.from_pretrained(SamModel(TINY_SAM), str(saved[1]))


def test_only_a_config_read_from_a_directory_is_compared_and_only_once(other_base_adapters):
    """`SamAdapterConfig.from_pretrained(DIR)` ties the config to DIR's weights for its first injection (PEFT's
    loaders read the config that way); configs made in code, and later injections, compare nothing."""
    config = hf_promptseg.SamAdapterConfig.from_pretrained(str(other_base_adapters["bigger_decoder"]))
    with pytest.raises(CorruptFileError, match="saved for a different base model"):
        get_peft_model(SamModel(TINY_SAM), config)
    assert any("sam_adapter" in name for name, _ in get_peft_model(SamModel(TINY_SAM), config).named_parameters())
    fresh = hf_promptseg.SamAdapterConfig(scale_factor=8)
    assert get_peft_model(SamModel(TINY_SAM), fresh).peft_config["default"] is fresh


def test_a_directory_without_config_through_peft_names_the_path(adapter):
    """PEFT reads `adapter_config.json` in `PeftConfig._get_peft_type` before any wrapped function: its own error."""
    (adapter / "adapter_config.json").unlink()
    with pytest.raises(ValueError, match=r"Can't find 'adapter_config.json' at '.*adapter'"):
        PeftModel.from_pretrained(SamModel(TINY_SAM), str(adapter))


def test_the_checks_wrap_what_transformers_and_peft_read_through():
    """Pins the transformers / PEFT functions the checks wrap; fails when a new version reads adapters elsewhere."""
    import importlib

    install_adapter_file_checks()  # idempotent
    for name in FINDER_MODULES:
        finder = importlib.import_module(name).find_adapter_config_file
        assert finder._hf_promptseg_checked and finder.__wrapped__.__module__ == "transformers.utils.peft_utils"
    assert PeftConfigMixin.from_json_file.__func__._hf_promptseg_checked
    assert not hasattr(PeftConfigMixin.from_json_file.__func__.__wrapped__, "_hf_promptseg_checked")


def test_other_peft_methods_pass_the_checks(saved, tmp_path):
    from peft import LoraConfig

    lora = tmp_path / "lora"
    get_peft_model(SamModel.from_pretrained(saved[0]), LoraConfig(r=2, target_modules=["qkv"])).save_pretrained(lora)
    assert check_adapter_dir(lora)["peft_type"] == "LORA"
    model = AutoModelForMaskGeneration.from_pretrained(lora)
    assert any("lora_A" in name for name, _ in model.named_parameters())
    (lora / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(CorruptFileError, match="0-byte file"):
        AutoModelForMaskGeneration.from_pretrained(lora)


def test_a_missing_recorded_base_is_named_where_transformers_would_load_it(adapter, tmp_path):
    gone = tmp_path / "moved" / "base"
    _edit_config(adapter / "adapter_config.json", base_model_name_or_path=str(gone))
    for load in (lambda: pipeline("image-segmentation", model=str(adapter)),
                 lambda: AutoModelForMaskGeneration.from_pretrained(adapter)):  # fmt: skip
        with pytest.raises(MissingFileError, match="the base model named by .*adapter_config.json") as info:
            load()
        assert info.value.path == gone
    model = SamModel(TINY_SAM)
    model.load_adapter(str(adapter))  # the recorded base plays no part here
    assert any("sam_adapter" in name for name, _ in model.named_parameters())
    _edit_config(adapter / "adapter_config.json", base_model_name_or_path=None)
    with pytest.raises(CorruptFileError, match="has no `base_model_name_or_path`"):
        pipeline("image-segmentation", model=str(adapter))


def test_a_config_from_another_save_than_the_weights_is_named(saved, adapter):
    _edit_config(adapter / "adapter_config.json", scale_factor=4)  # the weights were saved with 8
    for entry in ("pipeline", "PeftModel.from_pretrained", "model.load_adapter"):
        with pytest.raises(
            CorruptFileError, match=r"wrong shapes: .*lightweight_mlp_0.weight` is \[4, 4\].*c in \[8\]"
        ):
            ENTRY_POINTS[entry](saved[0], str(adapter), saved[1])
