"""The repository is self-contained: a fresh clone collects every test with nothing beside it, every fixture
lives in tests/fixtures with its source and licence, and no file is large."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
MAX_FILE_BYTES = 2 * 1024 * 1024
LICENCES = {"Apache-2.0", "MIT", "CC-BY-SA-4.0"}


def _sources() -> dict[str, dict[str, str]]:
    with (FIXTURES / "SOURCES.tsv").open(encoding="utf-8", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_every_fixture_is_listed_with_its_source_licence_and_digest() -> None:
    sources = _sources()
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()}
    assert on_disk - {"SOURCES.tsv", "README.md"} == set(sources)
    for name, row in sources.items():
        assert row["repository"].count("/") == 1 and len(row["commit"]) == 40, name
        assert row["licence"] in LICENCES, name
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == row["sha256"], name


def test_every_fixture_has_its_sources_licence_text_beside_it() -> None:
    """A LICENSE (or LICENSE-<repo>) of the file's repository in its folder or a folder above it."""
    sources = _sources()
    licences = {
        (Path(n).parent, row["repository"])
        for n, row in sources.items()
        if Path(n).name.startswith("LICENSE")
    }
    for name, row in sources.items():
        folders = Path(name).parents
        assert any((folder, row["repository"]) in licences for folder in folders), (
            f"no licence text for {name}"
        )


def test_no_tracked_file_is_over_2_mb() -> None:
    big = [
        (name, (REPO / name).stat().st_size)
        for name in _git("ls-files", "-z").split("\0")
        if name and (REPO / name).is_file() and (REPO / name).stat().st_size > MAX_FILE_BYTES
    ]
    assert not big, f"generate large test data in the test instead: {big}"


def test_no_file_refers_to_a_shared_folder_outside_the_repository() -> None:
    result = subprocess.run(
        ["bash", str(REPO / ".ci" / "checks.d" / "no-shared.sh")], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_a_fresh_clone_collects_every_test_with_nothing_beside_it(tmp_path: Path) -> None:
    """``git clone`` of HEAD into an empty folder, then ``pytest --collect-only`` there with this venv's Python."""
    if shutil.which("git") is None:
        pytest.fail("git is needed to clone the repository")
    empty = tmp_path / "empty"
    empty.mkdir()
    _git("clone", "--quiet", "--no-hardlinks", str(REPO), str(empty / "mecr"), cwd=tmp_path)
    clone = empty / "mecr"
    assert sorted(p.name for p in empty.iterdir()) == ["mecr"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "error" not in out.lower().split("collected")[-1], out[-4000:]
    # Tests parametrized over the fixtures are collected from the clone's own copies.
    for node in (
        "test_vendor_sample_golden[apple-health/export6s3sample.xml]",
        "test_gravity_referral_tasks_meet_the_mecr_referral_task_profile",
        "test_omh_bodies_golden[step-count-3.0]",
    ):
        assert node in out, f"{node} was not collected in the clone"
