"""Ways to run SAM's ViT image encoder on CPU, selected by name (`encoder_backend=`); all take the model as loaded.

- `"default"`: the module as loaded (transformers picks SDPA attention when it can, else eager).
- `"eager"`: transformers' `SamVisionAttention` (matmul + softmax with the relative position bias), the reference.
- `"sdpa"`: the same weights through transformers' own `SamVisionSdpaAttention` (the bias as `attn_mask` of
  `torch.nn.functional.scaled_dot_product_attention`); exact up to float rounding.
- `"compile"`: `"sdpa"` under `torch.compile` (inductor); the first call compiles (minutes for ViT-B on 2 cores).
- `"bf16"`: `"sdpa"` under CPU autocast to bfloat16 (AMX / AVX-512-BF16); not within 1e-4 of fp32, so never a default.

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

from collections.abc import Callable

import torch
from transformers.models.sam import modeling_sam

ENCODER_BACKENDS = ("default", "eager", "sdpa", "compile", "bf16")


def _use_attention(vision_encoder: torch.nn.Module, attention: type) -> None:
    """Switch the ViT blocks' attention class in place. transformers picks it once, at construction; the eager and
    SDPA classes hold the same parameters (one subclasses the other), so swapping the class swaps only the kernel."""
    for module in vision_encoder.modules():
        if isinstance(module, modeling_sam.SamVisionAttention):
            module.__class__ = attention


def image_encoder(model: torch.nn.Module, backend: str = "default") -> Callable[[torch.Tensor], tuple]:
    """A function `pixel_values -> vision encoder output` (`[0]` is the image embedding) for `backend`.

    Backends other than "default" set `model.vision_encoder`'s attention class in place (same weights).
    """
    if backend not in ENCODER_BACKENDS:
        raise ValueError(f"`encoder_backend` must be one of {ENCODER_BACKENDS}, got {backend!r}")
    encoder = model.vision_encoder
    if backend == "default":
        return lambda pixel_values: encoder(pixel_values=pixel_values)
    if backend == "eager":
        _use_attention(encoder, modeling_sam.SamVisionAttention)
        return lambda pixel_values: encoder(pixel_values=pixel_values)
    _use_attention(encoder, modeling_sam.SamVisionSdpaAttention)
    if backend == "sdpa":
        return lambda pixel_values: encoder(pixel_values=pixel_values)
    if backend == "compile":
        compiled = torch.compile(encoder, dynamic=False)
        return lambda pixel_values: compiled(pixel_values=pixel_values)

    def bf16(pixel_values: torch.Tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = encoder(pixel_values=pixel_values)
        output.last_hidden_state = output.last_hidden_state.float()
        return output

    return bf16


__all__ = ["ENCODER_BACKENDS", "image_encoder"]
