"""`hf-promptseg app`: loopback and no share link by default; the flags reach the models and the server."""

import pytest

from hf_promptseg import cli


def test_app_listens_on_loopback_without_a_share_link_unless_asked(monkeypatch):
    pytest.importorskip("gradio")
    import hf_promptseg.app.blocks as blocks

    launched, loaded = [], []
    monkeypatch.setattr(blocks.AppModels, "load", classmethod(lambda cls, *a, **k: loaded.append((a, k)) or "models"))
    monkeypatch.setattr(blocks, "build_app", lambda models: f"app of {models}")
    monkeypatch.setattr(blocks, "launch_app", lambda app, **k: launched.append((app, k)))
    assert cli.main(["app"]) == 0
    assert launched[0] == (
        "app of models",
        {"host": "127.0.0.1", "port": None, "share": False, "max_file_size": "25mb"},
    )
    assert loaded[0][0] == (None, None, None)
    assert cli.main(["app", "--sam", "s", "--adapter", "a", "--dinov", "d", "--share", "--port", "7999"]) == 0
    assert launched[1][1]["share"] is True and launched[1][1]["port"] == 7999 and loaded[1][0] == ("s", "a", "d")
