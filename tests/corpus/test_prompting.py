import json

import numpy as np
import pytest
from PIL import Image

from hf_promptseg.assets import demo_sam_path
from hf_promptseg.cli import main as cli_main
from hf_promptseg.corpus import rle as rle_ops
from hf_promptseg.corpus.prompting import parse_boxes, parse_points, read_prompts, segment_prompts
from hf_promptseg.data.scenes import make_scene, make_scene_with_objects
from hf_promptseg.models.sam.embedding_cache import EmbeddingCache
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter
from hf_promptseg.utils.masks import mask_iou
from hf_promptseg.utils.prompt_geometry import bounding_box, interior_point


@pytest.fixture(scope="module")
def segmenter():
    return PromptedSegmenter(demo_sam_path(), embedding_cache=EmbeddingCache(32))


def test_segment_prompts_matches_the_prompted_segmenter(segmenter):
    scene = make_scene(2, 128, 128)
    points = [interior_point(m) for m in scene.masks]
    boxes = [bounding_box(m) for m in scene.masks]
    prompts = [{"points": [list(p)]} for p in points] + [{"box": list(b)} for b in boxes]
    found = segment_prompts(segmenter, scene.image, prompts)
    by_point, _ = segmenter.segment(scene.image, points=points)
    by_box, _ = segmenter.segment(scene.image, boxes=boxes)
    expected = list(by_point) + list(by_box)
    assert [len(f["masks"]) for f in found] == [1] * len(prompts)
    for result, mask in zip(found, expected):
        assert np.array_equal(rle_ops.decode(result["masks"][0]), mask)
    multi = segment_prompts(segmenter, scene.image, prompts[:1], multimask=True)
    assert len(multi[0]["masks"]) == 3 and len(multi[0]["scores"]) == 3


def test_window_around_the_prompt_keeps_small_objects_in_large_images(segmenter):
    """A 30-px object in a 768² image: squeezed to the model's 128² it nearly vanishes; its 128² window does not."""
    scene = make_scene_with_objects(3, 768, 768, [(500, 300, 15, "ellipse"), (150, 600, 15, "rectangle")])
    prompts = [{"points": [list(interior_point(m))]} for m in scene.masks]
    windowed = segment_prompts(segmenter, scene.image, prompts, window=128)
    whole = segment_prompts(segmenter, scene.image, prompts)
    windowed_iou = [mask_iou(rle_ops.decode(f["masks"][0]), m) for f, m in zip(windowed, scene.masks)]
    whole_iou = [mask_iou(rle_ops.decode(f["masks"][0]), m) for f, m in zip(whole, scene.masks)]
    assert min(windowed_iou) > 0.7 and np.mean(windowed_iou) > np.mean(whole_iou) + 0.1
    assert all(f["window"][2] - f["window"][0] == 128 for f in windowed)


def test_prompt_errors_name_the_prompt_and_file(segmenter, tmp_path):
    image = make_scene(0, 64, 96).image
    with pytest.raises(ValueError, match=r"prompt 1 lies outside the 96x64"):
        segment_prompts(segmenter, image, [{"points": [[5, 5]]}, {"box": [0, 0, 100, 10]}])
    with pytest.raises(ValueError, match="`--points` value '3;4' does not parse"):
        parse_points(["3;4"])
    bad = tmp_path / "prompts.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=f"prompts file {bad} does not parse as JSON"):
        read_prompts(bad)
    bad.write_text(json.dumps({"a.png": [{"points": [[1, 2, 3]]}]}))
    with pytest.raises(ValueError, match=r"'a.png' prompt 0: `points` must be"):
        read_prompts(bad)


def test_segment_command_writes_pngs_and_rles(tmp_path, capsys):
    scene = make_scene(1, 128, 128)
    Image.fromarray(scene.image).save(tmp_path / "scene.png")
    x, y = interior_point(scene.masks[0])
    out = tmp_path / "seg"
    code = cli_main(["segment", str(tmp_path / "scene.png"), "--points", f"{x},{y}", "--boxes", "5,5,60,70",
                     "--out", str(out)])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    objects = results["images"][0]["objects"]
    assert len(objects) == 2
    png = np.asarray(Image.open(out / objects[0]["png"][0])) > 0
    assert np.array_equal(png, rle_ops.decode(objects[0]["masks"][0]))
    assert mask_iou(png, scene.masks[0]) > 0.6
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"scene.png": [{"points": [[x, y]]}]}))
    assert cli_main(["segment", str(tmp_path), "--prompts", str(prompts), "--multimask", "--out", str(out)]) == 0
    assert len(json.loads((out / "results.json").read_text())["images"][0]["objects"][0]["png"]) == 3
    capsys.readouterr()
    assert cli_main(["segment", str(tmp_path / "scene.png"), "--points", "500,5", "--out", str(out)]) == 1
    assert "scene.png" in capsys.readouterr().err


def test_non_finite_or_non_numeric_prompt_coordinates_are_named(tmp_path):
    with pytest.raises(ValueError, match="`--points` value 'nan,5' holds NaN or inf"):
        parse_points(["nan,5"])
    with pytest.raises(ValueError, match="`--boxes` value '0,0,inf,5' holds NaN or inf"):
        parse_boxes(["0,0,inf,5"])
    bad = tmp_path / "prompts.json"
    bad.write_text('{"a.png": [{"points": [[1, "x"]]}]}')
    with pytest.raises(ValueError, match=r"'a.png' prompt 0: `points` must hold numbers"):
        read_prompts(bad)
    bad.write_text('{"a.png": [{"box": [0, 0, NaN, 4]}]}')  # Python's json reads NaN
    with pytest.raises(ValueError, match=rf"prompts file {bad}, 'a.png' prompt 0: `box` holds NaN or inf"):
        read_prompts(bad)
