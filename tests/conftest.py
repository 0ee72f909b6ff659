import os

import pytest
import torch

# Tests run on the CPU, single-threaded and deterministic; the GUI test runs Qt offscreen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
