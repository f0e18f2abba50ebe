"""Reading an HSDS directory from a file, a folder or a URL into a :class:`~mappings.community.Directory`.

Accepted (docs/community.md):

* a **folder** holding an HSDS tabular package (``datapackage.json`` and its CSV files, or just the CSV files
  named after their tables), or HSDS JSON files (``*.json``, each read with :func:`read_hsds_json`);
* a **file**: ``datapackage.json`` (its CSVs are read from beside it), one HSDS JSON file, one table's CSV
  (named after the table, e.g. ``services.csv``), or a ``.zip`` of any of these;
* a **URL** (``http``/``https``): an HSDS JSON document, a ``datapackage.json`` (its CSVs are fetched relative to
  it), a zip, or an HSDS API list endpoint: ``Page`` objects are followed page by page (``?page=N``) until
  ``last_page`` is true.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx

from mappings.community import Directory, read_csv_text, read_hsds_json, read_tabular
from mappings.errors import MalformedInputError, MappingError

__all__ = ["DirectorySource", "read_directory", "DirectoryReadError", "MAX_PAGES"]

#: Most HSDS API pages followed from one URL.
MAX_PAGES = 10_000
_MAX_BYTES = 512 * 1024 * 1024


class DirectoryReadError(MappingError):
    """The input cannot be read as an HSDS directory (names the file or URL)."""


@dataclass
class DirectorySource:
    """What was read: the directory, its name (for ``meta.source``), byte count and orphaned child rows."""

    directory: Directory
    name: str
    size: int = 0
    orphans: list[str] = field(default_factory=list)


def _json(data: bytes, label: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DirectoryReadError(f"not JSON: {exc}", file=label) from exc


def _text(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DirectoryReadError("a CSV file must be UTF-8", file=label) from exc


def _from_files(files: dict[str, bytes], label: str) -> tuple[Directory, list[str]]:
    """A directory from named file contents (a folder's or a zip's)."""
    orphans: list[str] = []
    names = {
        PurePosixPath(n).name: n
        for n in files
        if not PurePosixPath(n).name.startswith(".") and "__MACOSX" not in n
    }
    if "datapackage.json" in names:
        package = _json(files[names["datapackage.json"]], label)
        base = PurePosixPath(names["datapackage.json"]).parent
        tables = {}
        for res in package.get("resources") or ():
            path = str(base / str(res.get("path") or ""))
            if path not in files:
                raise DirectoryReadError(
                    f"datapackage.json lists {res.get('path')}, which is not there", file=label
                )
            tables[str(res.get("name") or res.get("path"))] = read_csv_text(_text(files[path], path))
        return read_tabular(tables, file=label, orphans=orphans), orphans
    csvs = {n: files[p] for n, p in names.items() if n.endswith(".csv")}
    if csvs:
        return read_tabular(
            {n: read_csv_text(_text(d, n)) for n, d in csvs.items()}, file=label, orphans=orphans
        ), orphans
    directory = Directory()
    jsons = sorted(n for n in names if n.endswith(".json"))
    if not jsons:
        raise DirectoryReadError("no HSDS files (datapackage.json, *.csv or *.json) found", file=label)
    for n in jsons:
        directory.merge(read_hsds_json(_json(files[names[n]], n), file=n))
    return directory, orphans


def _unzip(data: bytes, label: str) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if sum(i.file_size for i in zf.infolist()) > _MAX_BYTES:
                raise DirectoryReadError("the zip unpacks to more than 512 MB", file=label)
            return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    except zipfile.BadZipFile as exc:
        raise DirectoryReadError(f"not a zip file: {exc}", file=label) from exc


def _name(text: str) -> str:
    stem = PurePosixPath(urlparse(text).path if "://" in text else text).name or "directory"
    for suffix in (".json", ".zip", ".csv"):
        stem = stem.removesuffix(suffix)
    if stem == "datapackage":
        parent = PurePosixPath(urlparse(text).path if "://" in text else text).parent.name
        stem = parent or stem
    return "".join(c if c.isalnum() else "-" for c in stem.lower()).strip("-") or "directory"


def _read_bytes(data: bytes, label: str, filename: str) -> tuple[Directory, list[str]]:
    if filename.endswith(".zip") or data[:4] == b"PK\x03\x04":
        return _from_files(_unzip(data, label), label)
    if filename.endswith(".csv"):
        return _from_files({filename: data}, label)
    doc = _json(data, label)
    return read_hsds_json(doc, file=label), []


def read_directory(
    location: str | Path, *, client: httpx.Client | None = None, name: str | None = None
) -> DirectorySource:
    """Read the directory at ``location`` (a folder, a file or an http(s) URL; module docstring)."""
    text = str(location)
    try:
        if text.startswith(("http://", "https://")):
            return _read_url(text, client, name)
        path = Path(text)
        if path.is_dir():
            files = {
                str(p.relative_to(path).as_posix()): p.read_bytes()
                for p in sorted(path.rglob("*"))
                if p.is_file()
            }
            directory, orphans = _from_files(files, text)
            return DirectorySource(
                directory, name or _name(path.name), sum(len(d) for d in files.values()), orphans
            )
        data = path.read_bytes()
        if path.name == "datapackage.json":
            files = {p.name: p.read_bytes() for p in path.parent.glob("*") if p.is_file()}
            directory, orphans = _from_files(files, text)
            return DirectorySource(
                directory, name or _name(text), sum(len(d) for d in files.values()), orphans
            )
        directory, orphans = _read_bytes(data, text, path.name)
        return DirectorySource(directory, name or _name(text), len(data), orphans)
    except OSError as exc:
        raise DirectoryReadError(f"cannot read: {exc.strerror or exc}", file=text) from exc
    except MalformedInputError:
        raise


def _pages(first: str, client: httpx.Client) -> Iterator[tuple[str, bytes]]:
    url = first
    for number in range(MAX_PAGES):
        data = _get(client, url)
        yield url, data
        try:
            doc = json.loads(data)
        except ValueError:
            return
        if (
            not (isinstance(doc, dict) and isinstance(doc.get("contents"), list))
            or doc.get("last_page", True)
            or not doc.get("contents")
        ):
            return
        page = int(doc.get("page_number") or number + 1) + 1
        parsed = httpx.URL(first)
        url = str(parsed.copy_merge_params({"page": page}))


def _get(client: httpx.Client, url: str) -> bytes:
    try:
        resp = client.get(url, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise DirectoryReadError(f"cannot fetch: {type(exc).__name__}", file=url) from exc
    if resp.status_code != 200:
        raise DirectoryReadError(f"the server answered {resp.status_code}", file=url)
    if len(resp.content) > _MAX_BYTES:
        raise DirectoryReadError("the document is larger than 512 MB", file=url)
    return resp.content


def _read_url(url: str, client: httpx.Client | None, name: str | None) -> DirectorySource:
    own = client is None
    http = client or httpx.Client(timeout=60)
    try:
        directory = Directory()
        size = 0
        orphans: list[str] = []
        for page_url, data in _pages(url, http):
            size += len(data)
            filename = PurePosixPath(urlparse(page_url).path).name
            if not (filename.endswith((".zip", ".csv")) or data[:4] == b"PK\x03\x04"):
                doc = _json(data, page_url)
                if isinstance(doc, dict) and isinstance(doc.get("resources"), list) and "contents" not in doc:
                    files = {"datapackage.json": data}
                    for res in doc["resources"]:
                        path = str(res.get("path") or "")
                        files[path] = _get(http, urljoin(page_url, path))
                        size += len(files[path])
                    found, lost = _from_files(files, page_url)
                    directory.merge(found)
                    orphans += lost
                    continue
            found, lost = _read_bytes(data, page_url, filename)
            directory.merge(found)
            orphans += lost
        return DirectorySource(directory, name or _name(url), size, orphans)
    finally:
        if own:
            http.close()
