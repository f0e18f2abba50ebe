"""Packaging: the wheel builds without deprecation warnings, carries what mECR reads at run time (demo data, the
implementation guide, migrations, templates), and an installed copy runs ``mecr --version`` and ``mecr demo``
outside the source tree."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import fhir_ecr

REPO = Path(__file__).resolve().parents[1]


def _source_copy(dest: Path) -> Path:
    """The working tree's files, tracked or new but not ignored (links kept as links), without build leftovers
    such as build/ or .venv/."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, names):
        src = REPO / name
        if not src.is_symlink() and not src.exists():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    return dest


def test_the_project_metadata_uses_an_spdx_licence_and_one_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert project["dynamic"] == ["version"] and "version" not in project


def test_mecr_version(capsys: pytest.CaptureFixture[str]) -> None:
    from fhir_ecr.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"mecr {fhir_ecr.__version__}"


@pytest.mark.slow
def test_the_wheel_installs_and_runs_the_demo_outside_the_source_tree(tmp_path: Path) -> None:
    src = _source_copy(tmp_path / "src")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = built.stdout + built.stderr
    assert built.returncode == 0, log[-3000:]
    noise = [
        line
        for line in log.splitlines()
        if re.search(r"deprecat", line, re.I) and "WARNING: Location" not in line
    ]
    assert noise == [], noise
    (wheel,) = (tmp_path / "dist").glob("mecr-*.whl")
    assert wheel.name.startswith(f"mecr-{fhir_ecr.__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "fhir_ecr/_bundled/demo/01-practice.json",
        "fhir_ecr/_bundled/ig/index.json",
        "fhir_ecr/store/migrations/versions/0001_initial.py",
        "fhir_ecr/store/migrations/script.py.mako",
        "fhir_ecr/store/data/required-bindings.json",
        "fhir_ecr/web/templates/base.html",
        "fhir_ecr/web/static/app.js",
        "fhir_ecr/billing/rules.yaml",
        f"mecr-{fhir_ecr.__version__}.dist-info/licenses/LICENSE",
    ):
        assert needed in names, needed

    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MECR_")}
    env.update(PYTHONPATH=str(site), MECR_DATABASE_URL=f"sqlite:///{empty / 'demo.db'}")

    def mecr(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(site / "bin" / "mecr"), *args],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import fhir_ecr; print(fhir_ecr.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the installed copy, not the source tree
    version = mecr("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"mecr {fhir_ecr.__version__}"
    demo = mecr("demo", "--no-serve")
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "demo data: files: 11, created:" in demo.stdout
    assert (empty / "demo.db").exists()
