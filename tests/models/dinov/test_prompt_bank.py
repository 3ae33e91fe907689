import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image

from hf_promptseg.data.scenes import make_scenes
from hf_promptseg.models.dinov import DinovForVisualPromptSegmentation, DinovImageProcessor, DinovProcessor
from hf_promptseg.models.dinov.prompt_bank import DinovPromptBank, _reference_label_order
from tests.models.dinov.test_modeling_dinov import tiny_config


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = DinovForVisualPromptSegmentation(tiny_config()).eval()
    processor = DinovProcessor(DinovImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}))
    scenes = make_scenes(3, seed=1, height=64, width=80)
    return model, processor, scenes


def test_build_from_a_dataset_keeps_each_token_with_its_label(setup):
    model, processor, scenes = setup
    rows = [(s.image, m, shape) for s in scenes for m, shape in zip(s.masks, s.shapes)]
    dataset = Dataset.from_dict(
        {"image": [Image.fromarray(r[0]) for r in rows], "mask": [Image.fromarray(r[1].astype(np.uint8) * 255) for r in rows],
         "label": [r[2] for r in rows]}
    )  # fmt: skip
    bank = DinovPromptBank.build(model, processor, dataset, progress=False)
    assert sum(bank.counts) == len(rows) and set(bank.categories) == {r[2] for r in rows}
    per_image = DinovPromptBank.build(
        model, processor, {"image": [s.image for s in scenes], "mask": [np.stack(s.masks) for s in scenes],
                           "label": [s.shapes for s in scenes]}, progress=False,
    )  # fmt: skip
    for name in bank.categories:  # one image at a time or all its masks together: the same tokens
        torch.testing.assert_close(per_image.tokens[name], bank.tokens[name], atol=1e-5, rtol=1e-5)


def test_reference_label_order_reproduces_the_mispairing():
    assert _reference_label_order(["b", "a", "b", "c", "a"]) == ["b", "b", "a", "a", "c"]


def test_sampling_is_seeded_and_save_load_is_exact(setup, tmp_path):
    model = setup[0]
    bank = DinovPromptBank({"a": torch.randn(5, 32), "b": torch.randn(2, 32)}, model_name_or_path="org/dinov")
    first, again = bank.sample_means(16, seed=3), bank.sample_means(16, seed=3)
    assert torch.equal(first, again) and not torch.equal(first, bank.sample_means(16, seed=4))
    bank.save_pretrained(tmp_path)
    loaded = DinovPromptBank.from_pretrained(tmp_path)
    assert loaded.categories == ["a", "b"] and loaded.model_name_or_path == "org/dinov"
    assert all(torch.equal(loaded.tokens[k], bank.tokens[k]) for k in bank.categories)
    queries = loaded.category_queries(model, num_examples=4, seed=0)
    assert queries.shape == (1, 2, 32)
    with pytest.raises(ValueError, match="not in the bank"):
        bank.sample_means(categories=["zebra"])
    with pytest.raises(ValueError, match="hidden size"):
        DinovPromptBank({"a": torch.randn(1, 8)}).category_queries(model)
    with pytest.raises(ValueError, match="at least one category"):
        DinovPromptBank({})
