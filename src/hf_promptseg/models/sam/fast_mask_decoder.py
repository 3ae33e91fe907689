"""SAM's two-way mask decoder for many prompts on one image, without repeating the image-side work per prompt.

transformers' `SamMaskDecoder` copies the (T, C) image tokens once per prompt and pushes every copy through dense
projections and layer norms: for a 64×64 embedding that is ~1.7 GMAC per prompt, almost all of it on tensors that
differ between prompts only by a low-rank update. This module evaluates the same function exactly, in another order:

- image tokens are kept as `X = a ⊙ R + F @ G`: `R` (T, C) shared by all prompts, `a` (P, T) a per-token scale,
  `F` (P, T, k) and `G` (P, k, C) a rank-k per-prompt part (k grows by heads × tokens per image-to-token update);
- an image-to-token attention update `Σ_h A_h V_h W_o,h + b` is exactly such a rank-k term (`A_h` are the (T, n)
  attention maps, `V_h W_o,h` is (n, C));
- a layer norm of `X` stays in this form: the per-token mean and variance come from `R`'s row statistics,
  `R @ Gᵀ` and `G @ Gᵀ`, and `γ`, `β` become shared rows; linear projections distribute over the terms, so
  projecting shared parts happens once per image.

Only prompts whose predicted IoU passes the caller's filter ever get dense image tokens (for the output upscaling).
Every step is a re-association of the stock arithmetic; `tests/models/sam/test_fast_mask_decoder.py` checks it
against `SamMaskDecoder` for SAM, SAM-HQ and SAM-with-adapter weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class FactorizedImageTokens:
    """Per-prompt image tokens `X[p] = scale[p, :, None] * shared + coefficients[p].T @ basis[p]`.

    `coefficients` (P, k, T) and `basis` (P, k, C) live in buffers of a fixed capacity so updates write in place.
    Rows of the basis come in two structured kinds, which keep `shared @ basis.T` cheap: blocks `values @ weight`
    from attention updates (`values` (P, H, n, d) per prompt, `weight` (H, d, C) shared) and rows identical for
    every prompt (biases, layer-norm weights).
    """

    def __init__(self, shared: torch.Tensor, prompts: int, capacity: int, cache: dict | None = None) -> None:
        self.shared = shared  # (T, C)
        self.stage = 0  # layer norms applied so far: `shared` is a function of the image and the stage only
        self._cache = {} if cache is None else cache
        self.scale: torch.Tensor | None = None  # (P, T); None means all ones
        tokens, channels = shared.shape
        self._coefficients = shared.new_empty(prompts, capacity, tokens)
        self._basis = shared.new_empty(prompts, capacity, channels)
        self.rank = 0
        self.blocks: list[tuple[int, torch.Tensor, torch.Tensor, int]] = []  # (first row, values, weight, stage)
        self.common_rows: list[int] = []
        self.ones_row: int | None = None  # a common row whose coefficient is 1 for every token

    def shared_product(self, key: object, compute) -> torch.Tensor:
        """`compute()` of a prompt-independent quantity, computed once per image (the cache outlives the prompts)."""
        key = (key, self.stage)
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def coefficients(self) -> torch.Tensor:
        return self._coefficients[:, : self.rank]

    @property
    def basis(self) -> torch.Tensor:
        return self._basis[:, : self.rank]

    def _append_common_row(self, coefficient: torch.Tensor | float, vector: torch.Tensor) -> int:
        row = self.rank
        self._coefficients[:, row] = coefficient
        self._basis[:, row] = vector
        self.common_rows.append(row)
        self.rank += 1
        return row

    def add_constant(self, vector: torch.Tensor) -> None:
        """X += vector (the same for every token and prompt)."""
        if self.ones_row is None:
            self.ones_row = self._append_common_row(1.0, vector)
        else:
            self._basis[:, self.ones_row] += vector

    def add_attention_update(self, maps: torch.Tensor, values: torch.Tensor, weight: torch.Tensor) -> None:
        """X += Σ_h maps[:, h].T @ values[:, h] @ weight[h]: maps (P, H, n, T), values (P, H, n, d), weight (H, d, C)."""
        heads, count = maps.shape[1:3]
        rows = heads * count
        start = self.rank
        self._coefficients[:, start : start + rows] = maps.flatten(1, 2)
        self._basis[:, start : start + rows].view_as(maps[..., :1].expand(-1, -1, -1, weight.shape[-1])).copy_(
            _per_head(values, weight)
        )
        self.blocks.append((start, values, weight, self.stage))
        self.rank += rows

    def _shared_cross(self) -> torch.Tensor:
        """`basis @ shared.T` (P, k, T), from the structured rows instead of a (P, k, C) × (C, T) product."""
        prompts, tokens = self._coefficients.shape[0], self.shared.shape[0]
        cross = self.shared.new_empty(prompts, self.rank, tokens)
        for start, values, weight, stage in self.blocks:
            heads, count = values.shape[1:3]
            block = cross[:, start : start + heads * count].view(prompts, heads, count, tokens)
            block.copy_(_per_head(values, self.shared_product(("block", stage), lambda w=weight: w @ self.shared.T)))
        for row in self.common_rows:
            # a common row's vector depends on the layer structure only, and its index on the prompt length too
            key = ("common row", row, self._coefficients.shape[1])
            cross[:, row] = self.shared_product(key, lambda r=row: self._basis[0, r] @ self.shared.T)
        return cross

    def layer_norm(self, norm: nn.LayerNorm) -> None:
        """X ← norm(X), in place; each token's mean and variance come from the shared and rank-k parts."""
        channels = self.shared.shape[-1]
        coefficients, basis = self.coefficients, self.basis
        scale = self.scale
        row_sums = self.shared_product("row sums", lambda: self.shared.sum(-1))
        row_squares = self.shared_product("row squares", lambda: self.shared.square().sum(-1))
        mean = row_sums if scale is None else scale * row_sums
        square = row_squares if scale is None else scale.square() * row_squares
        if self.rank:
            mean = mean + (basis.sum(-1)[:, None] @ coefficients)[:, 0]
            # accumulated in place in the (P, k, T) cross term: one pass fewer over it than a separate product
            mixed = self._shared_cross().mul_(2 if scale is None else 2 * scale[:, None])
            mixed.baddbmm_(basis @ basis.transpose(1, 2), coefficients)
            square = square + (mixed.mul_(coefficients)).sum(1)
        mean = mean / channels
        inverse_std = torch.rsqrt((square / channels - mean.square()).clamp(min=0) + norm.eps)
        coefficients.mul_(inverse_std[:, None])
        self.scale = inverse_std if scale is None else scale * inverse_std
        self.shared = self.shared_product(("normed", id(norm)), lambda: self.shared * norm.weight)
        basis.mul_(norm.weight)
        self.blocks = [(start, values, weight * norm.weight, stage) for start, values, weight, stage in self.blocks]
        self.stage += 1
        self._append_common_row(-mean * inverse_std, norm.weight)
        self.ones_row = self._append_common_row(1.0, norm.bias)

    def scores(self, tokens: torch.Tensor, linear: nn.Linear, positional: torch.Tensor | None) -> torch.Tensor:
        """(P, H, n, T) dot products of per-head token vectors (P, H, n, d) with `linear(X + positional)`."""
        heads, head_dim = tokens.shape[1], tokens.shape[-1]
        weight = linear.weight.view(heads, head_dim, -1)  # (H, d, C)
        constant = linear.bias.view(heads, head_dim, 1)
        if positional is not None:
            constant = self.shared_product(("positional", id(linear)), lambda: constant + weight @ positional.T)
        shared = self.shared_product(("scores", id(linear)), lambda: weight @ self.shared.T)  # (H, d, T)
        if self.scale is None:
            result = _per_head(tokens, self.shared_product(("scores+", id(linear)), lambda: shared + constant))
        else:
            result = _per_head(tokens, shared).mul_(self.scale[:, None, None]).add_(_per_head(tokens, constant))
        if self.rank:
            projected_basis = (self.basis @ linear.weight.T).view(tokens.shape[0], self.rank, heads, head_dim)
            mixing = tokens @ projected_basis.permute(0, 2, 3, 1)  # (P, H, n, k)
            result += (mixing.flatten(1, 2) @ self.coefficients).view_as(result)
        return result

    def attend(self, query: torch.Tensor, attention: nn.Module, positional: torch.Tensor) -> torch.Tensor:
        """(P, H, n, d) `attention` of per-head queries over keys `k_proj(X + positional)`, values `v_proj(X)`, while
        X is still the shared tokens (no update, no norm yet): one fused SDPA kernel over the image's cached keys and
        values instead of materialised scores. Attention rows are independent, so the P prompts' queries are stacked
        into one sequence and keys / values are never copied per prompt."""
        heads, head_dim = query.shape[1], query.shape[-1]

        def keys_values() -> tuple[torch.Tensor, torch.Tensor]:
            tokens = self.shared.shape[0]
            key = attention.k_proj(self.shared + positional).view(tokens, heads, head_dim).transpose(0, 1)
            value = attention.v_proj(self.shared).view(tokens, heads, head_dim).transpose(0, 1)
            return key.contiguous()[None], value.contiguous()[None]

        key, value = self.shared_product(("attend", id(attention)), keys_values)
        prompts, _, count, _ = query.shape
        stacked = query.transpose(0, 1).reshape(1, heads, prompts * count, head_dim)
        output = F.scaled_dot_product_attention(stacked, key, value, scale=attention.scaling)
        return output.view(heads, prompts, count, head_dim).transpose(0, 1)

    def weighted_values(self, weights: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        """(P, H, n, d) per-head sums over image tokens of `weights` (P, H, n, T; rows sum to 1) × `linear(X)`."""
        heads = weights.shape[1]
        head_dim = linear.weight.shape[0] // heads
        weight = linear.weight.view(heads, head_dim, -1)
        shared = self.shared_product(("values", id(linear)), lambda: (weight @ self.shared.T).transpose(1, 2))
        scaled = weights if self.scale is None else weights * self.scale[:, None, None]
        result = _per_head(scaled, shared) + linear.bias.view(heads, 1, head_dim)
        if self.rank:
            projected_basis = (self.basis @ linear.weight.T).view(weights.shape[0], self.rank, heads, head_dim)
            mixing = (weights.flatten(1, 2) @ self.coefficients.transpose(1, 2)).view(*weights.shape[:3], self.rank)
            result += mixing @ projected_basis.permute(0, 2, 1, 3)
        return result

    def dense(self, index: torch.Tensor) -> torch.Tensor:
        """The image tokens of the prompts in `index` as a dense (P', T, C) tensor."""
        tokens = self.shared[None].expand(len(index), -1, -1)
        if self.scale is not None:
            tokens = tokens * self.scale[index][..., None]
        return tokens + self.coefficients[index].transpose(1, 2) @ self.basis[index]


def _per_head(tokens: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """(P, H, n, d) @ (H, d, X) -> (P, H, n, X) as a head-major product (broadcasting would copy `shared` P times).

    The result is a permuted view of an (H, P, n, X) tensor.
    """
    prompts, heads, count, head_dim = tokens.shape
    product = tokens.transpose(0, 1).reshape(heads, prompts * count, head_dim) @ shared
    return product.view(heads, prompts, count, -1).transpose(0, 1)


def _in_kernel_order(features: torch.Tensor, levels: int) -> torch.Tensor:
    """(O, 2^L·h, 2^L·w) features as (h·w·4^(L-1), 4·O) rows in the order of `levels` kernel-2 stride-2 matmuls.

    Row (y, x, ky1, kx1, ..., ) and column (ky_L, kx_L, o) hold pixel (2^L·y + ... + ky_L, 2^L·x + ... + kx_L).
    """
    channels, full_height, full_width = features.shape
    height, width = full_height >> levels, full_width >> levels
    grid = features.reshape(channels, height, *([2] * levels), width, *([2] * levels))
    # dims: 0 = o, 1 = y, 2..L+1 = ky1..kyL, L+2 = x, L+3..2L+2 = kx1..kxL
    order = [1, levels + 2]
    for level in range(levels):
        order += [2 + level, levels + 3 + level]
    order.append(0)
    return grid.permute(order).reshape(-1, 4 * channels)


def _split_heads(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    """(P, N, C) -> (P, H, N, C/H)."""
    prompts, tokens, channels = tensor.shape
    return tensor.view(prompts, tokens, heads, channels // heads).transpose(1, 2)


def _output_projection(attention: nn.Module) -> nn.Linear:
    """The attention's output projection (`out_proj` in SAM, `o_proj` in SAM2)."""
    return attention.out_proj if hasattr(attention, "out_proj") else attention.o_proj


def _tokens_to_image(
    attention: nn.Module, query: torch.Tensor, image: FactorizedImageTokens, positional: torch.Tensor
):
    """`attention(query=query, key=image + positional, value=image)` for (P, n, C) prompt tokens."""
    heads = attention.num_attention_heads
    query = _split_heads(attention.q_proj(query), heads)
    if image.rank == 0 and image.scale is None:
        output = image.attend(query, attention, positional)
    else:
        weights = torch.softmax(image.scores(query, attention.k_proj, positional) * attention.scaling, dim=-1)
        output = image.weighted_values(weights, attention.v_proj)
    return _output_projection(attention)(output.transpose(1, 2).flatten(2))


def _image_to_tokens(
    attention: nn.Module,
    image: FactorizedImageTokens,
    positional: torch.Tensor,
    tokens_key: torch.Tensor,
    tokens_value: torch.Tensor,
) -> None:
    """`image += attention(query=image + positional, key=tokens_key, value=tokens_value)`, kept factorized."""
    heads = attention.num_attention_heads
    key = _split_heads(attention.k_proj(tokens_key), heads)  # (P, H, n, d)
    value = _split_heads(attention.v_proj(tokens_value), heads)
    # softmax over the n prompt tokens; the (P, H, n, T) layout keeps T innermost, which is much faster on CPU
    maps = torch.softmax(image.scores(key, attention.q_proj, positional) * attention.scaling, dim=-2)
    head_dim = value.shape[-1]
    output = _output_projection(attention)
    image.add_attention_update(maps, value, output.weight.T.reshape(heads, head_dim, -1))
    image.add_constant(output.bias)


def _token_mlp(mlp: nn.Module, tokens: torch.Tensor, image: FactorizedImageTokens) -> torch.Tensor:
    """`mlp(tokens)` for SAM's `SamMLPBlock` (lin1, act, lin2) with its weights transposed once per image: for a
    click's few tokens, GEMM against (in, out) weights is ~1.7× faster than `nn.Linear`'s (out, in) layout here."""
    if not all(hasattr(mlp, name) for name in ("lin1", "lin2", "act")):
        return mlp(tokens)
    first, second = image.shared_product(
        ("mlp", id(mlp)), lambda: (mlp.lin1.weight.T.contiguous(), mlp.lin2.weight.T.contiguous())
    )
    hidden = mlp.act(torch.addmm(mlp.lin1.bias, tokens.flatten(0, 1), first))
    return torch.addmm(mlp.lin2.bias, hidden, second).view_as(tokens)


@dataclass
class DecodedPrompts:
    """Decoder state for P prompts of one image: output tokens after the transformer and the factorized image."""

    tokens: torch.Tensor  # (P, n, C) final prompt tokens (SAM: IoU token, mask tokens, ...; SAM2: object score first)
    image: FactorizedImageTokens
    iou_scores: torch.Tensor  # (P, num_mask_tokens)
    object_score_logits: torch.Tensor | None = None  # (P, 1), SAM2's object-score head
    high_resolution_features: tuple[torch.Tensor, torch.Tensor] | None = (
        None  # SAM2's (1, C/8, 4h, 4w), (1, C/4, 2h, 2w)
    )


class FastSamMaskDecoder:
    """Runs a transformers `SamMaskDecoder` for many prompts of one image, exactly, sharing image-side work.

    Args:
        mask_decoder: the model's `mask_decoder` (`SamMaskDecoder` or `SamHQMaskDecoder`).

    Example:
        >>> import torch
        >>> from transformers import SamConfig, SamModel
        >>> from hf_promptseg.models.sam.fast_mask_decoder import FastSamMaskDecoder
        >>> model = SamModel(SamConfig()).eval()
        >>> embeddings = torch.randn(1, 256, 64, 64)
        >>> sparse, dense = model.prompt_encoder(torch.rand(1, 8, 1, 2) * 1024, torch.ones(1, 8, 1), None, None)
        >>> decoder = FastSamMaskDecoder(model.mask_decoder)
        >>> decoded = decoder.decode(embeddings, model.get_image_wide_positional_embeddings(), sparse[0], dense[:1])
        >>> decoded.iou_scores.shape
        torch.Size([8, 4])
    """

    iou_token_index = 0  # position of the IoU token among the output tokens
    first_mask_token = 1  # position of the first mask token

    def __init__(self, mask_decoder: nn.Module) -> None:
        self.decoder = mask_decoder
        self.is_hq = hasattr(mask_decoder, "hq_token")
        self._cache: dict = {}
        self._cached_inputs: tuple = ()

    def output_tokens(self) -> torch.Tensor:
        decoder = self.decoder
        parts = [decoder.iou_token.weight, decoder.mask_tokens.weight]
        if self.is_hq:
            parts.append(decoder.hq_token.weight)
        return torch.cat(parts, dim=0)

    @torch.no_grad()
    def decode(
        self,
        image_embeddings: torch.Tensor,
        image_positional_embeddings: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        image_key: object | None = None,
    ) -> DecodedPrompts:
        """Two-way transformer + IoU head for P prompts of one image.

        Args:
            image_embeddings: (1, C, h, w) embedding of the image.
            image_positional_embeddings: (1, C, h, w) dense positional encoding.
            sparse_prompt_embeddings: (P, n_prompt, C) point/box embeddings from the prompt encoder.
            dense_prompt_embeddings: (1, C, h, w) — the same for every prompt (no mask inputs).
            image_key: the caller's name for these three tensors (e.g. the image's hash): while it stays the same,
                the image-side products are reused without comparing the tensors (an interactive click saves
                ~3 ms of `torch.equal` on a 64×64 embedding). None compares the tensors.
        """
        if image_embeddings.shape[0] != 1 or dense_prompt_embeddings.shape[0] != 1:
            raise ValueError("`image_embeddings` and `dense_prompt_embeddings` must hold one image (batch size 1)")
        transformer = self.decoder.transformer
        prompts = sparse_prompt_embeddings.shape[0]
        output_tokens = self.output_tokens()[None].expand(prompts, -1, -1)
        point_embeddings = torch.cat([output_tokens, sparse_prompt_embeddings], dim=1).to(output_tokens.dtype)
        cache = self._image_cache(image_key, image_embeddings, dense_prompt_embeddings, image_positional_embeddings)
        if "keys" not in cache:
            cache["keys"] = (image_embeddings + dense_prompt_embeddings).flatten(2)[0].T.contiguous()  # (T, C)
            cache["positional"] = image_positional_embeddings.flatten(2)[0].T.contiguous()
        positional = cache["positional"]
        count = point_embeddings.shape[1]
        capacity = sum(layer.cross_attn_image_to_token.num_attention_heads * count + 3 for layer in transformer.layers)
        image = FactorizedImageTokens(cache["keys"], prompts, capacity, cache)
        queries = point_embeddings
        for layer in transformer.layers:
            queries, image = self._layer(layer, queries, image, point_embeddings, positional)
        attention_out = _tokens_to_image(
            transformer.final_attn_token_to_image, queries + point_embeddings, image, positional
        )
        queries = transformer.layer_norm_final_attn(queries + attention_out)
        iou_scores = self.decoder.iou_prediction_head(queries[:, self.iou_token_index])
        return DecodedPrompts(tokens=queries, image=image, iou_scores=iou_scores)

    def _image_cache(self, key: object | None, *inputs: torch.Tensor) -> dict:
        """Prompt-independent products, kept while the same image comes back (e.g. with the next point batch)."""
        if key is not None:
            if self._cached_inputs != ("key", key):
                self._cache, self._cached_inputs = {}, ("key", key)
            return self._cache
        same = len(inputs) == len(self._cached_inputs) and all(
            torch.is_tensor(b) and a.shape == b.shape and torch.equal(a, b)
            for a, b in zip(inputs, self._cached_inputs)
        )
        if not same:
            self._cache = {}
            self._cached_inputs = tuple(tensor.clone() for tensor in inputs)
        return self._cache

    @staticmethod
    def _layer(layer, queries, image, point_embeddings, positional):
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(query=queries[None], key=queries[None], value=queries[None])[0][0]
        else:
            query = (queries + point_embeddings)[None]
            queries = queries + layer.self_attn(query=query, key=query, value=queries[None])[0][0]
        queries = layer.layer_norm1(queries)
        queries = queries + _tokens_to_image(
            layer.cross_attn_token_to_image, queries + point_embeddings, image, positional
        )
        queries = layer.layer_norm2(queries)
        queries = layer.layer_norm3(queries + _token_mlp(layer.mlp, queries, image))
        _image_to_tokens(layer.cross_attn_image_to_token, image, positional, queries + point_embeddings, queries)
        image.layer_norm(layer.layer_norm4)
        return queries, image

    @torch.no_grad()
    def low_resolution_masks(
        self, decoded: DecodedPrompts, index: torch.Tensor, shape: tuple[int, int], multimask_output: bool = True
    ) -> torch.Tensor:
        """(P', 3 or 1, 4h, 4w) mask logits of the prompts in `index`, as `SamMaskDecoder` computes them.

        The first transposed convolution (kernel 2, stride 2) is a per-token linear map, so it is applied to the
        factorized image tokens directly instead of to a dense copy of them.
        """
        decoder = self.decoder
        height, width = shape
        count = len(index)
        image = decoded.image
        first, second = decoder.upscale_conv1, decoder.upscale_conv2
        # Channels-last throughout; kernel-2 stride-2 transposed convolutions become matmuls with (C, 2·2·O) weights.
        # Pixels stay in the matmuls' own order, (y, x, ky1, kx1, ky2, kx2) for output pixel (4y+2ky1+ky2,
        # 4x+2kx1+kx2), so only the final masks are permuted into image order.
        first_matrix, first_bias, second_matrix, second_bias = image.shared_product(
            "upscale weights",
            lambda: (
                first.weight.permute(0, 2, 3, 1).flatten(1),
                first.bias.repeat(4),
                second.weight.permute(0, 2, 3, 1).flatten(1),
                second.bias.repeat(4),
            ),
        )
        shared = image.shared_product("upscale", lambda: image.shared @ first_matrix)
        # in place on the one (P', h·w, 2·2·O1) result: each extra pass over it costs as much as the additions
        projected = image.basis[index] @ first_matrix
        if image.ones_row is not None:  # the bias rides on the row whose coefficient is 1 (saves a pass)
            projected[:, image.ones_row] += first_bias
        upscaled = image.coefficients[index].transpose(1, 2) @ projected
        if image.scale is not None:
            upscaled.addcmul_(shared, image.scale[index][..., None])
        else:
            upscaled.add_(shared)
        if image.ones_row is None:
            upscaled.add_(first_bias)
        skips = decoded.high_resolution_features
        if skips is not None:  # SAM2 adds projected Hiera features after each transposed convolution
            upscaled.add_(image.shared_product("skip1", lambda: _in_kernel_order(skips[1][0], 1)))
        upscaled = upscaled.view(count, -1, first.out_channels)
        norm = decoder.upscale_layer_norm
        upscaled = decoder.activation(F.layer_norm(upscaled, norm.normalized_shape, norm.weight, norm.bias, norm.eps))
        upscaled = torch.addmm(second_bias, upscaled.flatten(0, 1), second_matrix)
        if skips is not None:
            upscaled = upscaled.view(count, -1, 4 * second.out_channels)
            upscaled.add_(image.shared_product("skip0", lambda: _in_kernel_order(skips[0][0], 2)))
        upscaled = decoder.activation(upscaled).view(count, -1, second.out_channels)  # (P', h·w·2·2·2·2, O2)
        selected = range(1, decoder.num_mask_tokens) if multimask_output else range(1)
        mask_tokens = decoded.tokens[index]
        first_token = self.first_mask_token
        hyper = torch.stack(
            [decoder.output_hypernetworks_mlps[i](mask_tokens[:, first_token + i]) for i in selected], dim=1
        )
        masks = (upscaled @ hyper.transpose(1, 2)).view(count, height, width, 2, 2, 2, 2, len(selected))
        masks = masks.permute(0, 7, 1, 3, 5, 2, 4, 6)  # (P', K, y, ky1, ky2, x, kx1, kx2)
        return masks.reshape(count, len(selected), 4 * height, 4 * width)
