import json
import time

import datasets
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from hf_promptseg.cli import main as cli_main
from hf_promptseg.corpus.generation import generate_corpus, result_name

SMALL = ["--points-per-side", "6"]


def _load_parquet(path):
    return datasets.load_dataset("parquet", data_files=str(path), split="train")


def test_generate_folder_writes_coco_json_and_parquet(scene_folder, tmp_path, capsys):
    out = tmp_path / "masks"
    assert cli_main(["generate", str(scene_folder), "--out", str(out), "--overlays", *SMALL]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["num_images"] == 4 and summary["num_errors"] == 1
    coco = COCO(str(out / "results.json"))
    assert sorted(img["file_name"] for img in coco.dataset["images"]) == [
        "scene_0.png", "scene_1.png", "sub/scene_2.png", "sub/scene_3.png"
    ]  # fmt: skip
    annotations = coco.loadAnns(coco.getAnnIds())
    assert len(annotations) >= 4
    for annotation in annotations:
        mask = coco.annToMask(annotation)
        assert mask.shape == (128, 128) and mask.sum() == annotation["area"] > 0
        assert np.allclose(mask_utils.toBbox(coco.annToRLE(annotation)), annotation["bbox"])
        assert 0 <= annotation["stability_score"] <= 1 and 0 < annotation["predicted_iou"] <= 1.5
    table = _load_parquet(out / "results.parquet")
    assert len(table) == len(annotations)
    assert table[0]["segmentation"] == annotations[0]["segmentation"]
    assert table[0]["file_name"] == coco.loadImgs(annotations[0]["image_id"])[0]["file_name"]
    errors = json.loads((out / "errors.json").read_text())
    assert [e["image_id"] for e in errors] == ["broken.png"] and "cannot read image" in errors[0]["error"]
    assert len(list((out / "overlays").glob("*.png"))) == 4


def test_rerun_skips_finished_images_and_keeps_them(scene_folder, tmp_path):
    out = tmp_path / "masks"
    first = generate_corpus(scene_folder, out, points_per_crop=6, progress=False)
    done = out / "per_image" / f"{result_name('scene_0.png')}.json"
    stamp = done.stat().st_mtime_ns
    (out / "per_image" / f"{result_name('sub/scene_3.png')}.json").unlink()  # as if interrupted before it
    time.sleep(0.01)
    second = generate_corpus(scene_folder, out, points_per_crop=6, progress=False)
    assert done.stat().st_mtime_ns == stamp  # not recomputed
    assert second["num_annotations"] == first["num_annotations"]
    assert json.loads((out / "results.json").read_text())["images"][-1]["file_name"] == "sub/scene_3.png"
    assert not list((out / "per_image").glob(".*.tmp"))


def _shard_worker(source, out):
    import torch.distributed

    # debug_launcher forks; OpenMP's thread pool of the parent does not survive a fork (the child would hang in its
    # first parallel op), so the forked workers compute single-threaded.
    torch.set_num_threads(1)
    generate_corpus(source, out, points_per_crop=6, progress=False)
    (out / f"process_{torch.distributed.get_rank()}_of_{torch.distributed.get_world_size()}").touch()


def test_sharded_run_gives_the_one_process_output(scene_folder, tmp_path):
    """Two processes (accelerate's debug_launcher: CPU, gloo) each write their shard; the merge equals one process.

    The per-image files record which process wrote them, so the test fails if one process did all the work."""
    from accelerate import debug_launcher
    from accelerate.state import AcceleratorState

    one, two = tmp_path / "one", tmp_path / "two"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers (float sums then agree to the bit)
    try:
        generate_corpus(scene_folder, one, points_per_crop=6, progress=False)
    finally:
        torch.set_num_threads(threads)
    AcceleratorState._reset_state(reset_partial_state=True)  # the forked workers must not inherit a 1-process state
    debug_launcher(_shard_worker, args=(scene_folder, two), num_processes=2)
    assert sorted(p.name for p in two.glob("process_*")) == ["process_0_of_2", "process_1_of_2"]
    writers = {
        json.loads(p.read_text())["process"] for p in (two / "per_image").glob("*.json") if ".error" not in p.name
    }
    assert writers == {0, 1}
    assert json.loads((one / "results.json").read_text()) == json.loads((two / "results.json").read_text())
    assert _load_parquet(one / "results.parquet").to_list() == _load_parquet(two / "results.parquet").to_list()


@pytest.mark.slow
def test_two_processes_give_the_one_process_output(scene_folder, tmp_path):
    """`--num-processes 2` launches torchrun (ACCELERATE_USE_CPU=1); the merged files equal a one-process run.

    Slow (~35 s on 2 shared cores): two fresh interpreters import torch and transformers."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli_main(["generate", str(scene_folder), "--out", str(one), *SMALL]) == 0
    assert cli_main(["generate", str(scene_folder), "--out", str(two), "--num-processes", "2", *SMALL]) == 0
    assert json.loads((one / "results.json").read_text()) == json.loads((two / "results.json").read_text())
    assert _load_parquet(one / "results.parquet").to_list() == _load_parquet(two / "results.parquet").to_list()
    assert json.loads((two / "errors.json").read_text())[0]["image_id"] == "broken.png"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tile-size", "64", "--tile-overlap", "64"], "`--tile-overlap` (64) must be smaller than `--tile-size`"),
        (["--num-processes", "0"], "`--num-processes` must be >= 1"),
    ],
)
def test_bad_settings_are_named(scene_folder, tmp_path, capsys, argv, message):
    assert cli_main(["generate", str(scene_folder), "--out", str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_inputs_are_named(tmp_path, capsys):
    assert cli_main(["generate", str(tmp_path / "missing" / "x.png"), "--out", str(tmp_path / "o")]) == 2
    assert "input not found" in capsys.readouterr().err
    empty = tmp_path / "empty.png"
    from PIL import Image

    Image.new("RGB", (1, 1)).save(empty)
    assert cli_main(["generate", str(tmp_path / "nothing*.jpg"), "--out", str(tmp_path / "o")]) == 2
    assert "no file matches" in capsys.readouterr().err


def test_a_sam_with_transformers_own_image_processor(tmp_path):
    """Like `facebook/sam-vit-base`: transformers' SAM image processor, no hf_promptseg files; whole and tiled."""
    from PIL import Image
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    from hf_promptseg.data.scenes import make_scene
    from tests.testing_utils import random_sam

    random_sam().save_pretrained(tmp_path / "sam")
    SamImageProcessorPil(size={"longest_edge": 256}, pad_size={"height": 256, "width": 256}).save_pretrained(
        tmp_path / "sam"
    )
    (tmp_path / "in").mkdir()
    Image.fromarray(make_scene(0, 128, 128).image).save(tmp_path / "in" / "a.png")
    keep_all = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "progress": False}
    whole = generate_corpus(tmp_path / "in", tmp_path / "whole", model=tmp_path / "sam", points_per_crop=4, **keep_all)
    tiled = generate_corpus(
        tmp_path / "in", tmp_path / "tiled", model=tmp_path / "sam", tile_size=64, tile_overlap=16, points_per_crop=2,
        **keep_all,
    )  # fmt: skip
    assert whole["num_errors"] == tiled["num_errors"] == 0
    assert whole["num_annotations"] >= 1 and tiled["num_annotations"] >= 1
