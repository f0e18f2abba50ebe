"""The import graph keeps the shape docs/architecture.md draws: no cycle between packages, no import across a
documented boundary, canonical URLs spelt once.

The graph is built with :mod:`ast` from the source (no import side effects): one node per ``fhir_ecr``
sub-package (``fhir_ecr.store``, ``fhir_ecr.coaching``, …), one per top-level module (``fhir_ecr.app``,
``fhir_ecr.services``, …), and one for each of ``mappings`` and ``smart_launch``. Every ``cli.py`` belongs to
the node ``fhir_ecr.cli``: the ``mecr`` command is the outermost layer, whatever package a sub-command lives in.
Imports under ``if TYPE_CHECKING:`` are left out: they name types for the checker and never run.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fhir_ecr", "mappings", "smart_launch")

#: Package cycles that are known and owned by another slice of #14; each edge is one side of the cycle.
#: TODO(#14): fhir_ecr/sync/__init__.py imports fhir_ecr.jobs and fhir_ecr.jobs runs fhir_ecr.sync.tasks:
#: the job runner should take its task table from the composition root (h18's area).
KNOWN_CYCLE_EDGES = {("fhir_ecr.jobs", "fhir_ecr.sync")}

#: Imports across a boundary that are known and owned by another slice of #14 (module, imported module).
KNOWN_CROSSINGS = {
    # TODO(#14): the coaching operations read If-Match with the HTTP edge's parse_etag (h19's area).
    ("fhir_ecr.coaching.operations", "fhir_ecr.fhir.http"),
}

#: Modules allowed to spell a ``https://mecr.dev/fhir`` URL: the one definition, the mappings' own systems
#: (``mappings`` imports nothing from ``fhir_ecr``).
CANONICAL_HOMES = {
    "fhir_ecr/canonical.py",
    "mappings/systems.py",
    "mappings/community/systems.py",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module (or package), dotted
    line: int


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement except those under ``if TYPE_CHECKING:`` (lazy imports in functions included)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    walk(other)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            walk(child)

    walk(tree)
    return found


def _imports() -> list[Import]:
    sources = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts]
    known = {_module_name(p)[0] for p in sources}
    out: list[Import] = []
    for path in sources:
        name, is_package = _module_name(path)
        base = name.split(".") if is_package else name.split(".")[:-1]
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                out.extend(Import(name, alias.name, node.lineno) for alias in node.names)
                continue
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import x` may import the module x
                full = f"{target}.{alias.name}"
                out.append(Import(name, full if full in known else target, node.lineno))
    return out


IMPORTS = _imports()


def node_of(module: str) -> str:
    """The package-level node of a module (see the module docstring)."""
    parts = module.split(".")
    if parts[0] != "fhir_ecr":
        return parts[0]
    if parts[-1] == "cli":
        return "fhir_ecr.cli"
    return ".".join(parts[:2])


def _ours(target: str) -> bool:
    return target.split(".")[0] in PACKAGES


def _edges() -> dict[str, dict[str, list[Import]]]:
    edges: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for imp in IMPORTS:
        if _ours(imp.target) and node_of(imp.module) != node_of(imp.target):
            edges[node_of(imp.module)][node_of(imp.target)].append(imp)
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_packages() -> None:
    edges = _edges()
    graph = {a: {b for b in targets if (a, b) not in KNOWN_CYCLE_EDGES} for a, targets in edges.items()}
    problems = []
    for component in _cycles(graph):
        lines = [
            f"  {imp.module}:{imp.line} imports {imp.target}"
            for a in component
            for b in component
            if b in graph.get(a, ())
            for imp in edges[a][b]
        ]
        problems.append(f"cycle {' <-> '.join(component)}:\n" + "\n".join(lines))
    assert not problems, "\n".join(problems)


def test_the_known_cycles_still_exist() -> None:
    """An allow-list entry that is no longer needed goes (the allow-list only shrinks)."""
    edges = _edges()
    for a, b in KNOWN_CYCLE_EDGES:
        assert b in edges.get(a, {}), f"{a} no longer imports {b}: remove it from KNOWN_CYCLE_EDGES"


#: (importing modules, forbidden targets, why). A module matches a prefix when it is the prefix or below it.
WEB = (
    "fastapi",
    "starlette",
    "fhir_ecr.web",
    "fhir_ecr.fhir.http",
    "fhir_ecr.fhir.routes",
    "fhir_ecr.deps",
    "fhir_ecr.app",
    "fhir_ecr.server",
    "fhir_ecr.asgi",
    "fhir_ecr.headers",
)
DOMAIN = (
    "fhir_ecr.coaching",
    "fhir_ecr.billing",
    "fhir_ecr.wearables",
    "fhir_ecr.sync",
    "fhir_ecr.referrals",
    "fhir_ecr.directory",
)
#: The HTTP adapters of a domain package (its routes, pages and commands): they are the edge, not the domain.
EDGE_MODULE = re.compile(r"\.(routes|web|cli|operations)$")
FHIR_ECR_OUTSIDE_STORE = (
    "fhir_ecr.auth",
    "fhir_ecr.coaching",
    "fhir_ecr.billing",
    "fhir_ecr.wearables",
    "fhir_ecr.directory",
    "fhir_ecr.sync",
    "fhir_ecr.referrals",
    "fhir_ecr.bulk",
    "fhir_ecr.web",
    "fhir_ecr.fhir",
    "fhir_ecr.conformance",
    "fhir_ecr.sandbox_ehr",
    "fhir_ecr.app",
    "fhir_ecr.server",
    "fhir_ecr.composition",
    "fhir_ecr.services",
    "fhir_ecr.deps",
    "fhir_ecr.jobs",
    "fhir_ecr.cli",
    "fhir_ecr.asgi",
    "fhir_ecr.headers",
)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _crossings(imports: list[Import] | None = None) -> list[Import]:
    bad = []
    for imp in IMPORTS if imports is None else imports:
        m, t = imp.module, imp.target
        if _under(m, ("mappings", "smart_launch")):
            wrong = _under(t, ("fhir_ecr",))  # pure translators and the SMART library stand alone
        elif _under(m, ("fhir_ecr.store",)):
            wrong = _under(t, WEB + FHIR_ECR_OUTSIDE_STORE + ("httpx",))  # no HTTP, no domain
        elif _under(m, DOMAIN) and not EDGE_MODULE.search(m):
            wrong = _under(t, WEB)  # domain rules never speak HTTP
        else:
            wrong = False
        if wrong and (m, t) not in KNOWN_CROSSINGS:
            bad.append(imp)
    return bad


def test_no_import_crosses_a_boundary() -> None:
    bad = [f"{i.module}:{i.line} imports {i.target}" for i in _crossings()]
    assert not bad, "imports across a boundary of docs/architecture.md:\n" + "\n".join(bad)


def test_the_known_crossings_still_exist() -> None:
    present = {(i.module, i.target) for i in IMPORTS}
    for crossing in KNOWN_CROSSINGS:
        assert crossing in present, f"{crossing} is gone: remove it from KNOWN_CROSSINGS"


def test_the_app_never_imports_the_sandbox_ehr() -> None:
    """The sandbox EHR is mounted by the command that serves (fhir_ecr/server.py), not by create_app."""
    assert not [
        i for i in IMPORTS if i.module == "fhir_ecr.app" and _under(i.target, ("fhir_ecr.sandbox_ehr",))
    ]


def _spells_a_canonical_url(path: Path) -> bool:
    """Whether a string in the code (docstrings aside) holds ``https://mecr.dev/fhir``."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return any(
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and "https://mecr.dev/fhir" in node.value
        for node in ast.walk(tree)
    )


