"""docs/profiles/: one page per profile, rendered from the generated StructureDefinitions and up to date."""

from __future__ import annotations

from typing import Any

from .conftest import DOCS, GENERATED, load_tool


def test_a_page_exists_for_every_profile(index: dict[str, Any], profiles_by_id: dict[str, Any]) -> None:
    pages = {p.name for p in DOCS.glob("*.md")}
    expected = {f"{sd_id}.md" for sd_id in profiles_by_id} | {"README.md"}
    assert pages == expected, "run profiles/build: pages are missing or stale"


def test_committed_pages_match_the_generated_output() -> None:
    docs = load_tool("make_docs")
    rendered = docs.render_all(docs.load_generated(GENERATED))
    for name, text in rendered.items():
        assert (DOCS / name).read_text(encoding="utf-8") == text, f"docs/profiles/{name} is out of date"


def test_must_support_table_lists_every_must_support_element(profiles_by_id: dict[str, Any]) -> None:
    for sd_id, sd in profiles_by_id.items():
        page = (DOCS / f"{sd_id}.md").read_text(encoding="utf-8")
        table = page.split("## Must-support elements", 1)[1].split("\n## ", 1)[0]
        rows = [line for line in table.splitlines() if line.startswith("| `")]
        listed = [row.split("`")[1] for row in rows]
        flagged = [e["id"] for e in sd["snapshot"]["element"] if e.get("mustSupport")]
        assert listed == flagged, sd_id
        assert sd["url"] in page


def test_pages_show_purpose_invariants_and_an_example(
    profiles_by_id: dict[str, Any], index: dict[str, Any]
) -> None:
    for sd_id, sd in profiles_by_id.items():
        page = (DOCS / f"{sd_id}.md").read_text(encoding="utf-8")
        assert sd["description"].strip().splitlines()[0] in page
        for constraint in sd["snapshot"]["element"][0].get("constraint", []):
            if constraint["key"].startswith("mecr-"):
                assert f"| {constraint['key']} |" in page, (sd_id, constraint["key"])
        first_example = index["examplesByProfile"][sd["url"]][0]
        assert f"../../profiles/generated/{first_example}" in page
        assert "```json" in page


def test_index_page_documents_the_canonical_base_and_lists_all_artifacts(index: dict[str, Any]) -> None:
    page = (DOCS / "README.md").read_text(encoding="utf-8")
    assert "Canonical base: `https://mecr.dev/fhir`" in page
    for kind in ("profiles", "extensions", "valueSets", "codeSystems"):
        for url in index[kind]:
            assert f"`{url}`" in page, url


def test_render_refuses_a_profile_without_snapshot(profiles_by_id: dict[str, Any]) -> None:
    docs = load_tool("make_docs")
    sd = dict(profiles_by_id["mecr-coach"])
    del sd["snapshot"]
    try:
        docs.must_support_rows(sd)
    except docs.DocsError as exc:
        assert "no snapshot" in str(exc)
    else:
        raise AssertionError("a StructureDefinition without snapshot must be refused")
