import json

import pytest

from hf_promptseg.cli import main as cli_main
from hf_promptseg.training import DataArguments, ModelArguments, SegmentationTrainer, SegmentationTrainingArguments


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_evaluate_cli_prints_a_table_and_writes_json(tmp_path, capsys):
    SegmentationTrainer(
        ModelArguments(base_model="random:tiny", method="sam_adapter", adapter_scale_factor=8),
        DataArguments(train_data="synthetic:4:0:128", validation_data="synthetic:2:1:128"),
        SegmentationTrainingArguments(output_dir=str(tmp_path / "run"), max_steps=1, per_device_train_batch_size=2),
    ).train()
    best = tmp_path / "run" / "best"
    output = tmp_path / "eval.json"
    code = cli_main(
        ["evaluate", "--model", str(best / "base"), "--adapter", str(best), "--data", "synthetic:3:5:128",
         "--metrics", "cod", "--output", str(output)]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads(output.read_text())
    assert set(metrics) == {"s_measure", "e_measure_mean", "e_measure_max", "e_measure_adaptive",
                            "weighted_f_measure", "mae"}  # fmt: skip
    printed = capsys.readouterr().out
    assert "s_measure" in printed and str(output) in printed
    assert cli_main(["evaluate", "--model", "random:tiny", "--data", "synthetic:2:0:128", "--metrics", "polyp"]) == 0
    assert "dice" in capsys.readouterr().out


def test_evaluate_cli_rejects_unknown_flags(capsys):
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--model", "x", "--data", "y", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
