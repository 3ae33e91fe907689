"""Ways to run SAM's ViT image encoder on CPU, selected by name (`encoder_backend=`); all take the model as loaded.

- `"default"`: the module as loaded (transformers picks SDPA attention when it can, else eager).
- `"eager"`: transformers' `SamVisionAttention` (matmul + softmax with the relative position bias), the reference.
- `"sdpa"`: the same weights through transformers' own `SamVisionSdpaAttention` (the bias as `attn_mask` of
  `torch.nn.functional.scaled_dot_product_attention`); exact up to float rounding.
- `"compile"`: `"sdpa"` under `torch.compile` (inductor); the first call compiles (minutes for ViT-B on 2 cores).
- `"bf16"`: `"sdpa"` under CPU autocast to bfloat16 (AMX / AVX-512-BF16); not within 1e-4 of fp32, so never a default.
- `"onnx"`: the ViT exported with `torch.onnx.export` and run by ONNX Runtime (`pip install hf-promptseg[onnx]`);
  the export happens on the first use (tens of seconds for ViT-B). `optimum`'s exporter is not used: the only
  `optimum-onnx` release pins transformers < 4.58, and this project runs on transformers 5.

`benchmarks/interactive.py --part encoder` measures them side by side; `docs/app.md` has the numbers.

Example:

```python
import torch
from transformers import SamConfig, SamModel
from hf_promptseg.models.sam.encoder_backends import image_encoder

model = SamModel(SamConfig(vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                          "image_size": 256, "global_attn_indexes": [1], "mlp_dim": 64})).eval()
encode = image_encoder(model, "sdpa")
embeddings = encode(torch.randn(1, 3, 256, 256))  # (1, 256, 16, 16)
```
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from transformers.models.sam import modeling_sam

ENCODER_BACKENDS = ("default", "eager", "sdpa", "compile", "bf16", "onnx")


def check_encoder_backend(backend: object) -> str:
    """`backend` if it names one of `ENCODER_BACKENDS`, else a ValueError listing them (before any model work)."""
    if not isinstance(backend, str) or backend not in ENCODER_BACKENDS:
        raise ValueError(f"`encoder_backend` must be one of {ENCODER_BACKENDS}, got {backend!r}")
    return backend


INEXACT_BACKENDS = ("bf16",)  # not within 1e-4 of fp32: their embeddings are cached under their own key

_MEMO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {(backend, weights version): encoder}


def _vision_attentions(vision_encoder: torch.nn.Module) -> list[torch.nn.Module]:
    return [module for module in vision_encoder.modules() if isinstance(module, modeling_sam.SamVisionAttention)]


def _use_attention(modules: list[torch.nn.Module], attention: type | None) -> None:
    """Set the ViT blocks' attention class in place (None: the class they were loaded with). transformers picks it
    once, at construction; the eager and SDPA classes hold the same parameters (one subclasses the other), so
    swapping the class swaps only the kernel. Done at every call, so two backends on one model do not interfere."""
    for module in modules:
        loaded = module.__dict__.setdefault("_hf_promptseg_loaded_class", type(module))
        module.__class__ = loaded if attention is None else attention


def image_encoder(model: torch.nn.Module, backend: str = "default") -> Callable[[torch.Tensor], tuple]:
    """A function `pixel_values -> vision encoder output` (`[0]` is the image embedding) for `backend`.

    Backends set `model.vision_encoder`'s attention class in place (same weights) when called. The function is kept
    per model and backend, so asking again does not compile or export again ("onnx" exports again after the
    weights change). Raises ValueError for an unknown name, or for a model without SAM's ViT (SAM2: "default" only).
    """
    check_encoder_backend(backend)
    encoder = model.vision_encoder
    attentions = _vision_attentions(encoder)
    if backend != "default" and not attentions:
        raise ValueError(
            f"`encoder_backend={backend!r}` needs a SAM / SAM-HQ ViT image encoder; {type(model).__name__} has none "
            "(use 'default')"
        )
    version = sum(param._version for param in encoder.parameters()) if backend == "onnx" else 0
    memo = _MEMO.setdefault(model, {})
    if (backend, version) not in memo:
        memo[(backend, version)] = _build(model, encoder, attentions, backend)
    return memo[(backend, version)]


def _build(model, encoder, attentions, backend: str) -> Callable[[torch.Tensor], tuple]:
    attention = {"default": None, "eager": modeling_sam.SamVisionAttention}.get(
        backend, modeling_sam.SamVisionSdpaAttention
    )
    run = encoder
    if backend == "compile":
        run = torch.compile(encoder, dynamic=False)
    if backend == "onnx":
        _use_attention(attentions, attention)
        return _onnx_encoder(encoder, int(model.config.vision_config.image_size))

    def encode(pixel_values: torch.Tensor):
        _use_attention(attentions, attention)
        if backend != "bf16":
            return run(pixel_values=pixel_values)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = run(pixel_values=pixel_values)
        output.last_hidden_state = output.last_hidden_state.float()
        return output

    return encode


def use_loaded_attention(model: torch.nn.Module) -> None:
    """Give the ViT blocks back the attention class they were loaded with, if a backend switched it."""
    encoder = getattr(model, "vision_encoder", None)
    if encoder is not None:
        _use_attention([m for m in _vision_attentions(encoder) if "_hf_promptseg_loaded_class" in m.__dict__], None)


def image_embeddings_function(model: torch.nn.Module, backend: str = "default") -> Callable[[torch.Tensor], Any]:
    """What `model.get_image_embeddings(pixel_values)` returns, computed with `backend`: the one place the
    pipelines, `PromptedSegmenter` and the app turn an `encoder_backend` name into an encoder."""
    if check_encoder_backend(backend) == "default":
        use_loaded_attention(model)
        return type(model).get_image_embeddings.__get__(model)  # the class's method, even while a cache shadows it
    encode = image_encoder(model, backend)
    return lambda pixel_values: as_image_embeddings(encode(pixel_values))


def as_image_embeddings(output: Any) -> Any:
    """A vision encoder output as `get_image_embeddings` returns it: the embedding, or SAM-HQ's (embedding, ViT
    features) pair."""
    intermediate = getattr(output, "intermediate_embeddings", None)
    return output[0] if intermediate is None else (output[0], intermediate)


class _Embeddings(torch.nn.Module):
    """The vision encoder as a one-tensor function, for export."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.encoder(pixel_values=pixel_values)[0]


