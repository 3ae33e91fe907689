"""Prompt-free validation metrics of a SAM (optionally with an adapter): over a sharded loader, or a whole dataset.

Example (a random tiny SAM on synthetic camouflage images; offline):

```python
from hf_promptseg.training.evaluation import evaluate_segmentation

metrics = evaluate_segmentation("random:tiny", "synthetic:4:0:128", metric_set="polyp")
print(metrics["dice"])
```
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hf_promptseg.data.segmentation import SegmentationTransform, collate_segmentation, load_segmentation_dataset
from hf_promptseg.metrics import make_accumulator
from hf_promptseg.models.sam.prompt_free import prompt_free_logits
from hf_promptseg.models.sam_adapter.predict import load_prompt_free_image_processor
from hf_promptseg.training.modeling import base_model_location, load_base_model, sam_core


@torch.inference_mode()
def evaluate_model(
    model: torch.nn.Module, dataloader: DataLoader, accelerator: Accelerator, metric_set: str
) -> dict[str, float]:
    """Validation metrics over the whole (sharded) set; every rank returns the same numbers."""
    model.eval()
    accumulator = make_accumulator(metric_set) if accelerator.is_main_process else None
    progress = tqdm(dataloader, desc="validation", leave=False, disable=not accelerator.is_main_process)
    for batch in progress:
        probabilities = prompt_free_logits(model, batch["pixel_values"]).float().sigmoid()
        probabilities, labels = accelerator.gather_for_metrics((probabilities, batch["labels"]))
        if accumulator is not None:
            for probability, label in zip(probabilities[:, 0].cpu().numpy(), labels[:, 0].cpu().numpy()):
                accumulator.update(probability, label)
    results = [accumulator.results() if accumulator is not None else None]
    broadcast_object_list(results, from_process=0)
    model.train()
    return results[0]


def _local_dir(name: str | None) -> str | None:
    location = base_model_location(name) if name is not None else None
    return location if location is not None and Path(location).is_dir() else None


def evaluate_segmentation(
    model: str,
    data: str,
    adapter: str | None = None,
    metric_set: str = "cod",
    image_size: int | None = None,
    batch_size: int = 2,
    split: str = "test",
) -> dict[str, float]:
    """Metrics of `model` (+ `adapter`) on every sample of `data` (any source `load_segmentation_dataset` takes).

    Images go through the processor saved with the adapter (or the model) — the one the model was trained with —
    or, for models without one, the reference's prompt-free preprocessing at the model's input size.
    """
    network = load_base_model(model)
    if adapter:
        from peft import PeftModel

        network = PeftModel.from_pretrained(network, adapter)
    size = image_size or sam_core(network).config.vision_config.image_size
    processor = load_prompt_free_image_processor(size, _local_dir(adapter), _local_dir(model))
    dataset = load_segmentation_dataset(data, split).with_transform(SegmentationTransform(processor))
    accelerator = Accelerator()
    loader = accelerator.prepare(DataLoader(dataset, batch_size=batch_size, collate_fn=collate_segmentation))
    network = accelerator.prepare(network)
    return evaluate_model(network, loader, accelerator, metric_set)


__all__ = ["evaluate_model", "evaluate_segmentation"]
