"""Interim `make demo`: the whole SAM path on a random-weight checkpoint (no download possible here).

Builds a small segment-anything-format checkpoint with random weights, converts it with `convert_sam_checkpoint`,
then runs a point prompt through `AutoProcessor`/`AutoModelForMaskGeneration` and automatic mask generation through
`pipeline("mask-generation")`. Masks carry no meaning (random weights): this checks the plumbing end to end. The
trained embedded demo model replaces it (`hf-promptseg demo`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoModelForMaskGeneration, AutoProcessor, SamConfig, SamModel, pipeline

import hf_promptseg  # noqa: F401  (registers the pipeline and processors)
from hf_promptseg.models.sam import convert_sam_checkpoint
from hf_promptseg.models.sam.convert_sam_checkpoint import to_segment_anything_state_dict


def _random_segment_anything_checkpoint(path: Path) -> None:
    config = SamConfig(
        vision_config={
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "global_attn_indexes": [1],
            "num_pos_feats": 32,
            "output_channels": 64,
        },
        prompt_encoder_config={"hidden_size": 64},
        mask_decoder_config={"hidden_size": 64, "mlp_dim": 128, "num_attention_heads": 4},
    )
    torch.manual_seed(0)
    model = SamModel(config)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.1)
    state = to_segment_anything_state_dict(model.state_dict())
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo_output")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    checkpoint = out / "sam_random.safetensors"
    _random_segment_anything_checkpoint(checkpoint)
    model_dir = convert_sam_checkpoint(checkpoint, out / "sam-random-converted", decoder_num_heads=4, overwrite=True)

    rng = np.random.RandomState(0)
    image = Image.fromarray(rng.randint(0, 255, (240, 320, 3), dtype=np.uint8))
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForMaskGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    inputs = processor(image, input_points=[[[160, 120]]], input_labels=[[1]], return_tensors="pt")
    with torch.no_grad():
        prediction = model(**inputs)
    masks = processor.post_process_masks(
        prediction.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
    )
    generator = pipeline("mask-generation", model=str(model_dir), dtype=torch.float32)
    generated = generator(
        image, points_per_batch=64, points_per_crop=8, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )
    summary = {
        "note": "random-weight SAM: plumbing check only; the trained embedded demo model arrives with `hf-promptseg demo`",
        "converted_dir": str(model_dir),
        "point_prompt_mask_shape": list(masks[0].shape),
        "point_prompt_iou_scores": prediction.iou_scores[0, 0].tolist(),
        "auto_masks": len(generated["masks"]),
        "seconds": round(time.perf_counter() - start, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"wrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
