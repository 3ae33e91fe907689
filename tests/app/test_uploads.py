"""Upload checks: what is accepted, and the message for each way an upload can be wrong."""

import numpy as np
import pytest
from PIL import Image

from hf_promptseg.app.uploads import load_upload


def test_accepts_images_and_names_what_is_wrong(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(path)
    image = load_upload(str(path))
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8 and (image == 7).all()
    assert load_upload(np.zeros((9, 9, 4), np.uint8)).shape == (9, 9, 3)
    with pytest.raises(ValueError, match="the image file is 0.0 MB; the limit is 0 MB"):
        load_upload(str(path), max_bytes=10)
    with pytest.raises(ValueError, match="30×20 = 0.0 megapixels; the limit is 0.0 megapixels: downscale it"):
        load_upload(str(path), max_pixels=100)
    with pytest.raises(ValueError, match="the reference image is 4×4; both sides must be at least 8"):
        load_upload(np.zeros((4, 4, 3), np.uint8), "reference image")
    with pytest.raises(ValueError, match=r"must be \(H, W, 3\) RGB, got shape \(5, 5, 5, 3\)"):
        load_upload(np.zeros((5, 5, 5, 3), np.uint8))
    with pytest.raises(TypeError, match="got int"):
        load_upload(3)
