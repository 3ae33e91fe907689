"""Point and box prompting of a SAM model on whole images, and its mean IoU on scenes with exact masks.

Two ways in: `segment()` decodes many single-object prompts of one image at once (evaluation, the demo), and
`set_image()` + `predict()` is the interactive loop — the image is encoded once, then each click (any number of
positive / negative points and at most one box, for one object) is decoded by the factorised decoder
(`fast_mask_decoder.FastSamMaskDecoder`) with the image-only terms of the current image cached, exactly what
transformers' `SamMaskDecoder` computes, in a fraction of its time (`benchmarks/interactive.py`).

Example:

```python
from hf_promptseg.assets import demo_sam_path
from hf_promptseg.data.scenes import make_scene
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter

scene = make_scene(seed=0, height=128, width=128)
segmenter = PromptedSegmenter(demo_sam_path())
masks, scores = segmenter.segment(scene.image, boxes=[(10, 10, 60, 70)])
segmenter.set_image(scene.image)
prediction = segmenter.predict(points=[(40, 40)], labels=[1], multimask=True)
prediction.masks.shape, prediction.iou_scores.shape  # ((3, 128, 128), (3,))
```
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import AutoModelForMaskGeneration, AutoProcessor, PreTrainedModel
from transformers.utils import ModelOutput

from hf_promptseg.data.scenes import Scene
from hf_promptseg.models.sam.embedding_cache import EmbeddingCache, embedding_key, resolve_cache
from hf_promptseg.models.sam.encoder_backends import as_image_embeddings, check_encoder_backend, image_encoder
from hf_promptseg.models.sam.fast_mask_decoder import FastSamMaskDecoder
from hf_promptseg.models.sam.image_processing_sam import validate_images
from hf_promptseg.utils.masks import mask_iou
from hf_promptseg.utils.prompt_geometry import bounding_box, interior_point
from hf_promptseg.utils.validation import to_pil_image


@dataclass
class PromptedMasks(ModelOutput):
    """One object's masks from `PromptedSegmenter.predict`.

    masks: (K, H, W) bool at the image's size (K = 3 candidates with `multimask=True`, else 1).
    iou_scores: (K,) the model's predicted IoU of each candidate.
    low_res_logits: (K, h, w) the decoder's mask logits before upscaling (what `SamModel` returns as `pred_masks`).
    """

    masks: np.ndarray | None = None
    iou_scores: np.ndarray | None = None
    low_res_logits: torch.Tensor | None = None


def _as_rgb_array(image, argument: str = "image") -> np.ndarray:
    """The image as (H, W, 3) uint8, validated and converted like the processor's input (float [0, 1] allowed)."""
    validate_images(image, argument=argument)
    picture = to_pil_image(image, argument=argument)
    if not isinstance(picture, Image.Image):
        raise TypeError(f"`{argument}` must be a PIL image, numpy array or torch tensor, got {type(image).__name__}")
    return np.asarray(picture.convert("RGB"))


