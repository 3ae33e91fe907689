"""`pipeline("visual-prompt-segmentation")`: DINOv in-context segmentation of a target image from visual prompts.

- `task="referring"`: one mask per prompt — the instance in the target that matches each prompted region of the
  reference image(s) (or of the target itself when no reference is given).
- `task="generic"`: every object of the prompted categories. Categories come from a `DinovPromptBank`
  (`prompt_bank=`, `num_examples` seeded draws per category) or from the prompts themselves (`labels=` groups
  prompts into categories; by default each prompt is its own category). `subtask` picks the output: "instance"
  (default), "semantic" or "panoptic".
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import Pipeline

from hf_promptseg.models.dinov.modeling_dinov import DinovForVisualPromptSegmentation, category_prompt_tokens
from hf_promptseg.pipelines import register_task_pipeline
from hf_promptseg.utils.validation import check_known_arguments, check_positive_int, check_threshold

TASKS = ("referring", "generic")
SUBTASKS = ("instance", "semantic", "panoptic")


def _given(**parameters: Any) -> dict[str, Any]:
    """The parameters the caller set (None = not given: the step's default applies)."""
    return {name: value for name, value in parameters.items() if value is not None}


class VisualPromptSegmentationPipeline(Pipeline):
    """In-context segmentation with DINOv.

    Example:
        >>> import hf_promptseg
        >>> from transformers import pipeline
        >>> segmenter = pipeline("visual-prompt-segmentation", model="path/to/dinov")  # doctest: +SKIP
        >>> segmenter(target, reference_images=reference, prompts={"boxes": [[10, 10, 80, 90]]})  # doctest: +SKIP
        [{'mask': array(...), 'score': 0.93, 'prompt': 0}]
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(
        self,
        reference_images=None,
        prompts=None,
        task=None,
        labels=None,
        prompt_bank=None,
        num_examples=None,
        seed=None,
        subtask=None,
        threshold=None,
        iou_threshold=None,
        nms_threshold=None,
        min_mask_area=None,
        **kwargs,
    ):
        known = inspect.signature(type(self)._sanitize_parameters).parameters
        check_known_arguments(kwargs, [name for name in known if name not in ("self", "kwargs")], "DINOv segmentation")
        preprocess = _given(reference_images=reference_images, prompts=prompts)
        forward = _given(task=task, labels=labels, prompt_bank=prompt_bank, num_examples=num_examples, seed=seed)
        post = _given(task=task, subtask=subtask, threshold=threshold, iou_threshold=iou_threshold,
                      nms_threshold=nms_threshold, min_mask_area=min_mask_area)  # fmt: skip
        check_threshold(threshold, "threshold", 0.0, 1.0, allow_none=True)
        check_threshold(nms_threshold, "nms_threshold", 0.0, 1.0, allow_none=True)
        check_threshold(iou_threshold, "iou_threshold", -math.inf, math.inf, allow_none=True)  # unbounded IoU head
        check_threshold(min_mask_area, "min_mask_area", 0.0, None, allow_none=True)
        check_positive_int(num_examples, "num_examples", allow_none=True)
        check_positive_int(seed, "seed", allow_none=True, minimum=0)
        if task is not None and task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}, got {task!r}")
        if subtask is not None and subtask not in SUBTASKS:
            raise ValueError(f"`subtask` must be one of {SUBTASKS}, got {subtask!r}")
        return preprocess, forward, post

    def _processor(self):
        from hf_promptseg.models.dinov.processing_dinov import DinovProcessor

        return DinovProcessor(self.image_processor)

    def preprocess(self, image, reference_images=None, prompts=None):
        image = image if not isinstance(image, str) else Image.open(image).convert("RGB")
        target = self.image_processor(image)
        model_inputs = {"target": target, "original_size": target["original_sizes"][0].tolist()}
        if prompts is not None:
            references = reference_images if reference_images is not None else [image]
            references = references if isinstance(references, (list, tuple)) else [references]
            prompt_list = prompts if isinstance(prompts, (list, tuple)) else [prompts]
            if len(prompt_list) != len(references):
                given = (
                    "`reference_images`" if reference_images is not None else "target image (no `reference_images`)"
                )
                raise ValueError(
                    f"`prompts` holds {len(prompt_list)} prompt dict(s) for {len(references)} {given}; give one "
                    "prompt dict per reference image"
                )
            processor = self._processor()
            model_inputs["references"] = [
                processor(reference, prompts=prompt) for reference, prompt in zip(references, prompt_list, strict=True)
            ]
        return model_inputs

    def _forward(self, model_inputs, task="referring", labels=None, prompt_bank=None, num_examples=16, seed=0):
        model = self.model
        if prompt_bank is not None:
            if task != "generic":
                raise ValueError("a `prompt_bank` holds categories: use it with task='generic'")
            tokens = prompt_bank.sample_means(num_examples=num_examples, seed=seed)
            names = prompt_bank.categories
        else:
            if "references" not in model_inputs:
                raise ValueError(
                    "pass `prompts` (and optionally `reference_images`) or, for task='generic', a `prompt_bank`"
                )
            tokens = torch.cat(
                [
                    model.encode_visual_prompts(
                        reference["pixel_values"].to(self.device), reference["prompt_masks"].to(self.device)
                    ).tokens[0]
                    for reference in model_inputs["references"]
                ]
            )
            names = list(range(len(tokens))) if labels is None else list(labels)
            if task == "generic":
                tokens, names = category_prompt_tokens(tokens, names)
            elif len(names) != len(tokens):
                raise ValueError(f"`labels` names {len(names)} prompts but there are {len(tokens)}")
        target = model_inputs["target"]
        outputs = model(target["pixel_values"].to(self.device), prompt_tokens=tokens[None], task=task)
        return {"outputs": outputs, "names": names, "image_size": target["image_sizes"][0].tolist(),
                "original_size": model_inputs["original_size"]}  # fmt: skip

    def postprocess(
        self, model_outputs, task="referring", subtask="instance", threshold=0.0, iou_threshold=None,
        nms_threshold=None, min_mask_area=None,
    ):  # fmt: skip
        """Referring filters default to the model config's (`iou_threshold`, `nms_threshold`, `min_mask_area`)."""
        outputs, names = model_outputs["outputs"], model_outputs["names"]
        image_size, original = model_outputs["image_size"], model_outputs["original_size"]
        processor, config = self.image_processor, self.model.config
        if task == "referring":
            result = processor.post_process_referring(
                outputs,
                image_size=image_size,
                target_size=original,
                iou_threshold=config.iou_threshold if iou_threshold is None else iou_threshold,
                nms_threshold=config.nms_threshold if nms_threshold is None else nms_threshold,
                min_mask_area=config.min_mask_area if min_mask_area is None else min_mask_area,
            )[0]
            return [
                {"mask": (mask > 0).cpu().numpy(), "score": float(score), "prompt": names[i]}
                for i, (mask, score) in enumerate(zip(result["masks"], result["scores"]))
            ]
        if subtask == "semantic":
            segmentation = processor.post_process_semantic(outputs, [image_size], [original])[0]
            return {"segmentation": segmentation.cpu().numpy(), "labels": names}
        if subtask == "panoptic":
            result = processor.post_process_panoptic(outputs, [image_size], [original])[0]
            for segment in result["segments_info"]:
                segment["label"] = names[segment["label_id"]]
            return {"segmentation": result["segmentation"].cpu().numpy(), "segments_info": result["segments_info"]}
        result = processor.post_process_instance(
            outputs, [image_size], [original], threshold=threshold, return_binary_maps=True
        )[0]
        return [
            {"mask": mask.cpu().numpy().astype(np.bool_), "score": info["score"], "label": names[info["label_id"]]}
            for mask, info in zip(result["segmentation"], result["segments_info"])
        ]


def register_visual_prompt_segmentation_pipeline() -> None:
    register_task_pipeline(
        "visual-prompt-segmentation", VisualPromptSegmentationPipeline, DinovForVisualPromptSegmentation, "image"
    )


__all__ = ["VisualPromptSegmentationPipeline", "register_visual_prompt_segmentation_pipeline"]
