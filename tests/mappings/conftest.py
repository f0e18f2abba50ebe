"""Mapping tests: helpers live in ``wearable_support`` (imported by name; the tests folder is not a package)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
