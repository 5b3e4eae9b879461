"""Under CI (CI=true) hypothesis draws the same examples on every run (`derandomize`), so a landing never depends on
luck; locally each run draws new ones, and a failure found that way is fixed and kept as an ordinary test."""
import os
from hypothesis import settings

settings.register_profile('ci', derandomize=True, print_blob=True)
if os.environ.get('CI'): settings.load_profile('ci')
