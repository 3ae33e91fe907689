import json

from PIL import Image

from hf_promptseg.cli import main as cli_main
from hf_promptseg.corpus.generation import load_generator
from hf_promptseg.data.scenes import make_scene


def test_embed_then_generate_and_segment_skip_the_encoder(tmp_path, monkeypatch):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for index in range(2):
        Image.fromarray(make_scene(index, 128, 128).image).save(folder / f"{index}.png")
    emb = tmp_path / "emb.safetensors"
    assert cli_main(["embed", str(folder), "--out", str(emb)]) == 0

    calls = []
    import hf_promptseg.corpus.generation as generation
    import hf_promptseg.models.sam.prompted_segmentation as prompted

    def counted_generator(*args, **kwargs):
        generator = load_generator(*args, **kwargs)
        generator.model.vision_encoder.register_forward_hook(lambda *_: calls.append("generate"))
        return generator

    class CountedSegmenter(prompted.PromptedSegmenter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.model.vision_encoder.register_forward_hook(lambda *_: calls.append("segment"))

    monkeypatch.setattr(generation, "load_generator", counted_generator)
    monkeypatch.setattr(prompted, "PromptedSegmenter", CountedSegmenter)
    out = tmp_path / "masks"
    assert (
        cli_main(["generate", str(folder), "--out", str(out), "--points-per-side", "4", "--embeddings", str(emb)]) == 0
    )
    assert len(json.loads((out / "results.json").read_text())["images"]) == 2
    assert (
        cli_main(["segment", str(folder), "--points", "30,30", "--out", str(tmp_path / "s"), "--embeddings", str(emb)])
        == 0
    )
    assert calls == []
    assert cli_main(["generate", str(folder), "--out", str(tmp_path / "m2"), "--points-per-side", "4"]) == 0
    assert calls == ["generate", "generate"]
