"""Benchmark: profile validation against the plain write path.

Run: ``python -m tests.benchmarks.bench_validation [--count 10000]``. Builds ``count`` resources spread evenly
over the IG's profiles (copies of each profile's examples, no ids), then on a fresh SQLite file:

1. times the profile validator alone on each resource and prints µs per resource for every profile;
2. times the plain write path (``FhirRepository.create``, structure and required bindings only) of the same
   resources;
3. times the write path with profile validation composed in (as ``build_services`` wires it);

and prints the ratio of (1) to (2): the share profile validation adds to a plain write (target < 0.5);

4. times the whole validation (structure, required bindings of the base spec, profiles: what a write runs)
   with and without the binding check, block by block in turn so that the machine's noise hits both alike, and
   the binding check alone; prints what the binding check adds (target < 0.15).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from fhir_ecr.conformance import compose_validators, default_validator
from fhir_ecr.store import validation
from fhir_ecr.store.bindings import binding_issues
from fhir_ecr.store.db import make_engine, upgrade
from fhir_ecr.store.repository import FhirRepository
from fhir_ecr.store.validation import validate_resource


def resources_by_profile(count: int) -> dict[str, list[dict[str, Any]]]:
    validator = default_validator()
    ig = validator.ig
    per = max(1, count // len(ig.examples_by_profile))
    out: dict[str, list[dict[str, Any]]] = {}
    for url, paths in sorted(ig.examples_by_profile.items()):
        examples = [json.loads((ig.root / p).read_text(encoding="utf-8")) for p in paths]
        for e in examples:
            e.pop("id", None)
        out[url] = [copy.deepcopy(examples[i % len(examples)]) for i in range(per)]
    return out


def timed_creates(repo: FhirRepository, resources: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for r in resources:
        repo.create(r)
    return (time.perf_counter() - start) / len(resources) * 1e6


def timed_validation(check: Any, resources: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for r in resources:
        check(r)  # the IG's examples are valid: a FhirError here is a bug
    return (time.perf_counter() - start) / len(resources) * 1e6


def binding_cost(
    validator: Any, resources: list[dict[str, Any]], rounds: int = 3, block: int = 50
) -> dict[str, float]:
    """µs per resource of the whole validation with and without the binding check, and of the check alone.

    The two are timed block by block in turn (``block`` resources with, the same without, ...), so that the load
    of a shared machine, which drifts over seconds, weighs on both alike."""
    full = compose_validators(validate_resource, validator)
    totals = {"with": 0.0, "without": 0.0, "alone": 0.0}
    for _ in range(rounds):
        for start in range(0, len(resources), block):
            part = resources[start : start + block]
            totals["with"] += timed_validation(full, part) * len(part)
            with mock.patch.object(validation, "binding_issues", lambda _resource: []):
                totals["without"] += timed_validation(full, part) * len(part)
            totals["alone"] += timed_validation(binding_issues, part) * len(part)
    return {k: v / (rounds * len(resources)) for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--count", type=int, default=10_000, help="resources in all (spread over the profiles)"
    )
    parser.add_argument("--bindings-only", action="store_true", help="only step 4 (the binding check's cost)")
    args = parser.parse_args()
    validator = default_validator()
    data = resources_by_profile(args.count)
    everything = [r for rs in data.values() for r in rs]
    print(f"{len(everything)} resources over {len(data)} profiles")
    if args.bindings_only:
        report_binding_cost(validator, everything)
        return

    print(f"{'profile':<32} {'µs/resource':>12}")
    per_profile: dict[str, float] = {}
    for url, rs in data.items():
        for r in rs[:5]:
            validator(r)  # warm up: constraints compile on first use
        start = time.perf_counter()
        for r in rs:
            validator(r)
        per_profile[url] = (time.perf_counter() - start) / len(rs) * 1e6
        print(f"{url.rsplit('/', 1)[-1]:<32} {per_profile[url]:>12.1f}")
    total_profile = sum(per_profile[u] * len(rs) for u, rs in data.items()) / len(everything)

    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for label, check in (
            ("plain", validate_resource),
            ("with profiles", compose_validators(validate_resource, validator)),
        ):
            engine = make_engine(f"sqlite:///{Path(tmp) / (label.replace(' ', '_') + '.db')}")
            upgrade(engine)
            repo = FhirRepository(engine, validator=check)
            results[label] = timed_creates(repo, [copy.deepcopy(r) for r in everything])
            engine.dispose()
    print(
        f"profile validation, mean over all resources: {total_profile:.1f} µs/resource "
        f"(median per profile {statistics.median(per_profile.values()):.1f})"
    )
    print(f"plain write path (SQLite, create, structure + bindings): {results['plain']:.1f} µs/resource")
    print(
        f"write path with profile validation:                       {results['with profiles']:.1f} µs/resource"
    )
    print(
        f"ratio profile validation / plain write path: {total_profile / results['plain']:.2f} (target < 0.50)"
    )
    report_binding_cost(validator, everything)


def report_binding_cost(validator: Any, everything: list[dict[str, Any]]) -> None:
    cost = binding_cost(validator, everything)
    print(f"whole validation (structure, bindings, profiles): {cost['with']:.1f} µs/resource")
    print(f"the same without the binding check:               {cost['without']:.1f} µs/resource")
    print(f"the binding check alone:                          {cost['alone']:.1f} µs/resource")
    print(
        f"binding check / validation without it: {cost['alone'] / cost['without']:.3f}; "
        f"with / without: {cost['with'] / cost['without']:.3f} (target < 1.15)"
    )


if __name__ == "__main__":
    main()
