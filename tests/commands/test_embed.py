"""`hf-promptseg embed`: a run in which no image could be read exits non-zero, as `segment` and `generate` do."""

from hf_promptseg.cli import main as cli_main


def test_embed_fails_when_no_image_is_readable(tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    assert cli_main(["embed", str(broken), "--out", str(tmp_path / "emb.safetensors")]) == 1
    captured = capsys.readouterr()
    assert f"skipped {broken}: cannot read image" in captured.out + captured.err
