"""Prompt banks: per-category visual-prompt tokens for DINOv generic segmentation from in-context examples.

Built from (image, mask, label) examples with a DINOv model; saved as `prompt_bank.safetensors` (one
`tokens.<i>` tensor per category, (count, hidden)) + `prompt_bank_config.json` (category names, counts, the model
it was built with). At inference `num_examples` tokens per category (default 16) are drawn **with replacement
from a seeded generator** and averaged into one query per category — the reference draws with Python's unseeded
`random`, so its results change run to run; here the same bank and seed always give the same queries.

Label pairing: the reference builds its bank labels grouped by category while its tokens stay in instance order,
so whenever an image's instances are not sorted by category, tokens are filed under the wrong category
(spec §7). Here each token keeps its own label; `reference_label_order=True` reproduces the reference's pairing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

BANK_WEIGHTS = "prompt_bank.safetensors"
BANK_CONFIG = "prompt_bank_config.json"
FORMAT_VERSION = 1


def _reference_label_order(labels: list) -> list:
    """The reference's labels for one image: grouped by category in first-appearance order, not per instance."""
    order: dict[Any, int] = {}
    for label in labels:
        order[label] = order.get(label, 0) + 1
    return [label for label, count in order.items() for _ in range(count)]


def _rows(examples: Any, image_column: str, mask_column: str, label_column: str) -> Iterable[tuple[Any, Any, Any]]:
    if isinstance(examples, Mapping):
        yield from zip(examples[image_column], examples[mask_column], examples[label_column])
        return
    for row in examples:
        yield row[image_column], row[mask_column], row[label_column]


