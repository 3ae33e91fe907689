"""Client side of the Hub round-trip tests: runs in a fresh interpreter so `HF_ENDPOINT` is read at import.

Usage: python hub_client.py COMMAND REPO_ID [--revision REV] [--base DIR]; prints one JSON object.
  files     sha256 of every file of the repo, downloaded over HTTP
  sam       loads model, processor and mask-generation pipeline; the model's output on a fixed prompt
  peft      loads an adapter with `PeftModel.from_pretrained(base, repo)` and `base.load_adapter(repo)`
  dinov     loads a DINOv model, processor and visual-prompt-segmentation pipeline; a referring output
  bank      loads a DINOv prompt bank; its categories, counts and seeded category means
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch


def _files(repo_id: str, revision: str | None, base: str | None) -> dict:
    from huggingface_hub import HfApi, hf_hub_download

    names = HfApi().list_repo_files(repo_id, revision=revision)
    return {
        name: hashlib.sha256(Path(hf_hub_download(repo_id, name, revision=revision)).read_bytes()).hexdigest()
        for name in names
        if name != ".gitattributes"
    }


def _prompted_output(model: torch.nn.Module) -> float:
    torch.manual_seed(0)
    size = model.config.vision_config.image_size
    pixel_values = torch.rand(1, 3, size, size)
    with torch.no_grad():
        outputs = model(pixel_values=pixel_values, input_points=torch.tensor([[[[size * 0.5, size * 0.4]]]]))
    return float(outputs.pred_masks.double().sum())


def _sam(repo_id: str, revision: str | None, base: str | None) -> dict:
    from transformers import AutoModelForMaskGeneration, AutoProcessor, pipeline

    import hf_promptseg  # noqa: F401

    model = AutoModelForMaskGeneration.from_pretrained(repo_id, revision=revision, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(repo_id, revision=revision)
    generator = pipeline("mask-generation", model=repo_id, revision=revision)
    return {
        "model": type(model).__name__,
        "processor": type(processor).__name__,
        "pipeline": type(generator).__name__,
        "pipeline_image_processor": type(generator.image_processor).__name__,
        "output": _prompted_output(model),
    }


def _peft(repo_id: str, revision: str | None, base: str | None) -> dict:
    from peft import PeftModel
    from transformers import SamModel

    import hf_promptseg  # noqa: F401

    peft_model = PeftModel.from_pretrained(
        SamModel.from_pretrained(base, dtype=torch.float32), repo_id, revision=revision
    )
    loaded = SamModel.from_pretrained(base, dtype=torch.float32)
    loaded.load_adapter(repo_id, adapter_kwargs={"revision": revision})
    return {"peft_output": _prompted_output(peft_model), "load_adapter_output": _prompted_output(loaded)}


def _dinov_output(model: torch.nn.Module) -> float:
    torch.manual_seed(0)
    pixel_values, masks = torch.randn(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    masks[0, 0, 10:40, 10:40] = 1
    with torch.no_grad():
        return float(model(pixel_values, prompt_masks=masks).match_scores.double().sum())


def _dinov(repo_id: str, revision: str | None, base: str | None) -> dict:
    from transformers import AutoModel, AutoProcessor, pipeline

    import hf_promptseg  # noqa: F401
    from hf_promptseg.models.dinov import DinovForVisualPromptSegmentation

    model = DinovForVisualPromptSegmentation.from_pretrained(repo_id, revision=revision)
    segmenter = pipeline("visual-prompt-segmentation", model=repo_id, revision=revision)
    return {
        "model": type(model).__name__,
        "auto_model": type(AutoModel.from_pretrained(repo_id, revision=revision)).__name__,
        "processor": type(AutoProcessor.from_pretrained(repo_id, revision=revision)).__name__,
        "pipeline": type(segmenter).__name__,
        "output": _dinov_output(model.eval()),
    }


def _bank(repo_id: str, revision: str | None, base: str | None) -> dict:
    from hf_promptseg.models.dinov import DinovPromptBank

    bank = DinovPromptBank.from_pretrained(repo_id, revision=revision)
    return {"categories": bank.categories, "counts": bank.counts, "means": bank.sample_means(4, seed=0).tolist()}


COMMANDS = {"files": _files, "sam": _sam, "peft": _peft, "dinov": _dinov, "bank": _bank}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("repo_id")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--base", default=None)
    args = parser.parse_args()
    print(json.dumps(COMMANDS[args.command](args.repo_id, args.revision, args.base)))


if __name__ == "__main__":
    main()
