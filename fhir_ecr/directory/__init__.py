"""The community resource directory: HSDS import (``mecr import directory``), search helpers for the coach's
directory page, and the demo directory (docs/community.md)."""
