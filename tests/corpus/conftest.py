import pytest
from PIL import Image

from hf_promptseg.data.scenes import make_scene


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture()
def scene_folder(tmp_path):
    """Four procedural 128² scenes (two in a sub-folder) and one file that is not an image."""
    folder = tmp_path / "scenes"
    (folder / "sub").mkdir(parents=True)
    for index in range(4):
        target = folder / ("sub" if index >= 2 else "") / f"scene_{index}.png"
        Image.fromarray(make_scene(index, 128, 128).image).save(target)
    (folder / "broken.png").write_bytes(b"this is not a png")
    return folder