def _onnx_encoder(encoder: torch.nn.Module, image_size: int) -> Callable[[torch.Tensor], tuple]:
    """Export `encoder` at (1, 3, image_size, image_size) and run it with an ONNX Runtime CPU session that uses as many
    threads as torch. Exporting writes to a temporary directory, deleted once the session holds the weights."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError("`encoder_backend='onnx'` needs ONNX Runtime: pip install 'hf-promptseg[onnx]'") from error
    import tempfile
    from pathlib import Path

    from transformers.models.sam.modeling_sam import SamVisionEncoderOutput

    example = torch.zeros(1, 3, image_size, image_size)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory(prefix="hf-promptseg-onnx-") as directory, torch.no_grad():
        path = str(Path(directory) / "vision_encoder.onnx")
        torch.onnx.export(_Embeddings(encoder).eval(), (example,), path, input_names=["pixel_values"],
                          output_names=["image_embeddings"], dynamo=True, verbose=False)  # fmt: skip
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run(pixel_values: torch.Tensor) -> SamVisionEncoderOutput:
        if tuple(pixel_values.shape) != tuple(example.shape):
            raise ValueError(
                f"`pixel_values` must have the exported shape {tuple(example.shape)}, got {tuple(pixel_values.shape)}"
            )
        (embeddings,) = session.run(None, {"pixel_values": pixel_values.detach().float().cpu().numpy()})
        return SamVisionEncoderOutput(last_hidden_state=torch.from_numpy(embeddings).to(pixel_values.device))

    return run


__all__ = [
    "ENCODER_BACKENDS",
    "as_image_embeddings",
    "INEXACT_BACKENDS",
    "check_encoder_backend",
    "image_embeddings_function",
    "image_encoder",
]
