import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES_DIR = SHARED_DIR / "fixtures"


def fixture_dir(family: str) -> Path:
    """Directory of a golden fixture in ../shared, or skip the test with the reason."""
    path = FIXTURES_DIR / family
    if not path.is_dir():
        pytest.skip(f"golden fixture {path} is absent (../shared must sit beside the checkout)")
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
