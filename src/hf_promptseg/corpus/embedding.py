"""Precompute SAM image embeddings of an image set into one safetensors file (`hf-promptseg embed`).

Entries are keyed by the content hash of the preprocessed image (`embedding_cache.pixel_key`), exactly as the
mask-generation pipeline and `PromptedSegmenter` key their cache, so `generate --embeddings` and
`segment --embeddings` (or `load_embeddings(path, model, cache)`) skip the encoder for these images.

Example:

```python
from PIL import Image
from hf_promptseg.corpus.embedding import embed_images
from hf_promptseg.data.scenes import make_scene

Image.fromarray(make_scene(0, 128, 128).image).save("scene.png")
summary = embed_images("scene.png", "emb.safetensors")
summary["num_images"]  # 1
```
"""

from __future__ import annotations

import os
from typing import Any

import torch
from tqdm.auto import tqdm

from hf_promptseg.corpus.generation import load_generator
from hf_promptseg.corpus.inputs import list_images
from hf_promptseg.models.sam.embedding_cache import pixel_key, save_embeddings


def pipeline_pixel_values(generator: Any, image: Any) -> torch.Tensor:
    """The (1, 3, H, W) pixel values `pipeline("mask-generation")` feeds the encoder for the whole image."""
    target = generator.image_processor.size.get("longest_edge", generator.image_processor.size.get("height"))
    _, _, cropped, _ = generator.image_processor.generate_crop_boxes(image, target, 0, 512 / 1500, 1, 1)
    inputs = generator.image_processor(images=cropped, return_tensors="pt").to(generator.dtype)
    return inputs["pixel_values"].to(generator.device)


@torch.no_grad()
def embed_images(
    source: str | os.PathLike,
    out: str | os.PathLike,
    model: str | os.PathLike | None = None,
    image_column: str | None = None,
    split: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Embed every image of `source` with `model` (default: the embedded demo SAM) into the safetensors `out`."""
    generator = load_generator(model)
    embeddings, errors = {}, []
    for record in tqdm(list_images(source, image_column, split), desc="embeddings", disable=not progress):
        try:
            image = record.load()
        except ValueError as err:
            errors.append({"image_id": record.image_id, "error": str(err)})
            tqdm.write(f"skipped {record.origin}: {err}")
            continue
        pixel_values = pipeline_pixel_values(generator, image)
        embeddings[pixel_key(pixel_values[0:1])] = generator.model.get_image_embeddings(pixel_values)
    save_embeddings(out, generator.model, embeddings)
    return {"num_images": len(embeddings), "errors": errors, "out": str(out)}


__all__ = ["embed_images", "pipeline_pixel_values"]
