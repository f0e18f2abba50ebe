"""The server process's garbage collector settings (fhir_ecr/heap.py): applied once, at the first start-up."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_first_startup_freezes_the_heap_and_raises_the_young_threshold() -> None:
    # In a fresh interpreter: the test process's own collector must not be changed by this test.
    code = textwrap.dedent(
        """
        import gc
        from fhir_ecr import heap
        before = gc.get_freeze_count()
        assert heap.settle() is True
        frozen = gc.get_freeze_count()
        assert frozen > before + 1000, (before, frozen)
        assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
        gc.set_threshold(700, 10, 10)
        assert heap.settle() is False          # once per process
        assert gc.get_threshold()[0] == 700
        assert gc.get_freeze_count() == frozen
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cycles_made_after_the_freeze_are_still_collected() -> None:
    code = textwrap.dedent(
        """
        import gc, weakref
        from fhir_ecr import heap
        heap.settle()
        class Node:
            pass
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        gc.collect()
        assert ref() is None
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
