"""Cross-image in-context evaluation of DINOv on procedural scenes: does a prompt on one scene find the objects of
the same shape kind in another scene?

For every (reference scene, target scene) pair and every shape kind present in the target, the full mask of an
instance of that kind in a reference scene (the first reference scene, from the pair's own onward, that has one) is
the prompt; the generic head scores the target's proposals for each prompted kind. Metrics over all prompts:
- `top1_miou`: IoU of the best-scoring proposal's mask with the best-fitting target instance *of the prompted
  kind* (0 when it covers only other kinds), averaged;
- `top1_hit_rate`: share of prompts whose best-scoring proposal has IoU >= 0.5 with an instance of that kind;
- `paste_miou`: the trivial baseline, the prompt mask itself pasted onto the target at the same place;
- `oracle_miou`: the best proposal for the prompted kind chosen with the answer (ignores the scores): how good
  the masks are, apart from ranking them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


def _iou(mask: np.ndarray, targets: list[np.ndarray]) -> float:
    best = 0.0
    for target in targets:
        union = np.logical_or(mask, target).sum()
        best = max(best, float(np.logical_and(mask, target).sum() / union) if union else 0.0)
    return best


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def evaluate_in_context(
    model, num_pairs: int = 50, seed: int = 1000, image_size: int = 64, batch_size: int = 16
) -> dict[str, float]:
    """In-context metrics on `num_pairs` held-out (reference, target) scene pairs drawn from `seed`.

    Example:
        >>> from hf_promptseg.training.dinov_trainer import build_dinov
        >>> metrics = evaluate_in_context(build_dinov("random:tiny").eval(), num_pairs=2)
        >>> sorted(metrics)
        ['num_prompts', 'oracle_miou', 'paste_miou', 'top1_hit_rate', 'top1_miou']
    """
    from hf_promptseg.data.scenes import make_scenes
    from hf_promptseg.models.dinov import DinovImageProcessor

    if num_pairs < 1:
        raise ValueError(f"`num_pairs` must be positive, got {num_pairs}")
    processor = DinovImageProcessor(do_resize=False)
    scenes = make_scenes(2 * num_pairs, seed, image_size, image_size)
    references, targets = scenes[:num_pairs], scenes[num_pairs:]
    model.eval()
    # every reference instance's token, one backbone pass per reference scene (batched)
    bank: list[dict[str, torch.Tensor]] = []
    for chunk in _batches(references, batch_size):
        width = max(len(scene.masks) for scene in chunk)
        stacks = [np.concatenate([np.stack(s.masks), np.zeros((width - len(s.masks), image_size, image_size), bool)])
                  for s in chunk]  # fmt: skip
        batch = processor([s.image for s in chunk], prompt_masks=stacks)
        tokens = model.encode_visual_prompts(batch["pixel_values"], batch["prompt_masks"]).tokens
        for scene, scene_tokens in zip(chunk, tokens):
            bank.append({kind: scene_tokens[scene.shapes.index(kind)] for kind in set(scene.shapes)})
    top1, hits, paste, oracle = [], [], [], []
    for start in tqdm(range(0, num_pairs, batch_size), desc="in-context eval", leave=False):
        chunk = targets[start : start + batch_size]
        pixel = processor([s.image for s in chunk])["pixel_values"]
        features = model.model.get_image_features(pixel)
        for offset, target in enumerate(chunk):
            index = start + offset
            used, tokens, prompts = [], [], []
            for kind in sorted(set(target.shapes)):
                for step in range(num_pairs):
                    ref = (index + step) % num_pairs
                    if kind in bank[ref]:
                        used.append(kind)
                        tokens.append(bank[ref][kind])
                        prompts.append(references[ref].masks[references[ref].shapes.index(kind)])
                        break
            if not tokens:
                continue
            one = type(features)(multi_scale_features=tuple(f[offset : offset + 1] for f in features.multi_scale_features),
                                 mask_features=features.mask_features[offset : offset + 1])  # fmt: skip
            queries, boxes = model.model.prompt_queries(torch.stack(tokens)[None])
            out = model.generic(one, queries, boxes)
            masks = F.interpolate(out.pred_masks, size=pixel.shape[-2:], mode="bilinear", align_corners=False)[0]
            masks = (masks[:, :image_size, :image_size] > 0).numpy()
            for k, (kind, prompt) in enumerate(zip(used, prompts)):
                same_kind = [m for m, s in zip(target.masks, target.shapes) if s == kind]
                iou = _iou(masks[int(out.logits[0, :, k].argmax())], same_kind)
                top1.append(iou)
                hits.append(iou >= 0.5)
                paste.append(_iou(prompt, same_kind))
                oracle.append(max(_iou(mask, same_kind) for mask in masks))
    return {
        "top1_miou": float(np.mean(top1)),
        "top1_hit_rate": float(np.mean(hits)),
        "paste_miou": float(np.mean(paste)),
        "oracle_miou": float(np.mean(oracle)),
        "num_prompts": len(top1),
    }


__all__ = ["evaluate_in_context"]
