from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from hf_promptseg.data.instances import scene_instance_dataset
from hf_promptseg.data.scenes import make_scenes
from hf_promptseg.models.dinov.evaluation_dinov import (
    evaluate_dinov,
    evaluate_generic,
    evaluate_referring,
    load_evaluation_data,
    load_for_evaluation,
)
from hf_promptseg.models.dinov.prompt_sampling_dinov import PROMPT_KINDS

REFERRING_SCORES = ["referring_miou", "referring_ciou", "referring_hit_rate", "paste_miou", "paste_ciou",
                    *(f"{name}_{kind}" for name in ("referring_miou", "paste_miou") for kind in PROMPT_KINDS)]  # fmt: skip
GENERIC_SCORES = ["map", "map_50", "map_75", "mar", "semantic_miou", "semantic_background_iou", "paste_map",
                  "paste_map_50", "paste_map_75", "paste_semantic_miou"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    return load_for_evaluation("random:tiny")


@pytest.fixture(scope="module")
def scenes():
    return load_evaluation_data("scenes:6:0:64")


def test_referring_metrics_are_bounded_and_reproducible(tiny, scenes):
    model, processor = tiny
    first = evaluate_referring(model, processor, scenes, batch_size=4, progress=False)
    assert set(REFERRING_SCORES) <= set(first)
    assert all(0.0 <= first[name] <= 1.0 for name in REFERRING_SCORES), first
    assert first["num_prompts"] == len(PROMPT_KINDS) * first["num_instances"] > 0
    assert evaluate_referring(model, processor, "scenes:6:0:64", batch_size=3, progress=False) == first, (
        "same seed, other batching: same numbers"
    )
    other_seed = evaluate_referring(model, processor, scenes, seed=1, progress=False)
    assert other_seed["paste_miou"] != first["paste_miou"], "the seed picks other references and prompts"


def test_paste_baseline_is_perfect_on_identical_images(tiny):
    model, processor = tiny
    scene = make_scenes(1, seed=3, height=64, width=64)[0]
    twins = scene_instance_dataset([scene, scene])
    metrics = evaluate_referring(model, processor, twins, prompt_kinds=["mask", "point"], progress=False)
    assert metrics["paste_miou_mask"] == 1.0, "a mask prompt pasted onto the same image is its target"
    assert metrics["paste_miou_point"] < 1.0
    assert metrics["num_instances"] == 2 * len(scene.masks) and metrics["num_unreferenced_instances"] == 0
    generic = evaluate_generic(model, processor, twins, bank_images=1, progress=False)
    assert generic["paste_map"] == pytest.approx(1.0) and generic["paste_semantic_miou"] == pytest.approx(1.0)
    assert generic["num_bank_instances"] == len(scene.masks)


def test_generic_metrics_are_bounded_and_reproducible(tiny, scenes):
    model, processor = tiny
    model.train()
    first = evaluate_generic(model, processor, scenes, bank_images=2, num_examples=4, batch_size=4, progress=False)
    assert model.training, "the model's mode is restored"
    assert set(GENERIC_SCORES) <= set(first)
    assert all(0.0 <= first[name] <= 1.0 for name in GENERIC_SCORES), first
    assert first["num_target_images"] == 4 and 1 <= first["num_categories"] <= 5
    again = evaluate_generic(model, processor, scenes, bank_images=2, num_examples=4, batch_size=1, progress=False)
    assert again == first
    model.eval()


def test_reference_filter(tiny, scenes):
    import copy

    model, processor = tiny
    options = dict(prompt_kinds=["mask", "box"], progress=False)
    plain = evaluate_referring(model, processor, scenes, **options)
    filtered = evaluate_referring(model, processor, scenes, reference_filter=True, **options)
    assert filtered["num_filter_fallbacks"] == 6, "a random IoU head predicts < 0.5 everywhere: all fall back"
    assert {k: v for k, v in filtered.items() if k != "num_filter_fallbacks"} == plain
    confident = copy.deepcopy(model)
    with torch.no_grad():
        confident.iou_head.layers[-1].bias.fill_(5.0)
    kept = evaluate_referring(confident, processor, scenes, reference_filter=True, **options)
    assert kept["num_filter_fallbacks"] == 0 and 0 <= kept["referring_miou"] <= 1


def test_parquet_data_gives_the_same_numbers(tiny, scenes, tmp_path):
    model, processor = tiny
    scenes.dataset.to_parquet(str(tmp_path / "scenes.parquet"))
    from_parquet = load_evaluation_data(str(tmp_path / "scenes.parquet"))
    assert len(from_parquet.dataset) == 6
    options = dict(prompt_kinds=["mask"], progress=False)
    assert evaluate_referring(model, processor, from_parquet, **options) == evaluate_referring(
        model, processor, scenes, **options
    )


def test_evaluate_dinov_merges_both_tasks(tiny, scenes):
    model, processor = tiny
    both = evaluate_dinov(model, processor, scenes, task="both", bank_images=2, prompt_kinds=["box"], progress=False)
    assert {"referring_miou_box", "map", "semantic_miou"} <= set(both) and "referring_miou_mask" not in both
    referring = evaluate_dinov(model, processor, scenes, task="referring", prompt_kinds=["box"], progress=False)
    assert referring.items() <= both.items()


def test_bad_input_is_named(tiny, scenes):
    model, processor = tiny
    with pytest.raises(ValueError, match="`task` must be one of"):
        evaluate_dinov(model, processor, scenes, task="panoptic")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bank_images'\]"):
        evaluate_dinov(model, processor, scenes, task="referring", bank_images=2)
    with pytest.raises(ValueError, match="`bank_images`=6 leaves no image"):
        evaluate_generic(model, processor, scenes, bank_images=6)
    with pytest.raises(ValueError, match="`bank_images` must be positive"):
        evaluate_generic(model, processor, scenes, bank_images=0)
    with pytest.raises(ValueError, match="`prompt_kinds`"):
        evaluate_referring(model, processor, scenes, prompt_kinds=["lasso"])
    lonely = scene_instance_dataset(make_scenes(1, seed=0, height=64, width=64))
    with pytest.raises(ValueError, match="two images sharing a category"):
        evaluate_referring(model, processor, lonely)
    with pytest.raises(ValueError, match="empty"):
        load_evaluation_data(lonely._replace(dataset=lonely.dataset.select([])))
    with pytest.raises(TypeError, match="`data` must be"):
        load_evaluation_data(42)


def test_load_for_evaluation_uses_the_saved_processor(tmp_path):
    from hf_promptseg.models.dinov import DinovImageProcessor
    from hf_promptseg.training.dinov_trainer import build_dinov

    build_dinov("random:tiny").save_pretrained(tmp_path)
    DinovImageProcessor(size={"shortest_edge": 96, "longest_edge": 96}).save_pretrained(tmp_path)
    model, processor = load_for_evaluation(str(tmp_path))
    assert not model.training and processor.image_processor.size["longest_edge"] == 96
    _, resized = load_for_evaluation(str(tmp_path), image_size=32)
    assert resized.image_processor.size == {"shortest_edge": 32, "longest_edge": 32}
    image = np.zeros((48, 64, 3), np.uint8)
    assert tuple(resized.image_processor(image)["pixel_values"].shape[-2:]) == (32, 32)


# An oracle "DINOv" that reads the answer painted into its images (channel 0 = 40 × category, channel 1 = 40 ×
# (instance + 1)), so a perfect model's scores go through the whole evaluation: prompt drawing, bank, padding of
# mixed sizes, unpadding, the referring / generic selection, COCOeval and the semantic maps.
RECTANGLES = [  # per image (height, width) and (category, top, bottom, left, right), 4-pixel aligned, 8 px apart
    ((72, 56), [(1, 4, 24, 4, 20), (2, 32, 52, 8, 28), (1, 40, 68, 36, 52)]),
    ((64, 64), [(1, 8, 28, 8, 32), (2, 36, 60, 36, 60)]),
    ((64, 64), [(2, 4, 20, 4, 20), (1, 28, 44, 28, 60), (3, 48, 60, 4, 16)]),
    ((72, 56), [(1, 4, 20, 36, 52), (2, 28, 48, 4, 24)]),
]


def _painted_instances():
    import datasets

    from hf_promptseg.data.instances import load_instance_dataset

    images, masks, categories = [], [], []
    for (height, width), rectangles in RECTANGLES:
        image = np.zeros((height, width, 3), np.uint8)
        image_masks = []
        for instance, (category, top, bottom, left, right) in enumerate(rectangles):
            image[top:bottom, left:right, :2] = (40 * category, 40 * (instance + 1))
            mask = np.zeros((height, width), np.uint8)
            mask[top:bottom, left:right] = 1
            image_masks.append(mask)
        images.append(Image.fromarray(image))
        masks.append(image_masks)
        categories.append([r[0] for r in rectangles])
    rows = datasets.Dataset.from_dict({"image": images, "masks": masks, "category_ids": categories})
    return load_instance_dataset(rows, categories={1: "one", 2: "two", 3: "three"})


class _OracleInner:
    slots = 8

    @staticmethod
    def get_image_features(pixel_values):
        from hf_promptseg.models.dinov.image_processing_dinov import DINOV_MEAN, DINOV_STD

        raw = pixel_values * torch.tensor(DINOV_STD)[:, None, None] + torch.tensor(DINOV_MEAN)[:, None, None]
        maps = (raw[:, :2] / 40).round().long()
        return SimpleNamespace(multi_scale_features=(maps[:, 0], maps[:, 1]), mask_features=None)

    def encode_visual_prompts(self, features, prompt_masks):
        category = features[0]
        tokens = torch.zeros(*prompt_masks.shape[:2], self.slots)
        for b in range(prompt_masks.shape[0]):
            for n in range(prompt_masks.shape[1]):
                under = category[b][prompt_masks[b, n] > 0]
                tokens[b, n, int(under[under > 0].mode().values)] = 1.0
        return SimpleNamespace(tokens=tokens)

    @staticmethod
    def prompt_queries(tokens):
        return tokens, None

    def proposals(self, features):
        """(B, slots, h/4, w/4) logits of every instance's mask and (B, slots) its category (-1: no instance).

        +16 inside / -10 outside: the bilinear ×4 upsampling then gives back the 4-aligned rectangles exactly,
        corners included (a corner pixel weighs its own cell 0.39, a pixel past an edge 0.375)."""
        category, instance = features.multi_scale_features
        masks = torch.stack([instance == q + 1 for q in range(self.slots)], 1)
        kinds = torch.stack([(category * m).flatten(1).max(1).values for m in masks.unbind(1)], 1)
        return (masks[..., 1::4, 1::4].float() * 26 - 10), torch.where(masks.flatten(2).any(-1), kinds, -1)


class _OracleDinov(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(hidden_size=_OracleInner.slots, max_prompts=5)  # 5: prompts get chunked
        self.model = _OracleInner()
        self.name_or_path = "oracle"

    def encode_visual_prompts(self, pixel_values, prompt_masks):
        return self.model.encode_visual_prompts(
            self.model.get_image_features(pixel_values).multi_scale_features, prompt_masks
        )

    def _scores(self, kinds, queries):
        return (kinds[:, :, None] == queries.argmax(-1)[:, None, :]).float() * 20 - 10

    def forward(self, pixel_values, prompt_tokens=None, task="generic"):
        masks, kinds = self.model.proposals(self.model.get_image_features(pixel_values))
        return SimpleNamespace(logits=self._scores(kinds, prompt_tokens), pred_masks=masks)

    def referring(self, features, queries, boxes, padded_size):
        masks, kinds = self.model.proposals(features)
        return SimpleNamespace(match_scores=self._scores(kinds, queries).transpose(1, 2), pred_masks=masks)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_perfect_model_scores_one(batch_size):
    from hf_promptseg.models.dinov import DinovImageProcessor

    data, processor = _painted_instances(), DinovImageProcessor(do_resize=False)
    referring = evaluate_referring(_OracleDinov(), processor, data, batch_size=batch_size, progress=False)
    assert referring["num_unreferenced_instances"] == 1, "category 3 is in one image only"
    for kind in PROMPT_KINDS:
        assert referring[f"referring_miou_{kind}"] == 1.0, kind
    assert referring["referring_ciou"] == 1.0 and referring["paste_miou"] < 1.0
    generic = evaluate_generic(_OracleDinov(), processor, data, bank_images=1, batch_size=batch_size, progress=False)
    assert generic["num_categories"] == 2, "the bank image holds categories 1 and 2; category 3 is not counted"
    assert generic["map"] == pytest.approx(1.0) and generic["map_75"] == pytest.approx(1.0)
    assert generic["semantic_miou"] == 1.0 and generic["semantic_background_iou"] == 1.0
    assert generic["paste_map"] < 0.5
