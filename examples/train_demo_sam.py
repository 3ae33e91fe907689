"""Train the embedded demo SAM: a small transformers `SamModel` that answers point and box prompts on procedural scenes.

This is the recipe of the weights shipped in `hf_promptseg/assets/demo_sam` (`hf-promptseg demo`). It runs on CPU
(or any accelerate set-up) with no download: scenes come from `hf_promptseg.data.scenes`, a fresh stream per step.

    python examples/train_demo_sam.py --output-dir demo_sam_run            # resumable: rerun to continue
    accelerate launch examples/train_demo_sam.py --output-dir demo_sam_run  # same, on several processes

Two details matter when training SAM from scratch rather than fine-tuning:
- transformers initialises the prompt encoder's random Fourier matrix with std `hidden_size // 2`, i.e. frequencies
  so high that point and box positions become noise; segment-anything uses std 1 and keeps it fixed. We do the same.
- Every image carries several prompts (one per sampled object, as a point and as a box), so one encoder pass feeds
  many decoder targets; a single point is ambiguous, so only the best of SAM's three masks is penalised.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from scipy.ndimage import label
from tqdm.auto import tqdm
from transformers import SamConfig, SamModel, get_cosine_schedule_with_warmup

from hf_promptseg.assets import DEMO_SAM_CARD_SCENES, DEMO_SAM_CARD_SEED
from hf_promptseg.data.scenes import Scene, make_scene, make_scenes
from hf_promptseg.models.sam.convert_sam_checkpoint import build_sam_processor
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter, evaluate_prompted_segmentation
from hf_promptseg.utils.prompt_geometry import boundary_distance

IMAGE_SIZE = 128
PATCH_SIZE = 8
VISION_LAYERS = 4
SCENE_OBJECTS = (2, 5)


def demo_sam_config(patch_size: int = PATCH_SIZE, vision_layers: int = VISION_LAYERS) -> SamConfig:
    """A small SAM at 128×128 input (`128 // patch_size` image tokens a side, 4× that for masks).

    With the default 4 ViT layers it has ~1.8-1.9 M parameters; every second layer attends globally, the others
    within 8×8 windows.
    """
    return SamConfig(
        vision_config={
            "hidden_size": 128,
            "num_hidden_layers": vision_layers,
            "num_attention_heads": 4,
            "mlp_dim": 512,
            "image_size": IMAGE_SIZE,
            "patch_size": patch_size,
            "window_size": 8,
            "global_attn_indexes": list(range(1, vision_layers, 2)),
            "output_channels": 128,
            "num_pos_feats": 64,
        },
        prompt_encoder_config={
            "hidden_size": 128,
            "image_size": IMAGE_SIZE,
            "patch_size": patch_size,
            "mask_input_channels": 16,
        },
        mask_decoder_config={
            "hidden_size": 128,
            "mlp_dim": 512,
            "num_attention_heads": 4,
            "iou_head_hidden_dim": 128,
            "layer_norm_eps": 1e-5,
        },
    )


def build_model(seed: int, patch_size: int = PATCH_SIZE, vision_layers: int = VISION_LAYERS) -> SamModel:
    torch.manual_seed(seed)
    model = SamModel(demo_sam_config(patch_size, vision_layers))
    with torch.no_grad():
        model.shared_image_embedding.positional_embedding.normal_(0.0, 1.0)
    model.shared_image_embedding.positional_embedding.requires_grad_(False)
    return model


def warm_start(model: SamModel, source: Path) -> None:
    """Load a saved demo SAM into `model`, resampling the tensors whose size depends on the patch size.

    A finer patch grid sees the same picture as if it were enlarged, so the patch kernel is summed over the blocks it
    covers and the absolute and relative position tables are interpolated to the new token grid. ViT layers the
    source lacks start as identities (their attention and MLP output projections are zero), so a deeper model begins
    exactly where the source model was.
    """
    target = model.state_dict()
    identity_outputs = ("attn.proj.weight", "attn.proj.bias", "mlp.lin2.weight", "mlp.lin2.bias")
    loaded = {
        name: torch.zeros_like(tensor)
        if name.startswith("vision_encoder.layers.") and name.endswith(identity_outputs)
        else tensor
        for name, tensor in target.items()
    }
    source_state = SamModel.from_pretrained(source, dtype=torch.float32).state_dict()
    if unknown := set(source_state) - set(target):
        raise ValueError(f"`source` has weights this model lacks (is it deeper?): {sorted(unknown)[:3]}")
    for name, tensor in source_state.items():
        shape = target[name].shape
        if tensor.shape != shape:
            if name.endswith("patch_embed.projection.weight"):
                factor = tensor.shape[-1] // shape[-1]
                tensor = F.avg_pool2d(tensor, factor) * factor**2 if factor > 1 else tensor
            elif name.endswith("pos_embed"):
                tensor = F.interpolate(tensor.permute(0, 3, 1, 2), size=shape[1:3], mode="bicubic").permute(0, 2, 3, 1)
            elif ".rel_pos_" in name:
                tensor = F.interpolate(tensor.T[None], size=shape[0], mode="linear")[0].T
        loaded[name] = tensor.contiguous()
    model.load_state_dict(loaded)


def draw_scene(rng: np.random.Generator, per_object_sampling: bool = False) -> Scene:
    """A training scene with at least one object; with `per_object_sampling`, kept with probability ∝ its objects."""
    while True:
        scene = make_scene(rng, IMAGE_SIZE, IMAGE_SIZE, num_objects=SCENE_OBJECTS)
        if scene.masks and (not per_object_sampling or rng.random() * SCENE_OBJECTS[1] < len(scene.masks)):
            return scene


def sample_batch(
    rng: np.random.Generator,
    images: int,
    prompts_per_image: int,
    processor,
    central_point_fraction: float = 0.0,
    tight_box_fraction: float = 0.0,
    per_object_sampling: bool = False,
    split_object_weight: float = 1.0,
    outward_box_jitter: bool = False,
) -> dict[str, torch.Tensor]:
    """Images with `prompts_per_image` objects each: GT masks, one point on the object and a box around it.

    The point is any object pixel, or with probability `central_point_fraction` one of its central pixels (at least
    half the largest distance to the boundary: where an evaluation's single click lands). The box is jittered by 5 %
    of its side, or with probability `tight_box_fraction` left tight. With `outward_box_jitter` the jitter only widens
    the box, so a box always holds its whole object and the model learns never to paint past it. With `per_object_sampling`, a scene is kept with
    probability proportional to its object count, so every object is equally likely to be prompted (as in the held-out
    evaluation) instead of sparse, easy scenes dominating. Objects whose visible part an occluder splits in pieces
    (the hardest case: every piece belongs to the answer) are drawn `split_object_weight` times as often (objects are
    then drawn with replacement, so an image can carry several prompts for one split object).
    """
    pictures, masks, points, boxes = [], [], [], []
    while len(pictures) < images:
        scene = draw_scene(rng, per_object_sampling)
        if split_object_weight == 1.0:
            replace = len(scene.masks) < prompts_per_image
            chosen = rng.choice(len(scene.masks), prompts_per_image, replace=replace)
        else:
            weights = np.array([split_object_weight if label(m)[1] > 1 else 1.0 for m in scene.masks])
            chosen = rng.choice(len(scene.masks), prompts_per_image, p=weights / weights.sum())
        scene_points, scene_boxes = [], []
        for index in chosen:
            ys, xs = np.nonzero(scene.masks[index])
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            if central_point_fraction and rng.random() < central_point_fraction:
                distance = boundary_distance(scene.masks[index])[ys, xs]
                central = distance >= distance.max() / 2
                ys, xs = ys[central], xs[central]
            pick = rng.integers(len(ys))
            scene_points.append([[xs[pick] + 0.5, ys[pick] + 0.5]])
            jitter = rng.normal(0, 0.05 * max(x1 - x0, y1 - y0), 4)
            if tight_box_fraction and rng.random() < tight_box_fraction:
                jitter[:] = 0
            if outward_box_jitter:
                jitter = np.abs(jitter) * [-1, -1, 1, 1]
            scene_boxes.append([x0 + jitter[0], y0 + jitter[1], x1 + jitter[2], y1 + jitter[3]])
        pictures.append(scene.image)
        masks.append(np.stack([scene.masks[i] for i in chosen]))
        points.append(scene_points)
        boxes.append(scene_boxes)
    pixel_values = processor.image_processor(pictures, return_tensors="pt")["pixel_values"]
    return {
        "pixel_values": pixel_values,
        "masks": torch.from_numpy(np.stack(masks)).float(),
        "points": torch.tensor(np.array(points), dtype=torch.float32),
        "boxes": torch.tensor(np.array(boxes), dtype=torch.float32),
    }


def mask_losses(low_res_logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-candidate BCE + Dice (B, P, M) at input resolution, and the IoU each candidate reaches."""
    batch, prompts, candidates, height, width = low_res_logits.shape
    logits = F.interpolate(low_res_logits.flatten(0, 1), size=targets.shape[-2:], mode="bilinear", align_corners=False)
    logits = logits.view(batch, prompts, candidates, *targets.shape[-2:])
    target = targets[:, :, None].expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((-2, -1))
    probability = logits.sigmoid()
    dice = 1 - (2 * (probability * target).sum((-2, -1)) + 1) / (probability.sum((-2, -1)) + target.sum((-2, -1)) + 1)
    predicted, truth = logits > 0, target > 0.5
    iou = (predicted & truth).sum((-2, -1)) / (predicted | truth).sum((-2, -1)).clamp(min=1)
    return bce + dice, iou.float()


def training_loss(
    model: SamModel,
    batch: dict[str, torch.Tensor],
    iou_loss_weight: float = 1.0,
    point_candidates: str = "best",
    box_loss_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mask loss of the box's single mask (times `box_loss_weight`) and of the point's candidates, plus the IoU
    head's MSE.

    With `point_candidates="best"` only the best of the point's three candidates is penalised (SAM's ambiguity-aware
    loss). With `"every"` all three are pulled to the target: a scene's point has one right answer (the visible
    object under it), and a small model's IoU head cannot tell which of three differing guesses is right, so three
    agreeing candidates make the selection harmless.
    """
    if point_candidates not in ("best", "every"):
        raise ValueError(f"`point_candidates` must be 'best' or 'every', got {point_candidates!r}")
    if not box_loss_weight >= 0:
        raise ValueError(f"`box_loss_weight` must be a non-negative number, got {box_loss_weight!r}")
    image_embeddings = model.vision_encoder(pixel_values=batch["pixel_values"]).last_hidden_state
    labels = torch.ones(batch["points"].shape[:3], dtype=torch.long, device=batch["points"].device)
    by_point = model(
        image_embeddings=image_embeddings, input_points=batch["points"], input_labels=labels, multimask_output=True
    )
    by_box = model(image_embeddings=image_embeddings, input_boxes=batch["boxes"], multimask_output=False)
    total, logs = 0.0, {}
    for name, outputs, mask_loss_weight in (("point", by_point, 1.0), ("box", by_box, box_loss_weight)):
        losses, ious = mask_losses(outputs.pred_masks, batch["masks"])
        best = losses.argmin(-1, keepdim=True)
        mask_loss = (
            losses.mean() if name == "point" and point_candidates == "every" else losses.gather(-1, best).mean()
        )
        total = total + mask_loss_weight * mask_loss + iou_loss_weight * F.mse_loss(outputs.iou_scores, ious)
        logs[f"iou_{name}"] = float(ious.gather(-1, best).mean())
    return total, logs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--images-per-step", type=int, default=8)
    parser.add_argument("--prompts-per-image", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=250)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--package-to", type=Path, help="after training, copy the model here with an evaluated card")
    parser.add_argument("--init-from", type=Path, help="start from the weights of a saved SamModel dir (fine-tune)")
    parser.add_argument("--patch-size", type=int, default=PATCH_SIZE, help="ViT patch size (tokens = 128 / patch)")
    parser.add_argument("--vision-layers", type=int, default=VISION_LAYERS, help="ViT depth (odd layers are global)")
    parser.add_argument("--central-point-fraction", type=float, default=0.0, help="share of central point prompts")
    parser.add_argument("--tight-box-fraction", type=float, default=0.0, help="share of box prompts left unjittered")
    parser.add_argument(
        "--per-object-sampling", action="store_true", help="prompt every object equally often (keep crowded scenes)"
    )
    parser.add_argument(
        "--outward-box-jitter", action="store_true", help="jitter only widens boxes (a box holds its whole object)"
    )
    parser.add_argument(
        "--split-object-weight",
        type=float,
        default=1.0,
        help="how much more often occlusion-split objects are prompted",
    )
    parser.add_argument(
        "--point-candidates",
        choices=("best", "every"),
        default="best",
        help="penalise the best of a point's three masks (SAM) or every one of them",
    )
    parser.add_argument("--iou-loss-weight", type=float, default=1.0, help="weight of the IoU head's MSE loss")
    parser.add_argument(
        "--box-loss-weight", type=float, default=1.0, help="weight of the box mask's loss (the point's stays 1)"
    )
    parser.add_argument(
        "--stop-after", type=int, help="end the run after this step (the schedule still spans --steps)"
    )
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()

    accelerator = Accelerator()
    set_seed(args.seed)
    model = build_model(args.seed, args.patch_size, args.vision_layers)
    if args.init_from:
        warm_start(model, args.init_from)
    processor = build_sam_processor(model.config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate)
    scheduler = get_cosine_schedule_with_warmup(optimizer, args.warmup_steps, args.steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    state_dir = args.output_dir / "state"
    start = 0
    if (state_dir / "progress.json").is_file():
        accelerator.load_state(state_dir)
        start = json.loads((state_dir / "progress.json").read_text())["step"]
    # One independent scene stream per process and resume point, so ranks and restarts never repeat scenes.
    rng = np.random.default_rng([args.seed, accelerator.process_index, start])
    end = min(args.steps, args.stop_after or args.steps)
    progress = tqdm(range(start, end), initial=start, total=args.steps, disable=not accelerator.is_main_process)
    for step in progress:
        batch = sample_batch(
            rng,
            args.images_per_step,
            args.prompts_per_image,
            processor,
            args.central_point_fraction,
            args.tight_box_fraction,
            args.per_object_sampling,
            args.split_object_weight,
            args.outward_box_jitter,
        )
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        loss, logs = training_loss(model, batch, args.iou_loss_weight, args.point_candidates, args.box_loss_weight)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        progress.set_postfix(loss=f"{loss.item():.3f}", **{k: f"{v:.2f}" for k, v in logs.items()})
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == end:
            accelerator.save_state(state_dir)
            if accelerator.is_main_process:
                (state_dir / "progress.json").write_text(json.dumps({"step": step + 1}))
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        final.save_pretrained(args.output_dir / "model")
        processor.save_pretrained(args.output_dir / "model")
        processor.image_processor.save_pretrained(args.output_dir / "model")
    accelerator.end_training()
    if start < end and not math.isfinite(loss.item()):
        raise SystemExit("training diverged (non-finite loss)")
    if args.package_to and accelerator.is_main_process:
        package(args.output_dir / "model", args.package_to, training_summary(args, parser))


def training_summary(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The card's Training text: this run's command (every option not at its default) and, when the run starts from
    a packaged model, that model's own Training text first, so a multi-stage recipe is described stage by stage."""
    paths = {"output_dir", "package_to", "init_from"}
    flags = []
    for name, value in vars(args).items():
        if name in paths or value == parser.get_default(name):
            continue
        flag = "--" + name.replace("_", "-")
        flags.append(flag if value is True else f"{flag} {value}")
    end = min(args.steps, args.stop_after or args.steps)
    run = f"`python examples/train_demo_sam.py {' '.join(flags)}` ({end} steps, {args.images_per_step} images of 128² per step, AdamW)"
    if not args.init_from:
        return f"{run}, from scratch."
    previous = previous_training(args.init_from)
    if previous is None:
        return f"{run}, starting from `{args.init_from}`."
    return f"{previous}\n\nThen, from those weights (`--init-from`): {run}."


