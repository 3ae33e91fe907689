"""Models embedded in the package, so the demo, the tests and first steps run offline.

`demo_sam/` is a small transformers `SamModel` trained on procedural scenes (`hf_promptseg.data.scenes`) by
`examples/train_demo_sam.py`; its model card (`demo_sam/README.md`) holds its recipe and held-out metrics.
`demo_dinov/` is a small `DinovForVisualPromptSegmentation` trained on the same scenes by `hf-promptseg train
--family dinov` (`examples/configs/dinov/demo-dinov-stage*.yaml`); its card (`demo_dinov/README.md`) likewise.

Example:

```python
from transformers import AutoModelForMaskGeneration
from hf_promptseg.assets import demo_sam_path

model = AutoModelForMaskGeneration.from_pretrained(demo_sam_path())
```
"""

from __future__ import annotations

from importlib import resources

DEMO_SAM_DIR = resources.files(__name__) / "demo_sam"
# The card's held-out set: the first 256 scenes of seed 7 at the model's 128² input (≈850 objects, ±0.01 IoU).
DEMO_SAM_CARD_SEED = 7
DEMO_SAM_CARD_SCENES = 256
# The embedded model's IoU head is calibrated low; these keep its object masks and drop most background fragments
# (transformers' defaults, 0.88 / 0.95, are tuned for the released SAMs).
DEMO_SAM_MASK_GENERATION_THRESHOLDS = {"pred_iou_thresh": 0.6, "stability_score_thresh": 0.85}


DEMO_DINOV_DIR = resources.files(__name__) / "demo_dinov"
# The DINOv card's held-out set: scenes of this seed at 64² (the training scenes are seed 0).
DEMO_DINOV_CARD_SEED = 7


def demo_sam_path() -> str:
    """Directory of the embedded demo SAM (loads with `from_pretrained` and `pipeline("mask-generation")`)."""
    return str(DEMO_SAM_DIR)


def demo_dinov_path() -> str:
    """Directory of the embedded demo DINOv (loads with `from_pretrained` and `pipeline("visual-prompt-segmentation")`)."""
    return str(DEMO_DINOV_DIR)


__all__ = [
    "DEMO_DINOV_CARD_SEED",
    "DEMO_DINOV_DIR",
    "DEMO_SAM_CARD_SCENES",
    "DEMO_SAM_CARD_SEED",
    "DEMO_SAM_DIR",
    "DEMO_SAM_MASK_GENERATION_THRESHOLDS",
    "demo_dinov_path",
    "demo_sam_path",
]
