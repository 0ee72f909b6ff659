import os

import pytest
import torch

# Tests run on the CPU, single-threaded and deterministic; the GUI test runs Qt offscreen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
torch.set_num_threads(1)  # small ops stall on a second thread when the cores are busy


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
