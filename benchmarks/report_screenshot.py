"""Screenshot of an HTML report in headless Chromium with the network off (the picture in ``docs/``).

    python benchmarks/report_screenshot.py REPORT.html OUT.png [--width 1100] [--height 0]

``--height 0`` (the default) takes the whole page; a height crops it to the top of the page.
Needs the test extra (Playwright) and Debian's ``chromium`` at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def screenshot(html: Path, png: Path, width: int = 1100, height: int = 0) -> list[str]:
    """Write the screenshot; returns the console errors and failed requests seen (none expected)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(
                offline=True, viewport={"width": width, "height": height or 900}
            ).new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(html.resolve().as_uri(), wait_until="load")
            page.screenshot(path=str(png), full_page=not height)
        finally:
            browser.close()
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=0)
    args = parser.parse_args()
    problems = screenshot(args.html, args.png, args.width, args.height)
    print(f"written {args.png}" + (f"; problems: {problems}" if problems else ""))


if __name__ == "__main__":
    main()
