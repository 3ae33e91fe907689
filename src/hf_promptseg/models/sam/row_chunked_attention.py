"""Exact, memory-bounded global attention for SAM's ViT: queries are processed a few image rows at a time.

transformers' `SamVisionAttention` materialises the full (heads, T, T) score matrix plus the decomposed relative
position bias of the same size; for a 1024² ViT-B that is two ~0.8 GB tensors per global layer, which sets the peak
memory of automatic mask generation. Softmax is per query, so evaluating the same arithmetic on blocks of query rows
gives the same result with a (heads, rows·W, T) working set. The eager and SDPA variants are both reproduced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

MIN_TOKENS = 1024  # windowed layers (14×14 tokens) are left alone


def _is_sam_vision_attention(module: nn.Module) -> bool:
    return all(hasattr(module, name) for name in ("qkv", "proj", "get_rel_pos", "num_attention_heads", "use_rel_pos"))


def row_chunked_attention(module: nn.Module, hidden_states: torch.Tensor, rows: int = 8, sdpa: bool = False):
    """`module(hidden_states)` for a (B, H, W, C) input, `rows` query rows of the image at a time."""
    batch, height, width, _ = hidden_states.shape
    heads = module.num_attention_heads
    qkv = module.qkv(hidden_states).reshape(batch, height * width, 3, heads, -1).permute(2, 0, 3, 1, 4)
    query, key, value = qkv.reshape(3, batch * heads, height * width, -1).unbind(0)
    if module.use_rel_pos:
        rel_h = module.get_rel_pos(height, height, module.rel_pos_h)
        rel_w = module.get_rel_pos(width, width, module.rel_pos_w)
    output = torch.empty_like(query)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        block = slice(top * width, bottom * width)
        chunk = query[:, block]
        bias = None
        if module.use_rel_pos:
            grid = chunk.reshape(batch * heads, bottom - top, width, -1)
            along_h = torch.einsum("bhwc,hkc->bhwk", grid, rel_h[top:bottom])
            along_w = torch.einsum("bhwc,wkc->bhwk", grid, rel_w)
            bias = (along_h[:, :, :, :, None] + along_w[:, :, :, None, :]).reshape(batch * heads, chunk.shape[1], -1)
        if sdpa:
            shape = (batch, heads, -1, query.shape[-1])
            mask = None if bias is None else bias.view(batch, heads, chunk.shape[1], -1)
            result = F.scaled_dot_product_attention(
                chunk.reshape(shape), key.view(shape), value.view(shape), attn_mask=mask
            )
            output[:, block] = result.reshape(batch * heads, chunk.shape[1], -1)
        else:
            scores = (chunk * module.scale) @ key.transpose(-2, -1)
            if bias is not None:
                scores = scores + bias
            probabilities = torch.softmax(scores, dtype=torch.float32, dim=-1).to(query.dtype)
            output[:, block] = probabilities @ value
    output = output.reshape(batch, heads, height, width, -1).permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)
    return module.proj(output), None


@contextmanager
def row_chunked_vision_attention(model: nn.Module, rows: int = 4) -> Iterator[None]:
    """Within the block, SAM / SAM-HQ ViT attention over ≥ `MIN_TOKENS` tokens runs row-chunked (same results)."""
    patched = []
    for module in model.modules():
        if not _is_sam_vision_attention(module):
            continue
        sdpa = "Sdpa" in type(module).__name__

        def forward(hidden_states, output_attentions=None, module=module, sdpa=sdpa, original=module.forward):
            if hidden_states.shape[1] * hidden_states.shape[2] < MIN_TOKENS or output_attentions:
                return original(hidden_states, output_attentions=output_attentions)
            return row_chunked_attention(module, hidden_states, rows=rows, sdpa=sdpa)

        module.forward = forward
        patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


__all__ = ["row_chunked_attention", "row_chunked_vision_attention"]
