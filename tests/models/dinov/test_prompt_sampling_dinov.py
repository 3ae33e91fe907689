import pytest
import torch

from hf_promptseg.data.instances import decode_instances, scene_instance_dataset
from hf_promptseg.data.scenes import make_scenes
from hf_promptseg.models.dinov.prompt_sampling_dinov import (
    PROMPT_KINDS,
    DinovInstances,
    DinovPromptSamplingConfig,
    kind_counts,
    sample_generic_prompts,
    sample_referring_prompts,
)


@pytest.fixture(scope="module")
def images():
    dataset, _ = scene_instance_dataset(make_scenes(4, seed=2, height=64, width=64))
    rows = [decode_instances(example) for example in dataset]
    return [DinovInstances.from_arrays(r["masks"], r["category_ids"], padded_size=(64, 96)) for r in rows]


def _equal(a, b):
    fields = [f for f in vars(a) if f != "targets"]
    same = all(
        torch.equal(getattr(a, f), getattr(b, f)) if torch.is_tensor(getattr(a, f)) else getattr(a, f) == getattr(b, f)
        for f in fields
    )
    return same and all(torch.equal(x.masks, y.masks) and torch.equal(x.labels, y.labels)
                        for x, y in zip(a.targets, b.targets))  # fmt: skip


def test_sampling_is_seeded(images):
    config = DinovPromptSamplingConfig(num_clicks=6, num_content_prompts=3)
    assert _equal(sample_referring_prompts(images, config, 3), sample_referring_prompts(images, config, 3))
    assert not _equal(sample_referring_prompts(images, config, 3), sample_referring_prompts(images, config, 4))
    assert _equal(sample_generic_prompts(images, config, 1), sample_generic_prompts(images, config, 1))


def test_each_kind_gets_its_share(images):
    config = DinovPromptSamplingConfig(num_clicks=8, num_content_prompts=8,
                                       referring_kind_shares={"mask": 1, "scribble": 1, "box": 2, "point": 0})  # fmt: skip
    totals = dict.fromkeys(PROMPT_KINDS, 0)
    for seed in range(25):
        for kind, count in kind_counts(sample_referring_prompts(images, config, seed).prompt_kinds).items():
            totals[kind] += count
    drawn = sum(totals.values())
    assert totals["point"] == 0
    assert abs(totals["box"] / drawn - 0.5) < 0.06 and abs(totals["mask"] / drawn - 0.25) < 0.06
    generic = sample_generic_prompts(images, DinovPromptSamplingConfig(generic_kind_shares={"scribble": 1}), 0)
    assert set(kind_counts(generic.prompt_kinds)) == set(PROMPT_KINDS)
    assert kind_counts(generic.prompt_kinds)["scribble"] == int(generic.prompt_valid.sum())
    with pytest.raises(ValueError, match="referring_kind_shares"):
        DinovPromptSamplingConfig(referring_kind_shares={"lasso": 1.0})


def test_referring_prompts_lie_on_their_instance_and_clicks_hit_their_targets(images):
    config = DinovPromptSamplingConfig(num_clicks=10, num_content_prompts=4, num_negative_clicks=2)
    batch = sample_referring_prompts(images, config, 0)
    assert batch.prompt_masks.shape == (4, 4, 64, 96) and batch.click_targets.shape == (4, 12, 6)
    for b, image in enumerate(images):
        for n, kind in enumerate(batch.prompt_kinds[b]):
            instance = image.masks[batch.content_instances[b, n]]
            prompt = batch.prompt_masks[b, n].bool()
            assert prompt.any()
            if kind in ("mask", "scribble"):
                assert not (prompt & ~instance).any(), f"a {kind} prompt must stay inside its instance"
            if kind == "mask":
                assert torch.equal(prompt, instance)
        for p, (x, y) in enumerate(batch.click_points[b].long().tolist()):
            targets = [t for t in batch.click_targets[b, p].tolist() if t >= 0]
            if p < 10:
                assert targets and image.masks[targets[0], y, x], "a positive click lies in its first target"
            else:
                assert not image.masks[:, y, x].any() and not targets, "negative clicks fall outside every mask"
        assert batch.targets[b].masks.shape == image.masks.shape
        assert (batch.click_boxes[b, :, 2:] * torch.tensor([96, 64]) - 6).abs().max() < 0.1


def test_generic_targets_are_labelled_by_prompt_index(images):
    config = DinovPromptSamplingConfig(max_train_examples=2)
    batch = sample_generic_prompts(images, config, 7)
    categories = batch.category_ids.tolist()
    present = sorted({int(c) for image in images for c in image.category_ids})
    assert categories == present
    assert torch.allclose(batch.aggregation.sum(1), torch.ones(len(categories)))
    per_category = (batch.aggregation > 0).sum(1)
    assert per_category.min() >= 1 and per_category.max() <= 2
    flat_masks = batch.prompt_masks.flatten(0, 1)
    for k, category in enumerate(categories):
        for slot in torch.nonzero(batch.aggregation[k]).flatten().tolist():
            b, n = divmod(slot, batch.prompt_masks.shape[1])
            assert batch.prompt_valid[b, n]
            owners = images[b].category_ids[(images[b].masks & flat_masks[slot].bool()).flatten(1).any(1)]
            assert category in owners.tolist(), "each example prompt is drawn on an instance of its category"
    for image, target in zip(images, batch.targets):
        assert [categories[i] for i in target.labels.tolist()] == image.category_ids.tolist()
        assert ((target.boxes >= 0) & (target.boxes <= 1)).all()
    with pytest.raises(ValueError, match="no non-empty instance mask"):
        sample_generic_prompts([DinovInstances(torch.zeros(1, 8, 8), torch.tensor([1]))], config, 0)
