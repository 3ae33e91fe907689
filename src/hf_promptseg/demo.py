"""Moved: the demo command to `hf_promptseg.commands.demo`, the embedded model's location to `hf_promptseg.assets`,
the predictor to `hf_promptseg.models.sam.prompted_segmentation`, and the helpers to `hf_promptseg.utils`."""

from hf_promptseg.utils.deprecation import moved_names

__getattr__ = moved_names(
    __name__,
    {
        "run_demo": "hf_promptseg.commands.demo",
        "bundled_scene": "hf_promptseg.commands.demo",
        "DEMO_SCENE_SEED": "hf_promptseg.commands.demo",
        "DEFAULT_EVAL_SCENES": "hf_promptseg.commands.demo",
        "DEFAULT_EVAL_SEED": "hf_promptseg.assets:DEMO_SAM_CARD_SEED",
        "CARD_EVAL_SCENES": "hf_promptseg.assets:DEMO_SAM_CARD_SCENES",
        "EMBEDDED_MASK_GENERATION_THRESHOLDS": "hf_promptseg.assets:DEMO_SAM_MASK_GENERATION_THRESHOLDS",
        "DEMO_MODEL_DIR": "hf_promptseg.assets:DEMO_SAM_DIR",
        "default_model_path": "hf_promptseg.assets:demo_sam_path",
        "PromptedSegmenter": "hf_promptseg.models.sam.prompted_segmentation",
        "evaluate_prompts": "hf_promptseg.models.sam.prompted_segmentation:evaluate_prompted_segmentation",
        "boundary_distance": "hf_promptseg.utils.prompt_geometry",
        "interior_point": "hf_promptseg.utils.prompt_geometry",
        "bounding_box": "hf_promptseg.utils.prompt_geometry",
        "mask_iou": "hf_promptseg.utils.masks",
        "overlay": "hf_promptseg.utils.overlays",
        "PALETTE": "hf_promptseg.utils.overlays",
    },
)
