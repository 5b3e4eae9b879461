"""Under CI (CI=true) hypothesis draws the same examples on every run (`derandomize`), so a landing never depends on
luck; locally each run draws new ones, and a failure found that way is fixed and kept as an ordinary test."""
import os
import pytest, torch
from hypothesis import settings

settings.register_profile('ci', derandomize=True, print_blob=True)
if os.environ.get('CI'): settings.load_profile('ci')

@pytest.fixture
def one_thread():
    "torch on one thread while a test runs (its runs are then exact and small), the previous count restored after"
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
