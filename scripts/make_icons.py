"""Draw the app icons (PNG 32/180/192/512 and ``favicon.ico``) from ``fhir_ecr/web/static/icon.svg``.

Headless Chromium renders the SVG at each size (no image library needed); the ICO holds the 32 px PNG as its
one image (ICO files may carry PNG data since Windows Vista). Run it after changing ``icon.svg``; the outputs
are committed.

Usage::

    .venv/bin/python scripts/make_icons.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "fhir_ecr" / "web" / "static"
SIZES = {"icon-192.png": 192, "icon-512.png": 512, "apple-touch-icon.png": 180, "favicon-32.png": 32}


def ico(png: bytes, size: int) -> bytes:
    """A one-image ICO file holding ``png`` (ICONDIR + ICONDIRENTRY + the PNG bytes)."""
    side = 0 if size >= 256 else size
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(png), 6 + 16)
    return header + entry + png


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    svg = (STATIC / "icon.svg").read_text()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium)
        for name, size in SIZES.items():
            page = browser.new_page(viewport={"width": size, "height": size}, device_scale_factor=1)
            page.set_content(
                f'<html><body style="margin:0">{svg.replace("<svg ", f"<svg width={size} height={size} ", 1)}'
                "</body></html>"
            )
            (STATIC / name).write_bytes(
                page.screenshot(omit_background=True, clip={"x": 0, "y": 0, "width": size, "height": size})
            )
            page.close()
        browser.close()
    (STATIC / "favicon.ico").write_bytes(ico((STATIC / "favicon-32.png").read_bytes(), 32))
    (STATIC / "favicon-32.png").unlink()
    print("wrote", ", ".join([*(n for n in SIZES if n != "favicon-32.png"), "favicon.ico"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
