"""DINOv trainer validation: whole-set evaluation at the right steps, best/ (and its resume), cards, bad input."""

import json

import pytest
import torch
from huggingface_hub import ModelCard

from hf_promptseg.commands.train import parse_train_arguments
from hf_promptseg.models.dinov import DinovForVisualPromptSegmentation
from hf_promptseg.training.dinov_trainer import DinovTrainer, DinovTrainingArguments

FAST = dict(train_data="scenes:6:0:64", per_device_train_batch_size=2, num_points=256, num_denoising=8,
            num_clicks=3, num_content_prompts=2, logging_steps=10, task="both",
            validation_data="scenes:4:7:64", eval_bank_images=2)  # fmt: skip


@pytest.fixture
def scripted(monkeypatch):
    """`DinovTrainer.evaluate` returning `scores[step]` as `referring_miou`; records the weights it saw per step."""
    seen: dict[int, dict[str, torch.Tensor]] = {}
    scores: dict[int, float] = {}

    def evaluate(self):
        step = self.scheduler.last_epoch  # stepped once per optimizer step (and resumed with the state)
        seen[step] = {k: v.detach().clone() for k, v in self.unwrapped_model().state_dict().items()}
        return {"referring_miou": scores[step], "paste_miou": 0.1, "map": 0.0, "num_prompts": 3}

    monkeypatch.setattr(DinovTrainer, "evaluate", evaluate)
    return scores, seen


def test_validation_steps_history_and_best_checkpoint(tmp_path, scripted):
    scores, seen = scripted
    scores.update({2: 0.2, 4: 0.5, 5: 0.3})
    args = DinovTrainingArguments(output_dir=str(tmp_path), max_steps=5, eval_every_steps=2, **FAST)
    result = DinovTrainer(args).train()
    assert sorted(seen) == [2, 4, 5]  # every 2 steps and after the last
    assert (result["best_step"], result["best_metric"]) == (4, 0.5)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    validated = {h["step"]: h["validation"]["referring_miou"] for h in metrics["history"] if "validation" in h}
    assert validated == {2: 0.2, 4: 0.5, 5: 0.3}
    assert metrics["best_step"] == 4 and metrics["final_validation"]["referring_miou"] == 0.3
    best = DinovForVisualPromptSegmentation.from_pretrained(tmp_path / "best").state_dict()
    assert best.keys() == seen[4].keys() and all(torch.equal(best[k], seen[4][k]) for k in best)
    final = DinovForVisualPromptSegmentation.from_pretrained(tmp_path / "final").state_dict()
    assert all(torch.equal(final[k], seen[5][k]) for k in final)
    assert any(not torch.equal(final[k], best[k]) for k in best), "best/ must not be the last step here"
    card = ModelCard.load(tmp_path / "best" / "README.md")
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"referring_miou": 0.5, "map": 0.0}
    assert "after step 4" in card.text and "| referring_miou | 0.5000 | 0.1000 |" in card.text
    assert not list(tmp_path.glob(".best.*"))


def test_resume_keeps_the_best(tmp_path, scripted):
    scores, _ = scripted
    scores.update({1: 0.2, 2: 0.6, 3: 0.3, 4: 0.4})
    args = dict(output_dir=str(tmp_path), max_steps=4, eval_every_steps=1, **FAST)
    assert DinovTrainer(DinovTrainingArguments(stop_after_steps=2, **args)).train()["stopped_at_step"] == 2
    progress = json.loads((tmp_path / "checkpoint" / "progress.json").read_text())
    assert (progress["best_step"], progress["best_metric"]) == (2, 0.6)
    saved = (tmp_path / "best" / "model.safetensors").read_bytes()
    (tmp_path / ".best.999999.stale.tmp").mkdir()  # a writer killed mid-save
    result = DinovTrainer(DinovTrainingArguments(**args)).train()
    assert (result["best_step"], result["best_metric"]) == (2, 0.6)
    assert (tmp_path / "best" / "model.safetensors").read_bytes() == saved
    assert not (tmp_path / ".best.999999.stale.tmp").exists()