class DinovPromptBank:
    """Visual-prompt tokens per category; `category_queries` turns them into DINOv content queries.

    Example:
        >>> import torch
        >>> from hf_promptseg.models.dinov import DinovPromptBank
        >>> bank = DinovPromptBank({"cat": torch.randn(3, 8), "dog": torch.randn(1, 8)}, model_name_or_path="tiny")
        >>> bank.categories, bank.counts
        (['cat', 'dog'], [3, 1])
        >>> bank.sample_means(num_examples=4, seed=0).shape
        torch.Size([2, 8])
    """

    def __init__(self, tokens: Mapping[str, torch.Tensor], model_name_or_path: str | None = None) -> None:
        if not tokens:
            raise ValueError("a prompt bank needs at least one category with tokens")
        widths = {t.shape[-1] for t in tokens.values()}
        if len(widths) != 1 or any(t.ndim != 2 or t.shape[0] == 0 for t in tokens.values()):
            raise ValueError("every category needs a non-empty (count, hidden) tensor of one common width")
        self.tokens = {str(name): t.detach().float().cpu() for name, t in tokens.items()}
        self.model_name_or_path = model_name_or_path

    @property
    def categories(self) -> list[str]:
        return list(self.tokens)

    @property
    def counts(self) -> list[int]:
        return [t.shape[0] for t in self.tokens.values()]

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        model: Any,
        processor: Any,
        examples: Any,
        image_column: str = "image",
        mask_column: str = "mask",
        label_column: str = "label",
        reference_label_order: bool = False,
        progress: bool = True,
    ) -> DinovPromptBank:
        """Encode every example's mask(s) on its image with `model` (a `DinovForVisualPromptSegmentation`).

        Args:
            examples: a `datasets.Dataset`, a list of dicts or a dict of lists with an image column, a mask column
                ((H, W) or (N, H, W), > 0 = object) and a label column (one label, or N labels for N masks).
            reference_label_order: file tokens the way the reference does (see the module docstring).
        """
        from tqdm.auto import tqdm

        collected: dict[str, list[torch.Tensor]] = {}
        rows = list(_rows(examples, image_column, mask_column, label_column))
        if not rows:
            raise ValueError("`examples` is empty")
        device = next(model.parameters()).device
        for image, mask, label in tqdm(rows, desc="prompt bank", disable=not progress):
            masks = np.asarray(mask)
            masks = masks[None] if masks.ndim == 2 else masks
            labels = [label] if np.ndim(label) == 0 else list(label)
            if len(labels) != len(masks):
                raise ValueError(f"{len(masks)} masks but {len(labels)} labels in one example")
            inputs = processor(images=image, prompts={"masks": masks > 0})
            tokens = model.encode_visual_prompts(
                inputs["pixel_values"].to(device), inputs["prompt_masks"].to(device)
            ).tokens[0]
            if reference_label_order:
                labels = _reference_label_order(labels)
            for token, name in zip(tokens, labels):
                collected.setdefault(str(name), []).append(token.cpu())
        name = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
        return cls({k: torch.stack(v) for k, v in collected.items()}, model_name_or_path=name or None)

    def sample_means(
        self, num_examples: int = 16, seed: int = 0, categories: Sequence[str] | None = None
    ) -> torch.Tensor:
        """(C, hidden): per category, the mean of `num_examples` tokens drawn with replacement (seeded)."""
        if num_examples < 1:
            raise ValueError(f"`num_examples` must be positive, got {num_examples}")
        names = list(categories) if categories is not None else self.categories
        missing = [name for name in names if name not in self.tokens]
        if missing:
            raise ValueError(f"categories not in the bank: {missing}; it has {self.categories}")
        generator = torch.Generator().manual_seed(seed)
        means = []
        for name in names:
            tokens = self.tokens[name]
            picks = torch.randint(len(tokens), (num_examples,), generator=generator)
            means.append(tokens[picks].mean(0))
        return torch.stack(means)

    def category_queries(self, model: Any, num_examples: int = 16, seed: int = 0, categories=None) -> torch.Tensor:
        """(1, C, hidden) content queries for `model.generic`: sampled means + the model's prompt embeddings."""
        means = self.sample_means(num_examples, seed, categories).to(model.model.label_enc.weight)
        if means.shape[-1] != model.config.hidden_size:
            raise ValueError(
                f"bank width {means.shape[-1]} does not match the model's hidden size {model.config.hidden_size}"
            )
        return model.model.prompt_queries(means[None])[0]

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"tokens.{i}": t.contiguous() for i, t in enumerate(self.tokens.values())}
        save_file(tensors, directory / BANK_WEIGHTS, metadata={"format": "pt"})
        config = {
            "format_version": FORMAT_VERSION,
            "categories": self.categories,
            "counts": self.counts,
            "hidden_size": next(iter(self.tokens.values())).shape[-1],
            "model_name_or_path": self.model_name_or_path,
        }
        (directory / BANK_CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, revision: str | None = None, **hub_kwargs: Any):
        """Load from a directory or a Hub repo (files fetched with `hf_hub_download`, `revision` honoured)."""
        directory = Path(path_or_repo_id)
        if directory.is_dir():
            config_path, weights_path = directory / BANK_CONFIG, directory / BANK_WEIGHTS
        else:
            from huggingface_hub import hf_hub_download

            config_path = Path(hf_hub_download(str(path_or_repo_id), BANK_CONFIG, revision=revision, **hub_kwargs))
            weights_path = Path(hf_hub_download(str(path_or_repo_id), BANK_WEIGHTS, revision=revision, **hub_kwargs))
        if not config_path.is_file() or not weights_path.is_file():
            raise FileNotFoundError(f"{path_or_repo_id} has no {BANK_CONFIG} / {BANK_WEIGHTS}")
        config = json.loads(config_path.read_text())
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported prompt bank format {config.get('format_version')!r}")
        tensors = load_file(weights_path)
        tokens = {name: tensors[f"tokens.{i}"] for i, name in enumerate(config["categories"])}
        return cls(tokens, model_name_or_path=config.get("model_name_or_path"))

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Bank files and its filled card in one commit (see `hf_promptseg.hub.push_to_hub`)."""
        from hf_promptseg.hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)


__all__ = ["DinovPromptBank", "BANK_CONFIG", "BANK_WEIGHTS"]
