import numpy as np

from hf_promptseg.utils.overlays import overlay
from hf_promptseg.utils.prompt_geometry import bounding_box, interior_point


def test_interior_point_box_and_overlay():
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:26] = True
    x, y = interior_point(mask)
    assert mask[int(y), int(x)] and 14 <= x <= 22 and 8 <= y <= 12
    assert bounding_box(mask) == (10.0, 5.0, 26.0, 15.0)
    picture = overlay(np.zeros((20, 30, 3), np.uint8), [mask], points=[(x, y)], boxes=[bounding_box(mask)])
    assert picture.size == (30, 20) and np.asarray(picture)[10, 12].any()