def test_real_validation_fills_the_final_card(tmp_path):
    args = DinovTrainingArguments(output_dir=str(tmp_path), max_steps=2, **FAST)
    result = DinovTrainer(args).train()
    assert [h["step"] for h in result["history"] if "validation" in h] == [2]  # eval_every_steps 0: the end only
    final_metrics = result["final_validation"]
    assert {"referring_miou", "paste_miou", "map", "semantic_miou"} <= set(final_metrics)
    card = ModelCard.load(tmp_path / "final" / "README.md")
    listed = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert listed["referring_miou"] == pytest.approx(final_metrics["referring_miou"])
    assert listed["map"] == pytest.approx(final_metrics["map"]) and "paste_miou" not in listed
    assert "scenes:6:0:64" in card.text and "2 steps" in card.text  # the training summary
    assert result["best_step"] == 2 and (tmp_path / "best" / "README.md").is_file()


def test_lora_best_holds_the_adapter(tmp_path, scripted):
    scores, _ = scripted
    scores.update({1: 0.4, 2: 0.1})
    args = DinovTrainingArguments(output_dir=str(tmp_path), max_steps=2, eval_every_steps=1, method="lora",
                                  lora_r=2, **FAST)  # fmt: skip
    DinovTrainer(args).train()
    best = tmp_path / "best"
    assert (best / "adapter_config.json").is_file() and (best / "adapter_model.safetensors").is_file()
    assert not (best / "model.safetensors").exists() and (best / "base" / "config.json").is_file()
    card = ModelCard.load(best / "README.md")
    assert "LoRA adapter" in card.text and card.data.eval_results[0].metric_value == 0.4


def test_validation_flags_parse():
    (args,) = parse_train_arguments(
        ["--train_data", "scenes:4", "--validation_data", "scenes:4:7", "--eval_every_steps", "50", "--eval_task",
         "generic", "--metric_for_best", "semantic_miou", "--push_to_hub", "--hub_model_id", "me/dinov"],
        (DinovTrainingArguments,),
    )  # fmt: skip
    assert (args.eval_every_steps, args.eval_task, args.metric_for_best, args.push_to_hub) == (
        50, "generic", "semantic_miou", True,
    )  # fmt: skip
    assert DinovTrainingArguments(task="generic").metric_for_best == "map"
    assert DinovTrainingArguments(task="both").metric_for_best == "referring_miou"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(metric_for_best="dice"), r"`metric_for_best` 'dice' is not a metric of `eval_task` 'generic'"),
        (dict(eval_task="referring", metric_for_best="map"), "`metric_for_best` 'map'"),
        (dict(eval_task="panoptic"), "`eval_task`"),
        (dict(eval_every_steps=-1), "eval_every_steps"),
        (dict(push_to_hub=True), "`push_to_hub` needs `hub_model_id`"),
    ],
)
def test_bad_validation_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        DinovTrainingArguments(**arguments)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(validation_data="missing.json", image_dir="nowhere"), "`validation_data` 'missing.json' cannot be read"),
        (dict(validation_data="scenes:x"), "`validation_data` 'scenes:x' cannot be read"),
        (dict(validation_data="scenes:2:7:64", eval_bank_images=2), "`eval_bank_images`=2"),
    ],
)
def test_bad_validation_data_fails_before_training(tmp_path, arguments, message):
    args = DinovTrainingArguments(output_dir=str(tmp_path), max_steps=1, **{**FAST, **arguments})
    with pytest.raises(ValueError, match=message):
        DinovTrainer(args)
    assert not any(tmp_path.iterdir())


def test_cli_reports_the_best_model(tmp_path, capsys):
    from hf_promptseg.cli import main

    argv = ["train", "--family", "dinov", "--output_dir", str(tmp_path), "--max_steps", "1", "--task", "referring",
            *(f"--{k}={v}" for k, v in FAST.items() if k != "task")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"best model: {tmp_path / 'best'} (referring_miou " in out and "at step 1)" in out
