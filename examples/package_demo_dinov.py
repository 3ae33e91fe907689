"""Package a trained DINOv as the embedded demo model (`hf_promptseg/assets/demo_dinov`) with an evaluated card.

The recipe (two stages of `hf-promptseg train --family dinov`, configs in `examples/configs/dinov/`):

    hf-promptseg train --family dinov --config examples/configs/dinov/demo-dinov-stage1.yaml --output_dir runs/d1
    hf-promptseg train --family dinov --config examples/configs/dinov/demo-dinov-stage2.yaml \
        --base_model runs/d1/final --output_dir runs/d2
    python examples/package_demo_dinov.py runs/d2/final src/hf_promptseg/assets/demo_dinov --training-seconds S1 S2

The card's numbers come from `hf_promptseg.models.dinov.demo_dinov.card_metrics` on held-out scenes (seed `DEMO_DINOV_CARD_SEED`; training used seed 0),
for the trained model, the untrained model of the same initialisation and the pasted-prompt baselines;
`tests/models/dinov/test_demo_dinov.py` recomputes them from the shipped weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from hf_promptseg.assets import DEMO_DINOV_CARD_SEED
from hf_promptseg.models.dinov.demo_dinov import DEMO_DINOV_CARD_SCENES, card_metrics

# The referring filter at 64²: a proposal needs a predicted IoU above 0.3 and more than 2 pixels at 1/4 resolution
# (the reference's 0.5 / 50 are for 800-pixel images).
DEMO_REFERRING_FILTER = {"iou_threshold": 0.3, "nms_threshold": 0.7, "min_mask_area": 2}
HEADLINE = ("referring_miou", "paste_miou", "map", "map_50", "paste_map", "semantic_miou", "paste_semantic_miou")


def _table(trained: dict[str, Any], untrained: dict[str, Any]) -> str:
    rows = [
        ("cross-image referring mIoU (mask / scribble / box / point prompts)", "referring_miou", "paste_miou"),
        ("  mask prompts", "referring_miou_mask", "paste_miou_mask"),
        ("  scribble prompts", "referring_miou_scribble", "paste_miou_scribble"),
        ("  box prompts", "referring_miou_box", "paste_miou_box"),
        ("  point prompts", "referring_miou_point", "paste_miou_point"),
        ("generic instance mAP (COCOeval segm, AP@[.50:.95])", "map", "paste_map"),
        ("generic AP50", "map_50", "paste_map_50"),
        ("generic semantic mIoU", "semantic_miou", "paste_semantic_miou"),
    ]
    lines = ["| metric | trained | untrained (same init) | pasted-prompt baseline |", "|---|---|---|---|"]
    for label, key, baseline in rows:
        lines.append(f"| {label} | {trained[key]:.3f} | {untrained[key]:.3f} | {trained[baseline]:.3f} |")
    return "\n".join(lines)


def package(model_dir: Path, target: Path, training_seconds: list[float]) -> dict[str, Any]:
    from hf_promptseg.hub import write_model_card
    from hf_promptseg.models.dinov import DinovConfig
    from hf_promptseg.training.dinov_trainer import build_dinov
    from hf_promptseg.utils.files import atomic_output_dir

    with atomic_output_dir(target, overwrite=True) as tmp:
        for path in model_dir.iterdir():
            if path.is_file():
                shutil.copy2(path, tmp / path.name)
        config = DinovConfig.from_pretrained(tmp)
        for name, value in DEMO_REFERRING_FILTER.items():
            setattr(config, name, value)
        config.save_pretrained(tmp)
        trained = card_metrics(str(tmp))
        untrained_dir = tmp / "untrained"
        build_dinov("random:tiny", 0).save_pretrained(untrained_dir)
        shutil.copy2(tmp / "preprocessor_config.json", untrained_dir / "preprocessor_config.json")
        untrained = card_metrics(str(untrained_dir))
        shutil.rmtree(untrained_dir)
        parameters = sum(p.numel() for p in build_dinov(str(tmp)).parameters())
        stage_minutes = " and ".join(f"{s / 60:.0f}" for s in training_seconds)
        training = (
            "Two stages of `hf-promptseg train --family dinov` on 3,000 procedural scenes of 64² (seed 0; shape kinds "
            "ellipse / rectangle / triangle / polygon / star as categories, random colours and textures), from random "
            "weights, 8 images per step, AdamW (lr 1e-3 then 3e-4, ×0.1 at the last 10 % / 20 %), one CPU thread: "
            "(1) 8,000 steps of the generic task (`examples/configs/dinov/demo-dinov-stage1.yaml`); (2) 1,500 steps "
            "of both tasks, generic plus self-referring with mask, scribble, box and point prompts "
            f"(`demo-dinov-stage2.yaml`). Wall time {stage_minutes} minutes on a shared 2-core Intel Xeon."
        )
        write_model_card(
            tmp,
            kind="dinov",
            repo_id="hf-promptseg/demo-dinov",
            summary=f"A {parameters / 1e6:.2f} M-parameter DINOv (`DinovForVisualPromptSegmentation`, tiny Swin "
            "backbone, 64² input) trained from scratch on procedural scenes. It is the offline default of "
            "`hf-promptseg demo` and of the app's In-context tab; it knows textured shapes, not natural images.",
            training=training,
            eval_results={key: trained[key] for key in HEADLINE},
            eval_dataset=f"hf-promptseg synthetic scenes ({DEMO_DINOV_CARD_SCENES} held-out, seed {DEMO_DINOV_CARD_SEED})",
            eval_table=_table(trained, untrained),
            limitations="A toy: 64² inputs and five shape kinds of procedural scenes. Categories are told apart by "
            "shape alone (colours and textures are random), which it does only partly: the generic masks are better "
            "than the categories it assigns. Not for natural images.",
        )
        (tmp / "card_metrics.json").write_text(json.dumps({"trained": trained, "untrained": untrained}, indent=2))
    return {"trained": trained, "untrained": untrained}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--training-seconds", type=float, nargs="*", default=[])
    args = parser.parse_args()
    results = package(args.model_dir, args.target, args.training_seconds)
    print(json.dumps({k: {m: results[k][m] for m in HEADLINE} for k in results}, indent=2))


if __name__ == "__main__":
    main()