def test_canonical_urls_are_spelt_once() -> None:
    spelt = sorted(
        str(p.relative_to(ROOT))
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if _spells_a_canonical_url(p)
    )
    stray = [p for p in spelt if p not in CANONICAL_HOMES]
    assert not stray, f"use fhir_ecr/canonical.py instead of spelling the URL: {stray}"


@pytest.mark.parametrize(
    ("module", "target", "wrong"),
    [
        ("mappings.wearables.fitbit", "fhir_ecr.outcomes", True),
        ("fhir_ecr.store.repository", "fastapi", True),
        ("fhir_ecr.store.repository", "fhir_ecr.coaching.service", True),
        ("fhir_ecr.coaching.service", "fhir_ecr.fhir.http", True),
        ("fhir_ecr.coaching.service", "starlette.responses", True),
        ("fhir_ecr.wearables.routes", "fastapi", False),
        ("fhir_ecr.store.repository", "fhir_ecr.outcomes", False),
    ],
)
def test_the_boundary_rules_catch_what_they_should(module: str, target: str, wrong: bool) -> None:
    """The checks above can fail: a made-up import of each kind is (or is not) reported."""
    assert bool(_crossings([Import(module, target, 1)])) is wrong


def test_a_cycle_is_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_error_factories_raise_typed_errors() -> None:
    """One error vocabulary (fhir_ecr/outcomes.py): each factory makes its subclass, with its status."""
    from fhir_ecr import outcomes as o

    cases = [
        (o.bad_request("x"), o.BadRequest, 400),
        (o.invalid(o.issue("value", "x")), o.Invalid, 400),
        (o.invalid(o.issue("processing", "x"), 422), o.BusinessRule, 422),
        (o.business_rule(o.issue("processing", "x")), o.BusinessRule, 422),
        (o.not_found("Patient", "1"), o.NotFound, 404),
        (o.gone("Patient", "1", "2"), o.Gone, 410),
        (o.not_supported("x", 415), o.NotSupported, 415),
        (o.conflict("x"), o.Conflict, 409),
        (o.precondition_failed("x"), o.PreconditionFailed, 412),
        (o.too_large("x"), o.TooLarge, 413),
        (o.unauthorized("x"), o.Unauthorized, 401),
        (o.forbidden("x"), o.Forbidden, 403),
        (o.server_error(), o.ServerError, 500),
    ]
    for error, kind, status in cases:
        assert type(error) is kind and error.status == status, (error, kind)
        assert isinstance(error, o.FhirError)
    assert isinstance(o.conflict("x"), o.VersionConflict) and isinstance(
        o.precondition_failed("x"), o.VersionConflict
    )
