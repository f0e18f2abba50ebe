"""Write the demo's community resource directory, ``examples/demo/directory/``: 30 made-up services around
Springfield, Illinois, as an Open Referral HSDS 3.0 tabular data package (CSV files + datapackage.json).

Deterministic (``fhir_ecr.directory.generate``, seed 17): running it again writes the same bytes. ``mecr demo``
imports the folder (``mecr import directory examples/demo/directory --name springfield-demo``).
"""

from __future__ import annotations

import json
from pathlib import Path

from fhir_ecr.directory.generate import generate_directory
from mappings.community import csv_text, datapackage, write_tabular

OUT = Path(__file__).resolve().parent / "demo" / "directory"


def main() -> None:
    tables = write_tabular(generate_directory(30, seed=17))
    used = {t: rows for t, rows in tables.items() if rows}
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.csv"):
        old.unlink()
    for table, rows in used.items():
        (OUT / f"{table}.csv").write_text(csv_text(table, rows), encoding="utf-8")
    (OUT / "datapackage.json").write_text(
        json.dumps(datapackage("springfield-demo", used), indent=1) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
