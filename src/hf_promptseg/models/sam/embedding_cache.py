"""Reuse of SAM image embeddings across calls: an LRU keyed by image content, bounded in megabytes.

The image encoder is almost all of SAM's cost per image; the mask decoder is cheap. A threshold sweep of automatic
mask generation or many clicks on one picture therefore only need one encoder pass, if the embedding is kept. The
key is the hash of the *preprocessed* pixel values (so the image's content and every processor setting that changes
them are part of it) plus the model's identity (its class, `name_or_path`, a hash of its config, the Python object
and the in-place-modification counters of its vision encoder's weights, so training steps invalidate entries).

`pipeline("mask-generation")` and `PromptedSegmenter` share `default_embedding_cache()` unless given their own
(`embedding_cache=EmbeddingCache(...)`) or `embedding_cache=False`. Its size is `HF_PROMPTSEG_EMBEDDING_CACHE_MB`
(default 256; 0 switches it off).

Example:

```python
import torch
from hf_promptseg.models.sam.embedding_cache import EmbeddingCache

cache = EmbeddingCache(max_megabytes=8)
calls = []
compute = lambda: calls.append(1) or torch.zeros(1, 32, 16, 16)
first = cache.get_or_compute("image-a", compute)
again = cache.get_or_compute("image-a", compute)
assert again is first and len(calls) == 1 and cache.hits == 1
```
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")
EMBEDDINGS_FORMAT = "hf_promptseg-sam-embeddings-v1"


def _nbytes(value: Any) -> int:
    if torch.is_tensor(value):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(item) for item in value)
    if isinstance(value, dict):
        return sum(_nbytes(item) for item in value.values())
    return 0


class EmbeddingCache:
    """Least-recently-used store of image embeddings (tensors, or tuples/lists of them), at most `max_megabytes`.

    Thread-safe. Values are returned as stored: callers must not modify them in place. An entry larger than the
    whole budget is computed and returned but not kept. `enabled=False` (or `max_megabytes=0`) computes every time.

    Example:
        >>> cache = EmbeddingCache(max_megabytes=64)
        >>> cache.get_or_compute("key", lambda: torch.ones(2)).tolist()
        [1.0, 1.0]
    """

    def __init__(self, max_megabytes: float = 256, enabled: bool = True) -> None:
        if not isinstance(max_megabytes, (int, float)) or max_megabytes < 0:
            raise ValueError(f"`max_megabytes` must be a number >= 0, got {max_megabytes!r}")
        self.max_bytes = int(max_megabytes * 2**20)
        self.enabled = bool(enabled) and self.max_bytes > 0
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> Any | None:
        """The stored value (marked most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: str, value: Any) -> None:
        """Store `value`, evicting least recently used entries until the budget holds."""
        if not self.enabled:
            return
        size = _nbytes(value)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self.nbytes -= self._entries.pop(key)[1]
            self._entries[key] = (value, size)
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.nbytes -= evicted

    def get_or_compute(self, key: str, compute: Callable[[], T]) -> T:
        """The value stored under `key`, or `compute()` (stored for next time)."""
        if self.enabled:
            value = self.get(key)
            if value is not None:
                self.hits += 1
                return value
        self.misses += 1
        value = compute()
        self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


_DEFAULT: EmbeddingCache | None = None


