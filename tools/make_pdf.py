"""Print the built website to one PDF: each page of _toc.yml printed by headless Chromium
(so formulas, figures and the print stylesheet come out as a reader sees them), then joined
in the book's order with a bookmark per page.

Usage: python tools/make_pdf.py [--site _build/html] [--out _build/pdf/rise-of-llms.pdf]
                                [--pages book/03_self_attention ...]
Run `make book` first (or `make pdf`, which does both). Needs Chromium
(apt-get install chromium) and pypdf. The PDF is written to a temporary file and renamed
when complete, so a failed run never leaves a half-written book behind.
"""

from __future__ import annotations

import argparse
import html as html_text
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pypdf import PdfWriter

from llmcourse.teaching import toc_pages

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("LLMCOURSE_CHROMIUM", "chromium")


def print_page(html: Path, pdf: Path) -> None:
    """One page to PDF; MathJax and the figures get 20 s of virtual time to finish."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-pdf-header-footer",
        "--virtual-time-budget=20000",
        f"--print-to-pdf={pdf}",
        html.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        raise RuntimeError(f"Chromium could not print {html}:\n{done.stderr[-2000:]}")


def page_title(html: Path) -> str:
    """The page's title without the book's name: "4. Self-attention"."""
    found = re.search(r"<title>(.*?)</title>", html.read_text(encoding="utf-8"), re.S)
    title = html_text.unescape(found.group(1)) if found else html.stem
    return title.split(" — ")[0].strip()


def make_pdf(site: Path, out: Path, pages: list[str]) -> int:
    """Print ``pages`` of the built ``site`` into ``out``; returns the number of PDF pages."""
    missing = [p for p in pages if not (site / f"{p}.html").exists()]
    if missing:
        raise FileNotFoundError(f"not in the built site {site}: {missing} (run `make book` first)")
    if shutil.which(CHROMIUM) is None:
        raise FileNotFoundError(f"{CHROMIUM} not found: apt-get install chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = PdfWriter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, page in enumerate(pages):
            part = Path(tmp) / f"{i:03d}.pdf"
            print_page(site / f"{page}.html", part)
            start = len(writer.pages)
            writer.append(str(part))
            writer.add_outline_item(title=page_title(site / f"{page}.html"), page_number=start)
        partial = out.with_suffix(".pdf.partial")
        with open(partial, "wb") as f:
            writer.write(f)
    partial.replace(out)
    return len(writer.pages)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "pdf" / "rise-of-llms.pdf")
    parser.add_argument("--pages", nargs="+", default=None, help="default: every page")
    args = parser.parse_args(argv)
    n = make_pdf(args.site, args.out, args.pages or toc_pages())
    print(f"{args.out}: {n} pages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
