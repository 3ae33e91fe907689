"""Saved adapter directories checked before PEFT or transformers reads them, so a broken one names its file.

`check_adapter_dir` reads a local adapter directory the way the loaders will (config JSON, its `peft_type` and
values, the safetensors header and data, the key names a SAM-Adapter must hold) and raises `CorruptFileError`
(`MissingFileError` for an absent file) naming the file and what is wrong. It runs in front of every loader:

- `load_adapter` (ours; `hf-promptseg evaluate --adapter`);
- `SamAdapterConfig.from_pretrained`, through which `PeftModel.from_pretrained` / `PeftModel.load_adapter` read a
  SAM-Adapter (our PEFT config class's own hook);
- transformers' `pipeline(..., model=<adapter dir>)`, `AutoModel*.from_pretrained(<adapter dir>)` and
  `model.load_adapter(<adapter dir>)`, and PEFT's reading of any adapter config: these parse the files before any
  hf_promptseg code runs, so `install_adapter_file_checks` (at `import hf_promptseg`) wraps the two functions they
  read through;
- weights saved for another base model (other widths, another mask decoder): the tuner compares the file's
  safetensors header with the layers it injects (`check_adapter_fits_model`), which every loader goes through.

See docs/errors-and-recovery.md.

```python
import tempfile

from hf_promptseg.models.sam_adapter.loading import check_adapter_dir

try:
    check_adapter_dir(tempfile.mkdtemp())
except FileNotFoundError as err:  # a MissingFileError
    assert "adapter_config.json" in str(err)
```
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from hf_promptseg.utils.files import CorruptFileError, MissingFileError, read_json

CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
SAM_ADAPTER = "SAM_ADAPTER"
PEFT_PREFIX = "base_model.model."  # PEFT's (and transformers') saved adapter keys all start with it
PROMPT_KEY = ".sam_adapter.sam_adapter_"  # the tuner's attribute + PEFT prefix of its layers (tuners/sam_adapter)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _looks_local(name: str) -> bool:
    return not _HUB_ID.match(name) or name.startswith(".")


def _few(names: list[str], count: int = 3) -> str:
    return ", ".join(names[:count]) + (f" (+{len(names) - count} more)" if len(names) > count else "")


def check_adapter_config(config_path: str | os.PathLike) -> dict[str, Any]:
    """The parsed `adapter_config.json` after checking it is a JSON object with a known `peft_type` and valid values.

    Raises `MissingFileError` / `CorruptFileError` naming the file.
    """
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    config_path = Path(config_path)
    if not config_path.is_file():
        raise MissingFileError(config_path, f"missing: {config_path.parent} is not a saved PEFT adapter")
    config = read_json(config_path)
    if "peft_type" not in config:
        raise CorruptFileError(config_path, "has no `peft_type`; expected a PEFT adapter config (save_pretrained)")
    peft_type = config["peft_type"]
    if not isinstance(peft_type, str) or peft_type not in PEFT_TYPE_TO_CONFIG_MAPPING:
        raise CorruptFileError(
            config_path,
            f"unknown `peft_type` {peft_type!r}; expected a PEFT method (SAM_ADAPTER needs `import hf_promptseg`)",
        )
    config_class = PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]
    try:  # what `PeftConfig.from_pretrained` does with the file; PEFT warns about unknown keys itself when it loads
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config_class.from_peft_type(**config_class.check_kwargs(**config))
    except (TypeError, ValueError) as err:
        raise CorruptFileError(config_path, f"invalid {peft_type} config: {err}") from err
    return config


def _safetensors_header(weights: Path) -> dict[str, list[int]]:
    """{key: shape} of a safetensors file after checking that every tensor's data is present."""
    from safetensors import SafetensorError, safe_open

    size = weights.stat().st_size
    if size < 8:
        raise CorruptFileError(weights, f"{size}-byte file; expected a safetensors file (header + data)")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            shapes = {name: list(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CorruptFileError(weights, f"not a readable safetensors file ({err})") from err
    with weights.open("rb") as handle:
        header = int.from_bytes(handle.read(8), "little")
        meta = json.loads(handle.read(header))
    end = max((entry["data_offsets"][1] for key, entry in meta.items() if key != "__metadata__"), default=0)
    if size < 8 + header + end:
        raise CorruptFileError(weights, f"truncated: {size} bytes, the header describes {8 + header + end}")
    return shapes


def _check_sam_adapter_keys(weights: Path, config: dict[str, Any], shapes: dict[str, list[int]]) -> None:
    """The key names every saved SAM-Adapter holds: its prompt generators, one tuning MLP per encoder block and each
    of `modules_to_save`; the prompt layers' widths against the config (other shapes depend on the base model, which
    transformers / PEFT compare)."""
    names = sorted(shapes)
    if not names:
        raise CorruptFileError(weights, "holds no tensors; expected the SAM-Adapter's weights (wrong keys)")
    foreign = [name for name in names if not name.startswith(PEFT_PREFIX)]
    if foreign:
        raise CorruptFileError(
            weights, f"wrong keys: {_few(foreign)} do not start with {PEFT_PREFIX!r}; not saved PEFT adapter weights"
        )
    modules = {name.split(PROMPT_KEY, 1)[1].split(".")[0] for name in names if PROMPT_KEY in name}
    depth = config.get("encoder_depth")
    if not modules:
        raise CorruptFileError(weights, "wrong keys: no SAM-Adapter prompt weights (`...sam_adapter.sam_adapter_*`)")
    expected = [f"lightweight_mlp_{index}" for index in range(depth)] if isinstance(depth, int) else []
    missing = [name for name in expected if name not in modules]
    missing += [
        kind
        for kind in ("embedding_generator", "handcrafted_generator", "shared_mlp")
        if not any(module.startswith(kind) for module in modules)
    ]
    missing += [
        module for module in config.get("modules_to_save") or [] if not any(f".{module}." in name for name in names)
    ]
    if missing:
        raise CorruptFileError(weights, f"wrong keys: no weights for {_few(missing)} (a partial or foreign file)")
    _check_prompt_widths(weights, config, shapes)


def _check_prompt_widths(
    weights: Path, config: dict[str, Any], shapes: dict[str, list[int]], base: str | None = None
) -> None:
    """The prompt layers' widths against the config: each up-projection (`shared_mlp`) maps `width // scale_factor`
    channels back to its encoder width, every tuning MLP is square at one of those adapter widths. With `base`, the
    encoder widths in `config` are those of that base model (`check_weights_fit_recorded_base`)."""
    scale = config.get("scale_factor")
    widths = config.get("encoder_stage_widths") or [config.get("encoder_hidden_size")]
    if base is None:
        source, hint = (
            f"the config (scale_factor {scale}, encoder widths {widths})",
            "the config and the weights come from different saves",
        )
    else:
        source, hint = f"the base model {base} (encoder widths {widths}, scale_factor {scale})", MISMATCH_HINT
    if not isinstance(scale, int) or not all(isinstance(width, int) for width in widths):
        return  # written before the encoder was recorded: transformers / PEFT compare with the model
    adapter_widths = sorted({width // scale for width in widths})
    for name, shape in shapes.items():
        if PROMPT_KEY not in name or not name.endswith(".weight"):
            continue
        module = name.split(PROMPT_KEY, 1)[1].partition(".")[0]  # e.g. "shared_mlp_stage2", "lightweight_mlp_7"
        if module.startswith("shared_mlp"):
            stage = module.removeprefix("shared_mlp").removeprefix("_stage") or "0"
            width = widths[int(stage)] if stage.isdigit() and int(stage) < len(widths) else None
            expected = [width, width // scale] if width else f"a stage of the {len(widths)} recorded"
        elif module.startswith("lightweight_mlp_"):
            expected = [shape[0]] * 2 if shape and shape[0] in adapter_widths else f"[c, c] with c in {adapter_widths}"
        else:
            continue
        if shape != expected:
            raise CorruptFileError(
                weights,
                f"wrong shapes: `{name}` is {shape}, but {source} gives {expected}; {hint}",
            )


def check_adapter_dir(adapter: str | os.PathLike) -> dict[str, Any] | None:
    """The adapter config of a local adapter directory after checking its files; None for a Hub id.

    Raises `MissingFileError` (directory, config or weights missing) or `CorruptFileError` (unreadable or invalid
    config, truncated / non-safetensors weights, weights without the keys a SAM-Adapter holds), naming the file.
    """
    path = Path(adapter)
    if not path.is_dir():
        if _looks_local(str(adapter)):
            raise MissingFileError(path, "adapter directory not found")
        return None
    config = check_adapter_config(path / CONFIG_FILE)
    weights = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
    if weights is None:
        raise MissingFileError(path / WEIGHT_FILES[0], "missing: the adapter's weights were not saved or copied")
    if weights.suffix == ".safetensors":
        shapes = _safetensors_header(weights)
        if config["peft_type"] == SAM_ADAPTER:
            _check_sam_adapter_keys(weights, config, shapes)
    return config


def load_adapter(base_model: Any, adapter: str | os.PathLike, **kwargs: Any) -> Any:
    """`PeftModel.from_pretrained(base_model, adapter)` after `check_adapter_dir`; PEFT / safetensors / JSON errors
    about the adapter's files come back as `CorruptFileError` (weights that do not fit `base_model` are caught by the
    tuner itself, `check_adapter_fits_model`)."""
    from peft import PeftModel
    from safetensors import SafetensorError

    check_adapter_dir(adapter)
    try:
        return PeftModel.from_pretrained(base_model, adapter, **kwargs)
    except (SafetensorError, json.JSONDecodeError, EOFError) as err:
        raise CorruptFileError(adapter, f"the adapter could not be loaded ({err})") from err


MISMATCH_HINT = "saved for a different base model?"
# The adapter directory a SAM-Adapter config was read from, for the tuner to compare its weights with the base it is
# injected into: `SamAdapterConfig.from_pretrained` sets it on the config (PEFT's loaders); transformers' loaders
# build the config through `PeftConfig.from_pretrained` instead, so the checked finder leaves the directory here and
# the tuner takes it when the config it injects is the one saved there (`take_adapter_source`).
SOURCE_ATTRIBUTE = "_hf_promptseg_source"
_PENDING_SOURCE: contextvars.ContextVar[tuple[Path, dict[str, Any]] | None] = contextvars.ContextVar(
    "hf_promptseg_pending_adapter_source", default=None
)
_MATCHED_FIELDS = ("scale_factor", "freq_nums", "embedding_layout", "init_weights", "target_modules",
                   "modules_to_save", "encoder_type", "encoder_hidden_size", "encoder_depth",
                   "encoder_stage_widths", "encoder_stage_depths")  # fmt: skip


def take_adapter_source(config: Any) -> Path | None:
    """The adapter directory `config` was loaded from (None for a config made in code); consumed once."""
    source = config.__dict__.pop(SOURCE_ATTRIBUTE, None)
    pending = _PENDING_SOURCE.get()
    if source is None and pending is not None:
        saved = pending[1]
        if all(_jsonable(getattr(config, name, None)) == saved.get(name) for name in _MATCHED_FIELDS):
            source = pending[0]
    if source is not None:
        _PENDING_SOURCE.set(None)
    return Path(source) if source is not None else None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(sorted(value) if isinstance(value, set) else value))


def check_weights_fit(weights: Path, expected: dict[str, list[int]], target: str) -> None:
    """Compare the shapes a safetensors adapter file records (header only, no tensor is read) with `expected`
    ({saved key without `base_model.model.`: shape}); `CorruptFileError` naming the file, the first key that differs,
    both shapes and `target` (what the weights were to be loaded into). Keys absent from `expected` are left to the
    loader, which reports missing and unexpected keys itself."""
    for key, shape in sorted(_safetensors_header(weights).items()):
        wanted = expected.get(key.removeprefix(PEFT_PREFIX))
        if wanted is not None and list(wanted) != shape:
            raise CorruptFileError(
                weights,
                f"wrong shapes for {target}: `{key}` is {shape} in the file but {list(wanted)} in the model; "
                f"{MISMATCH_HINT}",
            )


def adapter_parameter_shapes(model: Any, adapter_name: str) -> dict[str, list[int]]:
    """{key as `save_pretrained` writes it, without `base_model.model.`: shape} for the SAM-Adapter `adapter_name`
    injected into `model`: its prompt layers and its `modules_to_save` copies (PEFT's own key mappings)."""
    from peft.tuners.tuners_utils import BaseTuner
    from peft.utils.other import AuxiliaryTrainingWrapper

    state = model.state_dict(keep_vars=True)
    shapes = {}
    for name, module in model.named_modules():
        if isinstance(module, AuxiliaryTrainingWrapper):
            for saved, loaded in module.adapter_state_dict_load_map(adapter_name).items():
                shapes[f"{name}.{saved}"] = list(state[f"{name}.{loaded}"].shape)
    for key, value in state.items():
        if PROMPT_KEY in f".{key}" and f".{adapter_name}." in f".{key}.":
            shapes[BaseTuner._remove_adapter_name_from_key(key, adapter_name)] = list(value.shape)
    return {key.removeprefix(PEFT_PREFIX): shape for key, shape in shapes.items()}


def check_adapter_fits_model(adapter_dir: Path, model: Any, adapter_name: str) -> None:
    """The weights saved in `adapter_dir` against the SAM-Adapter just injected into `model` (called by the tuner
    before any loader reads a tensor); `CorruptFileError` from `check_weights_fit`. `.bin` weights are not checked
    (their shapes cannot be read without unpickling the file)."""
    weights = Path(adapter_dir, WEIGHT_FILES[0])
    if weights.is_file():
        check_weights_fit(weights, adapter_parameter_shapes(model, adapter_name), f"this {type(model).__name__}")


def _encoder_widths(base: Path) -> list[int] | None:
    """Encoder width per stage in a base model directory's `config.json` (SAM / SAM-HQ ViT, SAM2 Hiera), or None."""
    if not (base / "config.json").is_file():
        return None
    vision = read_json(base / "config.json").get("vision_config")
    vision = vision if isinstance(vision, dict) else {}
    backbone = vision.get("backbone_config") if isinstance(vision.get("backbone_config"), dict) else {}
    widths = backbone.get("embed_dim_per_stage") or [vision.get("hidden_size")]
    return list(widths) if all(isinstance(width, int) for width in widths) else None


def check_weights_fit_recorded_base(adapter_dir: Path, config: dict[str, Any]) -> None:
    """`pipeline(model=DIR)` / `AutoModel*.from_pretrained(DIR)`: the saved prompt layers against the encoder widths
    in the recorded base's `config.json`, and `modules_to_save` against its `model.safetensors` (headers only),
    before transformers loads anything. Needed because `pipeline()` turns every error raised while its model loads
    into one `ValueError` quoting the tracebacks; the tuner compares everything again once the base is loaded."""
    embedded = (adapter_dir / "config.json").is_file()  # a full model with an embedded adapter is its own base
    base = adapter_dir if embedded else config.get("base_model_name_or_path")
    weights = adapter_dir / WEIGHT_FILES[0]
    if not base or not Path(str(base)).is_dir() or not weights.is_file():
        return  # a Hub id: left to the tuner
    widths = _encoder_widths(Path(str(base)))
    if widths:
        recorded = {**config, "encoder_hidden_size": widths[0], "encoder_stage_widths": widths}
        _check_prompt_widths(weights, recorded, _safetensors_header(weights), base=str(base))
    base_weights = Path(str(base), "model.safetensors")
    if base_weights.is_file():  # (a sharded base is left to the tuner)
        # only the modules the adapter replaces whole: their keys and layout are the base's own
        modules = tuple(f"{module}." for module in config.get("modules_to_save") or [])
        base_shapes = {
            key: shape for key, shape in _safetensors_header(base_weights).items() if key.startswith(modules)
        }
        check_weights_fit(weights, base_shapes, f"the base model {base}")


# transformers modules that import `find_adapter_config_file` by name (each holds its own reference); in the
# `BASE_LOADERS` a found adapter is followed by loading the base model its config names
FINDER_MODULES = (
    "transformers.utils.peft_utils",
    "transformers.utils",
    "transformers.pipelines",
    "transformers.models.auto.auto_factory",
    "transformers.integrations.peft",
)
BASE_LOADERS = ("transformers.pipelines", "transformers.models.auto.auto_factory")


def check_recorded_base(adapter_dir: Path, config: dict[str, Any]) -> None:
    """The base model an adapter directory names (`pipeline(model=DIR)` loads it) must be given and, when it is a
    path, exist; a Hub id is left to the Hub client."""
    if (adapter_dir / "config.json").is_file():  # a full model with an embedded adapter: the base is the directory
        return
    config_path, base = adapter_dir / CONFIG_FILE, config.get("base_model_name_or_path")
    if not base:
        raise CorruptFileError(
            config_path,
            "has no `base_model_name_or_path`, so transformers cannot tell which SAM to load; load the base model and "
            "call `model.load_adapter(DIR)` (or `PeftModel.from_pretrained(base, DIR)`)",
        )
    if _looks_local(str(base)) and not Path(base).is_dir():
        raise MissingFileError(
            Path(base),
            f"the base model named by {config_path} (`base_model_name_or_path`) is not a directory; copy it there or "
            f"edit the config",
        )


def _checked_finder(find_adapter_config_file, check_base: bool = False):
    signature = inspect.signature(find_adapter_config_file)

    @functools.wraps(find_adapter_config_file)
    def find_checked_adapter_config_file(*args, **kwargs):
        found = find_adapter_config_file(*args, **kwargs)
        arguments = signature.bind(*args, **kwargs).arguments
        model_id, subfolder = arguments.get("model_id"), arguments.get("subfolder") or ""
        local = isinstance(model_id, (str, os.PathLike)) and os.path.isdir(model_id)
        if found is not None and local:
            config = check_adapter_dir(Path(model_id, subfolder))
            if check_base:
                check_recorded_base(Path(model_id, subfolder), config)
            if config["peft_type"] == SAM_ADAPTER:
                if check_base:
                    check_weights_fit_recorded_base(Path(model_id, subfolder), config)
                _PENDING_SOURCE.set((Path(model_id, subfolder), config))
        elif found is not None:
            check_adapter_config(found)
        elif local and not (Path(model_id, subfolder) / "config.json").is_file():
            directory = Path(model_id, subfolder)
            if any((directory / name).is_file() for name in WEIGHT_FILES):
                raise MissingFileError(directory / CONFIG_FILE, "missing: the adapter's weights have no config")
        return found

    find_checked_adapter_config_file._hf_promptseg_checked = True
    return find_checked_adapter_config_file


def _checked_from_json_file(from_json_file):
    @functools.wraps(from_json_file)
    def from_checked_json_file(cls, path_json_file, **kwargs):
        check_adapter_config(path_json_file)  # `peft_type` is PEFT's own minimum (`MIN_EXPECTED_CONFIG_KEYS`)
        return from_json_file(cls, path_json_file, **kwargs)

    from_checked_json_file._hf_promptseg_checked = True
    return from_checked_json_file


def install_adapter_file_checks() -> None:
    """Check adapter files before transformers and PEFT parse them (idempotent; run at `import hf_promptseg`).

    transformers' `pipeline()`, `from_pretrained` and `load_adapter` `json.load` an adapter's config right after
    `find_adapter_config_file` located it, and load its safetensors themselves, all before any hf_promptseg code
    runs; PEFT parses every adapter config in `PeftConfig.from_json_file`. Neither offers a hook, so both functions
    are wrapped: the wrapper validates the files (`check_adapter_dir` / `check_adapter_config`, which raise `CorruptFileError`
    with the original error as `__cause__`) and then calls the original unchanged. It catches nothing; a good
    adapter loads exactly as before. Pinned by `tests/models/sam_adapter/test_loading.py`.
    """
    import importlib

    from peft.config import PeftConfigMixin

    from_json_file = PeftConfigMixin.__dict__["from_json_file"].__func__
    if not getattr(from_json_file, "_hf_promptseg_checked", False):
        PeftConfigMixin.from_json_file = classmethod(_checked_from_json_file(from_json_file))
    from transformers.utils import peft_utils

    original = peft_utils.find_adapter_config_file
    if getattr(original, "_hf_promptseg_checked", False):
        return
    for name in FINDER_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "find_adapter_config_file", None) is original:
            module.find_adapter_config_file = _checked_finder(original, check_base=name in BASE_LOADERS)


__all__ = [
    "adapter_parameter_shapes",
    "check_adapter_config",
    "check_adapter_fits_model",
    "check_weights_fit",
    "check_recorded_base",
    "check_adapter_dir",
    "install_adapter_file_checks",
    "load_adapter",
]