def default_embedding_cache() -> EmbeddingCache:
    """The process-wide cache shared by the mask-generation pipeline and `PromptedSegmenter`."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = EmbeddingCache(float(os.environ.get("HF_PROMPTSEG_EMBEDDING_CACHE_MB", "256")))
    return _DEFAULT


def resolve_cache(embedding_cache: EmbeddingCache | bool | None) -> EmbeddingCache | None:
    """`None`/`True` -> the shared cache, `False` -> no cache, an `EmbeddingCache` -> itself."""
    if embedding_cache is None or embedding_cache is True:
        return default_embedding_cache()
    if embedding_cache is False:
        return None
    if not isinstance(embedding_cache, EmbeddingCache):
        raise TypeError(f"`embedding_cache` must be an EmbeddingCache, True/False or None, got {embedding_cache!r}")
    return embedding_cache


def pixel_key(pixel_values: torch.Tensor) -> str:
    """Content hash of one preprocessed image (shape, dtype and bytes)."""
    array = pixel_values.detach().cpu().contiguous().numpy()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{array.shape}{array.dtype}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def image_key(image: Any, processor: Any, model: torch.nn.Module) -> str:
    """Cache key from the *raw* image (PIL or array bytes), the processor's settings and the model's identity.

    For callers that want to skip preprocessing on a hit (e.g. an interactive click loop keeping the original
    sizes itself); the pipeline and `PromptedSegmenter` key on the preprocessed pixels (`embedding_key`) instead.
    """
    array = np.asarray(image)
    settings = processor.to_json_string() if hasattr(processor, "to_json_string") else repr(processor)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{array.shape}{array.dtype}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(settings.encode())
    return f"{model_key(model)}|raw:{digest.hexdigest()}"


def stable_model_id(model: torch.nn.Module) -> str:
    """Identity of a model that holds across processes: class, `name_or_path` and a hash of its config."""
    config = model.config.to_dict()
    config.pop("_name_or_path", None)
    config_hash = hashlib.blake2b(json.dumps(config, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()
    return f"{type(model).__name__}:{model.config.name_or_path}:{config_hash}"


def model_key(model: torch.nn.Module) -> str:
    """`stable_model_id` plus this process's object and its encoder weights' in-place-update counters."""
    encoder = getattr(model, "vision_encoder", model)
    version = sum(param._version for param in encoder.parameters())
    first = next(encoder.parameters(), None)
    where = "" if first is None else f"{first.device}:{first.dtype}"
    return f"{stable_model_id(model)}:{id(model)}:{version}:{where}"


def embedding_key(model: torch.nn.Module, pixel_values: torch.Tensor, encoder_backend: str = "default") -> str:
    """The cache key of `model`'s embedding of one preprocessed image (1, 3, H, W) or (3, H, W).

    Backends exact to float rounding share entries; an inexact one (bf16) gets its own."""
    from hf_promptseg.models.sam.encoder_backends import INEXACT_BACKENDS

    backend = f"|{encoder_backend}" if encoder_backend in INEXACT_BACKENDS else ""
    return f"{model_key(model)}{backend}|{pixel_key(pixel_values)}"


def cached_embeddings(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    cache: EmbeddingCache | None,
    encoder_backend: str = "default",
) -> torch.Tensor | tuple:
    """`model.get_image_embeddings(pixel_values)` for one image, with `encoder_backend`
    (`encoder_backends.ENCODER_BACKENDS`), through `cache` (None: always computed)."""
    from hf_promptseg.models.sam.encoder_backends import image_embeddings_function

    embed = image_embeddings_function(model, encoder_backend)
    compute = lambda: embed(pixel_values)  # noqa: E731
    if cache is None:
        return compute()
    return cache.get_or_compute(embedding_key(model, pixel_values, encoder_backend), compute)


@contextmanager
def caching_image_embeddings(
    model: torch.nn.Module, cache: EmbeddingCache | None, precomputed: Any = None, encoder_backend: str = "default"
) -> Iterator[None]:
    """Route `model.get_image_embeddings` through `cache` and `encoder_backend` for the block; `precomputed` answers
    the first call.

    Used around transformers' `MaskGenerationPipeline.preprocess`, which calls `get_image_embeddings` once per crop.
    """
    from hf_promptseg.models.sam.encoder_backends import image_embeddings_function, use_loaded_attention

    if encoder_backend == "default":
        use_loaded_attention(model)
    if cache is None and precomputed is None and encoder_backend == "default":
        yield
        return
    original = model.get_image_embeddings
    if encoder_backend != "default":
        embed = image_embeddings_function(model, encoder_backend)
        original = lambda pixel_values, *args, **kwargs: embed(pixel_values)  # noqa: E731
    pending = [precomputed] if precomputed is not None else []

    def get_image_embeddings(pixel_values, *args, **kwargs):
        if pending:
            value = pending.pop()
            if cache is not None:
                cache.put(embedding_key(model, pixel_values, encoder_backend), value)
            return value
        if cache is None or args or kwargs:
            return original(pixel_values, *args, **kwargs)
        key = embedding_key(model, pixel_values, encoder_backend)
        return cache.get_or_compute(key, lambda: original(pixel_values))

    shadowed = model.__dict__.get("get_image_embeddings")
    model.get_image_embeddings = get_image_embeddings
    try:
        yield
    finally:
        if shadowed is None:
            del model.get_image_embeddings  # the instance attribute; the class method shows again
        else:
            model.get_image_embeddings = shadowed


def save_embeddings(path: str | os.PathLike, model: torch.nn.Module, embeddings: dict[str, Any]) -> Path:
    """Write `{pixel_key: embedding}` (tensor, or SAM-HQ's (embedding, [intermediate...])) to a safetensors file.

    The file records `stable_model_id(model)`; `load_embeddings` refuses it for another model. Written atomically.
    """
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for key, value in embeddings.items():
        if torch.is_tensor(value):
            tensors[key] = value.detach().cpu().contiguous()
        else:
            tensors[key] = value[0].detach().cpu().contiguous()
            for index, layer in enumerate(value[1]):
                tensors[f"{key}.intermediate.{index}"] = layer.detach().cpu().contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, tmp, metadata={"format": EMBEDDINGS_FORMAT, "model": stable_model_id(model)})
    os.replace(tmp, path)
    return path


def load_embeddings(path: str | os.PathLike, model: torch.nn.Module, cache: EmbeddingCache | None = None) -> dict:
    """Read a `save_embeddings` file for `model`; with `cache`, also make its entries hits for this model."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file not found: {path}")
    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as err:
        raise ValueError(f"`{path}` is not a safetensors embeddings file: {err}") from err
    with handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != EMBEDDINGS_FORMAT:
            raise ValueError(f"`{path}` is not an hf_promptseg embeddings file (format {metadata.get('format')!r})")
        if metadata.get("model") != stable_model_id(model):
            raise ValueError(
                f"`{path}` holds embeddings of model {metadata.get('model')!r}, not of {stable_model_id(model)!r}"
            )
        names = list(handle.keys())
        tensors = {name: handle.get_tensor(name) for name in names}
    first = next(model.parameters())
    embeddings: dict[str, Any] = {}
    for name in sorted(n for n in names if ".intermediate." not in n):
        value = tensors[name].to(device=first.device, dtype=first.dtype)
        layers = sorted(
            (n for n in names if n.startswith(f"{name}.intermediate.")), key=lambda n: int(n.rsplit(".")[-1])
        )
        embeddings[name] = (value, [tensors[n].to(first.device, first.dtype) for n in layers]) if layers else value
    if cache is not None:
        prefix = model_key(model)
        for name, value in embeddings.items():
            cache.put(f"{prefix}|{name}", value)
    return embeddings


__all__ = [
    "EmbeddingCache",
    "cached_embeddings",
    "caching_image_embeddings",
    "default_embedding_cache",
    "embedding_key",
    "image_key",
    "load_embeddings",
    "model_key",
    "pixel_key",
    "resolve_cache",
    "save_embeddings",
    "stable_model_id",
]