def previous_training(model_dir: Path) -> str | None:
    """The Training section of the model card in `model_dir`, if it has one."""
    card = Path(model_dir) / "README.md"
    if not card.is_file():
        return None
    match = re.search(r"^## Training\n+(.*?)\n+(?=^## |\Z)", card.read_text(encoding="utf-8"), re.M | re.S)
    return match.group(1).strip() if match else None


def package(model_dir: Path, target: Path, training: str) -> None:
    """Copy the trained model to `target` (e.g. the package's assets) with a model card holding held-out IoU."""
    import shutil

    from hf_promptseg.hub import write_model_card
    from hf_promptseg.utils.files import atomic_output_dir

    held_out = make_scenes(DEMO_SAM_CARD_SCENES, seed=DEMO_SAM_CARD_SEED, height=IMAGE_SIZE, width=IMAGE_SIZE)
    segmenter = PromptedSegmenter(str(model_dir))
    metrics = evaluate_prompted_segmentation(segmenter, held_out)
    parameters = sum(p.numel() for p in segmenter.model.parameters()) / 1e6
    patch = segmenter.model.config.vision_config.patch_size
    with atomic_output_dir(target, overwrite=True) as tmp:
        for path in model_dir.iterdir():
            shutil.copy2(path, tmp / path.name)
        write_model_card(
            tmp,
            kind="sam",
            repo_id="hf-promptseg/demo-sam",
            summary=f"A {parameters:.1f} M-parameter SAM (transformers `SamModel`, 128×128 input, {patch}-pixel "
            "patches) trained from scratch on procedural scenes to answer point and box prompts. It is the offline default of "
            "`hf-promptseg demo`; it knows textured shapes, not natural images.",
            training=training,
            eval_results={"mean_iou_point": metrics["mean_iou_point"], "mean_iou_box": metrics["mean_iou_box"]},
            eval_dataset=f"hf-promptseg synthetic scenes ({DEMO_SAM_CARD_SCENES} held-out, seed {DEMO_SAM_CARD_SEED})",
            datasets=None,
        )
    print(f"packaged {target}: {metrics}")


if __name__ == "__main__":
    main()
