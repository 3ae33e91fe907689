import json

import pytest

from hf_promptseg.cli import main as cli_main


def test_dinov_evaluate_cli_writes_both_tasks(tmp_path, capsys):
    output = tmp_path / "metrics.json"
    code = cli_main(["evaluate", "--family", "dinov", "--model", "random:tiny", "--data", "scenes:6:0:64",
                     "--task", "both", "--bank-images", "2", "--output", str(output)])  # fmt: skip
    assert code == 0
    metrics = json.loads(output.read_text())
    assert {"referring_miou", "paste_miou", "map", "map_50", "semantic_miou", "paste_map"} <= set(metrics)
    assert all(0 <= metrics[key] <= 1 for key in ("referring_miou", "map", "semantic_miou"))
    printed = capsys.readouterr().out
    assert "referring_miou" in printed and "num_prompts" in printed and str(output) in printed
    assert cli_main(["evaluate", "--family", "dinov", "--model", "random:tiny", "--data", "scenes:4:1:64",
                     "--task", "generic", "--bank-images", "1"]) == 0  # fmt: skip
    assert "referring_miou" not in capsys.readouterr().out
    assert cli_main(["evaluate", "--family", "dinov", "--model", "random:tiny", "--data", "scenes:4:1:64",
                     "--task", "referring", "--reference-filter"]) == 0  # fmt: skip
    assert "num_filter_fallbacks" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--bank-images", "6"], "`bank_images`=6 leaves no image to evaluate"),
        (["--adapter", "run/best"], "`--adapter` is a SAM option"),
        (["--data", "scenes:x"], "expected 'scenes:<count>[:seed[:size]]'"),
    ],
)
def test_dinov_evaluate_cli_names_bad_input(extra, message, capsys):
    argv = ["evaluate", "--family", "dinov", "--model", "random:tiny", "--data", "scenes:6:0:64", "--task", "generic"]
    assert cli_main(argv + extra) == 2
    assert message in capsys.readouterr().err


def test_dinov_evaluate_cli_rejects_an_unknown_task(capsys):
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--family", "dinov", "--model", "random:tiny", "--data", "scenes:6", "--task", "x"])
    assert "invalid choice: 'x'" in capsys.readouterr().err


def test_dinov_evaluate_cli_reads_a_coco_file(tmp_path, capsys):
    from hf_promptseg.data.instances import write_coco_instances
    from hf_promptseg.data.scenes import make_scenes

    annotations = write_coco_instances(make_scenes(4, seed=2, height=64, width=64), tmp_path / "coco")
    argv = ["evaluate", "--family", "dinov", "--model", "random:tiny", "--data", str(annotations), "--task", "both",
            "--bank-images", "2"]  # fmt: skip
    assert cli_main(argv + ["--image-dir", str(tmp_path / "coco" / "images")]) == 0
    assert "map_50" in capsys.readouterr().out
    assert cli_main(argv) == 2
    assert "`image_dir` is required" in capsys.readouterr().err
