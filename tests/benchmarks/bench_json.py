"""Benchmark: exact JSON numbers (``fhir_ecr.store.jsonexact``) against plain orjson.

Run: ``python -m tests.benchmarks.bench_json [--repeat 15]``. For a typical Observation (the one bench_store
ingests) and a 500-entry transaction Bundle of them, each once as orjson writes it (every number safe: the fast
path) and once with every ``valueQuantity.value`` written with two decimals (``72.50``: the exact path), prints
µs per call of ``orjson.loads`` and ``jsonexact.loads``, ``orjson.dumps`` and ``jsonexact.dumps``, and their
ratio (best of ``repeat`` runs, the two timed in turn). Then counts how many of the JSON files under ``examples/`` take the fast path.
"""

from __future__ import annotations

import argparse
import re
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from fhir_ecr.store import jsonexact
from tests.benchmarks.bench_store import bundles, observation

ROOT = Path(__file__).resolve().parents[2]


def best_pair_us(a: Callable[[], Any], b: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """The best time of one call of ``a`` and of ``b`` in µs, the two timed in turn ``repeat`` times so that a
    busy moment of a shared machine hits both alike."""
    ta, tb = timeit.Timer(a), timeit.Timer(b)
    loops = max(ta.autorange()[0], tb.autorange()[0])
    best_a = best_b = float("inf")
    for _ in range(repeat):
        best_a = min(best_a, ta.timeit(loops) / loops * 1e6)
        best_b = min(best_b, tb.timeit(loops) / loops * 1e6)
    return best_a, best_b


def two_decimals(text: bytes) -> bytes:
    """Every ``"value":x.y`` rewritten as ``x.y0`` (a trailing zero orjson would drop)."""
    return re.sub(rb'("value":-?[0-9]+\.[0-9]+)', rb"\g<1>0", text)


def cases() -> list[tuple[str, bytes]]:
    obs = orjson.dumps(observation(1, 100))
    bundle = orjson.dumps(next(bundles(0, 500, 100)))
    return [
        ("Observation", obs),
        ("Observation, 72.50", two_decimals(obs)),
        ("Bundle of 500", bundle),
        ("Bundle of 500, x.y0", two_decimals(bundle)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs per figure (the best is kept)")
    args = parser.parse_args()
    print(
        f"{'document':<22} {'bytes':>8} {'path':>6}  {'loads µs orjson/exact':>22} {'ratio':>6}"
        f"  {'dumps µs orjson/exact':>22} {'ratio':>6}"
    )
    for name, text in cases():
        exact = jsonexact.loads(text)
        assert jsonexact.dumps(exact) == text, name  # the numbers survive
        plain = orjson.loads(text)
        load_o, load_e = best_pair_us(
            lambda t=text: orjson.loads(t), lambda t=text: jsonexact.loads(t), args.repeat
        )
        dump_o, dump_e = best_pair_us(
            lambda v=plain: orjson.dumps(v), lambda v=exact: jsonexact.dumps(v), args.repeat
        )
        path = "exact" if jsonexact.may_change(text) else "fast"
        print(
            f"{name:<22} {len(text):>8} {path:>6}  {load_o:>10.1f} / {load_e:>9.1f} {load_e / load_o:>6.2f}"
            f"  {dump_o:>10.1f} / {dump_e:>9.1f} {dump_e / dump_o:>6.2f}"
        )
    files = sorted(p for p in (ROOT / "examples").rglob("*.json"))
    slow = [p for p in files if jsonexact.may_change(p.read_bytes())]
    print(
        f"\nexamples/: {len(files) - len(slow)} of {len(files)} JSON files take the fast path; "
        f"exact path: {', '.join(p.relative_to(ROOT).as_posix() for p in slow[:8]) or 'none'}"
        f"{' …' if len(slow) > 8 else ''}"
    )


if __name__ == "__main__":
    main()