class PromptedSegmenter:
    """Point and box prompting of a SAM model: one image encoding per image, all prompts decoded together.

    Args:
        model: a SAM directory or Hub id, or a loaded `SamModel` (then `processor` defaults to SAM's resize-and-pad
            preprocessing at the model's input size).
        processor: a `SamProcessor` (default: the one saved with `model`).
        device: where the model runs.
        encoder_backend: how `set_image` and `segment` run the ViT (`encoder_backends.ENCODER_BACKENDS`:
            "default" is transformers' module as loaded, "eager" / "sdpa" / "compile" / "onnx" the same weights
            through its eager or SDPA attention, torch.compile or ONNX Runtime).
        embedding_cache: where `segment` and `set_image` keep image embeddings (an `EmbeddingCache`, False for
            none, default the process-wide cache shared with `pipeline("mask-generation")`), so successive calls on
            one image cost one encoder pass; entries are keyed by model, pixels and (for bf16) backend.
    """

    def __init__(
        self,
        model: str | os.PathLike | PreTrainedModel,
        device: str = "cpu",
        processor: object | None = None,
        encoder_backend: str = "default",
        embedding_cache: EmbeddingCache | bool | None = None,
    ) -> None:
        check_encoder_backend(encoder_backend)
        if isinstance(model, PreTrainedModel):
            self.model = model.to(device).eval()
            if processor is None:
                from hf_promptseg.models.sam import HfPromptsegSamImageProcessor, HfPromptsegSamProcessor

                size = int(model.config.vision_config.image_size)
                processor = HfPromptsegSamProcessor(
                    HfPromptsegSamImageProcessor(
                        size={"longest_edge": size},
                        pad_size={"height": size, "width": size},
                        mask_size={"longest_edge": size // 4},
                        mask_pad_size={"height": size // 4, "width": size // 4},
                    )
                )
        else:
            self.model = AutoModelForMaskGeneration.from_pretrained(model, dtype=torch.float32).to(device).eval()
        self.processor = processor if processor is not None else AutoProcessor.from_pretrained(model)
        self.device = device
        self.embedding_cache = resolve_cache(embedding_cache)
        self.fast_decoder = FastSamMaskDecoder(self.model.mask_decoder)
        self.encoder_backend = encoder_backend
        self.encode = image_encoder(self.model, encoder_backend)
        self.encoder_calls = 0  # image encodings so far (the interactive loop must make one per image)
        self._image: dict | None = None
        self._positional: torch.Tensor | None = None

    @torch.no_grad()
    def segment(self, image: np.ndarray, points=None, boxes=None) -> tuple[np.ndarray, np.ndarray]:
        """Masks (N, H, W) bool and scores (N,) for N single-point prompts or N boxes (not both).

        A single point is ambiguous, so SAM's three candidates are decoded and the one with the best predicted IoU is
        kept; a box is not, so one mask is decoded.
        """
        if (points is None) == (boxes is None):
            raise ValueError("pass exactly one of `points` (list of (x, y)) or `boxes` (list of (x0, y0, x1, y1))")
        validate_images(image, argument="image")
        picture = to_pil_image(image, argument="image")
        if points is not None:
            inputs = self.processor(
                picture,
                input_points=[[[list(p)] for p in points]],
                input_labels=[[[1] for _ in points]],
                return_tensors="pt",
            )
        else:
            inputs = self.processor(picture, input_boxes=[[list(b) for b in boxes]], return_tensors="pt")
        inputs = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in inputs.items()}
        inputs = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}
        embeddings = self._embeddings(inputs.pop("pixel_values"))
        outputs = self.model(**inputs, image_embeddings=embeddings, multimask_output=points is not None)
        masks = self.processor.post_process_masks(
            outputs.pred_masks.cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu()
        )[0]
        scores = outputs.iou_scores[0].cpu()
        best = scores.argmax(-1)
        chosen = masks[torch.arange(masks.shape[0]), best]
        return chosen.numpy().astype(bool), scores.gather(-1, best[:, None])[:, 0].numpy()

    def _embeddings(self, pixel_values: torch.Tensor):
        """`get_image_embeddings` of one preprocessed image with this segmenter's backend, through its embedding
        cache (shared by `segment` and `set_image`, so the app's tabs and a return to an earlier image reuse it)."""

        def compute():
            self.encoder_calls += 1
            return as_image_embeddings(self.encode(pixel_values))

        if self.embedding_cache is None:
            return compute()
        key = embedding_key(self.model, pixel_values, self.encoder_backend)
        return self.embedding_cache.get_or_compute(key, compute)

    @torch.no_grad()
    def set_image(self, image: np.ndarray | Image.Image) -> bool:
        """Encode `image` for the following `predict` calls; returns False (and does nothing) when it is the image
        already set, so an app can call it on every event and still encode each image once."""
        image = _as_rgb_array(image)
        digest = hashlib.sha1(image.tobytes()).hexdigest() + str(image.shape)
        if self._image is not None and self._image["key"] == digest:
            return False
        inputs = self.processor(images=Image.fromarray(image), return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, torch.float32)
        vision = self._embeddings(pixel_values)
        embeddings, intermediate = (vision, None) if torch.is_tensor(vision) else vision
        if self._positional is None:
            self._positional = self.model.get_image_wide_positional_embeddings().to(self.device)
        self._image = {
            "key": digest,
            "embeddings": embeddings,
            "intermediate": intermediate,
            "original_size": tuple(int(v) for v in inputs["original_sizes"][0]),
            "reshaped_size": tuple(int(v) for v in inputs["reshaped_input_sizes"][0]),
        }
        return True

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(height, width) of the image set by `set_image`, or None."""
        return None if self._image is None else self._image["original_size"]

    def _check_prompts(self, points, labels, box) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        if self._image is None:
            raise ValueError("call `set_image(image)` before `predict`")
        height, width = self._image["original_size"]
        if points is None and box is None:
            raise ValueError("pass `points` (list of (x, y)) and/or `box` (x0, y0, x1, y1)")
        point_array = label_array = box_array = None
        if points is not None:
            point_array = np.asarray(points, dtype=np.float64)
            if point_array.ndim != 2 or point_array.shape[1] != 2 or len(point_array) == 0:
                raise ValueError(f"`points` must be a non-empty list of (x, y), got shape {point_array.shape}")
            labels = [1] * len(point_array) if labels is None else labels
            label_array = np.asarray(labels)
            if label_array.shape != (len(point_array),) or not np.isin(label_array, (0, 1)).all():
                raise ValueError(
                    f"`labels` must hold one 1 (positive) or 0 (negative) per point ({len(point_array)}), got {labels}"
                )
            for index, (x, y) in enumerate(point_array):
                if not (0 <= x <= width and 0 <= y <= height):
                    raise ValueError(f"`points[{index}]` = ({x}, {y}) is outside the {width}×{height} image")
        elif labels is not None:
            raise ValueError("`labels` given without `points`")
        if box is not None:
            box_array = np.asarray(box, dtype=np.float64)
            if box_array.shape != (4,):
                raise ValueError(f"`box` must be (x0, y0, x1, y1), got shape {box_array.shape}")
            x0, y0, x1, y1 = box_array
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise ValueError(f"`box` = {box} must satisfy 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}")
        return point_array, label_array, box_array

    def predict(
        self,
        points: Sequence[Sequence[float]] | None = None,
        labels: Sequence[int] | None = None,
        box: Sequence[float] | None = None,
        multimask: bool = True,
    ) -> PromptedMasks:
        """Masks of one object from its points (label 1 positive, 0 negative; all positive by default) and/or box.

        Runs the prompt encoder and the factorised decoder on the embedding cached by `set_image`; the image-side
        terms of the decoder are computed on the first click and reused by the next ones.
        """
        prediction = self._predict(points, labels, box, multimask)
        # under inference mode (~0.7 ms less dispatch per click than no_grad); cloned outside it so callers get a
        # normal tensor they may modify in place
        prediction.low_res_logits = prediction.low_res_logits.clone()
        return prediction

    @torch.inference_mode()
    def _predict(
        self,
        points: Sequence[Sequence[float]] | None = None,
        labels: Sequence[int] | None = None,
        box: Sequence[float] | None = None,
        multimask: bool = True,
    ) -> PromptedMasks:
        point_array, label_array, box_array = self._check_prompts(points, labels, box)
        original_size, reshaped_size = self._image["original_size"], self._image["reshaped_size"]
        target = max(reshaped_size)
        normalize = self.processor._normalize_coordinates
        device = self.device
        input_points = input_labels = input_boxes = None
        if point_array is not None:
            scaled = normalize(target, point_array, original_size)
            input_points = torch.tensor(scaled, dtype=torch.float32, device=device)[None, None]
            input_labels = torch.tensor(label_array, dtype=torch.long, device=device)[None, None]
        if box_array is not None:
            scaled = normalize(target, box_array, original_size, is_bounding_box=True)
            input_boxes = torch.tensor(scaled, dtype=torch.float32, device=device).reshape(1, 1, 4)
        sparse, dense = self.model.prompt_encoder(input_points, input_labels, input_boxes, None)
        embeddings = self._image["embeddings"]
        if self.fast_decoder.is_hq:  # SAM-HQ's extra mask needs early ViT features: its own decoder
            outputs = self.model(
                image_embeddings=embeddings,
                intermediate_embeddings=self._image["intermediate"],
                input_points=input_points,
                input_labels=input_labels,
                input_boxes=input_boxes,
                multimask_output=multimask,
            )
            logits, scores = outputs.pred_masks[0], outputs.iou_scores[0]
        else:
            decoded = self.fast_decoder.decode(
                embeddings, self._positional, sparse[0], dense[:1], image_key=self._image["key"]
            )
            logits = self.fast_decoder.low_resolution_masks(decoded, torch.arange(1), embeddings.shape[-2:], multimask)
            scores = decoded.iou_scores[:, 1:] if multimask else decoded.iou_scores[:, :1]
        masks = self.processor.post_process_masks(
            logits[None].cpu(), torch.tensor([original_size]), torch.tensor([reshaped_size])
        )[0][0]
        return PromptedMasks(
            masks=masks.numpy().astype(bool),
            iou_scores=scores[0].cpu().numpy(),
            low_res_logits=logits[0].cpu(),
        )

    @torch.no_grad()
    def predict_each_point(self, points: np.ndarray, chunk: int = 8):
        """For each (x, y) in `points` (N, 2), its own object: yields `(logits, iou_scores)` per chunk of points —
        (p, 3, H, W) mask logits at the image's size and (p, 3) predicted IoU (automatic mask generation's grid)."""
        self._check_prompts(points, None, None)
        original_size, reshaped_size = self._image["original_size"], self._image["reshaped_size"]
        scaled = self.processor._normalize_coordinates(max(reshaped_size), np.asarray(points, float), original_size)
        embeddings = self._image["embeddings"]
        for start in range(0, len(scaled), chunk):
            part = torch.tensor(scaled[start : start + chunk], dtype=torch.float32, device=self.device)
            labels = torch.ones(1, len(part), 1, dtype=torch.long, device=self.device)
            sparse, dense = self.model.prompt_encoder(part[None, :, None], labels, None, None)
            decoded = self.fast_decoder.decode(
                embeddings, self._positional, sparse[0], dense[:1], image_key=self._image["key"]
            )
            logits = self.fast_decoder.low_resolution_masks(decoded, torch.arange(len(part)), embeddings.shape[-2:])
            full = self.processor.post_process_masks(
                logits[None].cpu(), torch.tensor([original_size]), torch.tensor([reshaped_size]), binarize=False
            )[0]
            yield full, decoded.iou_scores[:, 1:].cpu()


def evaluate_prompted_segmentation(segmenter: PromptedSegmenter, scenes: list[Scene]) -> dict[str, float]:
    """Mean IoU over every object of `scenes`, from one interior positive point and from its tight box."""
    point_ious, box_ious = [], []
    for scene in tqdm(scenes, desc="held-out scenes", leave=False):
        if not scene.masks:
            continue
        by_point, _ = segmenter.segment(scene.image, points=[interior_point(m) for m in scene.masks])
        by_box, _ = segmenter.segment(scene.image, boxes=[bounding_box(m) for m in scene.masks])
        point_ious += [mask_iou(p, t) for p, t in zip(by_point, scene.masks)]
        box_ious += [mask_iou(p, t) for p, t in zip(by_box, scene.masks)]
    return {
        "mean_iou_point": float(np.mean(point_ious)),
        "mean_iou_box": float(np.mean(box_ious)),
        "num_objects": len(point_ious),
    }


__all__ = ["PromptedMasks", "PromptedSegmenter", "evaluate_prompted_segmentation"]
