"""Random weights that keep activations O(1) through a SAM-family model (for benchmarks and tests, not training).

transformers' small-std initialisation makes every prompt of an untrained SAM give the same mask and IoU, so there
is nothing to compare; fan-in-scaled weights and unit-variance embeddings give prompt-dependent outputs.
"""

from __future__ import annotations

import torch
from torch import nn


def variance_preserving_init(model: nn.Module, seed: int | None = 0) -> nn.Module:
    """Re-draw `model`'s weights in place: linear / conv weights N(0, 1/fan_in), biases N(0, 0.1²), embeddings and
    the positional Fourier matrices N(0, 1); returns the model in eval mode. `seed=None` keeps the current RNG state.

    Example:
        >>> from transformers import SamConfig, SamModel
        >>> model = variance_preserving_init(SamModel(SamConfig()))
    """
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = module.in_channels if isinstance(module, nn.ConvTranspose2d) else module.weight[0].numel()
                module.weight.normal_(0, fan_in**-0.5)
                if module.bias is not None:
                    module.bias.normal_(0, 0.1)
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0, 1)
        model.shared_image_embedding.positional_embedding.normal_(0, 1)
        model.prompt_encoder.shared_embedding.positional_embedding.normal_(0, 1)
    return model.eval()


__all__ = ["variance_preserving_init"]
