"""The book's structure: every chapter follows the conventions of CONTRIBUTING.md.

These read the notebooks as files (nbval is what runs them): the table of contents lists
every chapter, each starts with the current Colab cell, opens with objectives, closes with
a summary, exercises with hidden solutions and checks, and further reading, and was
executed top to bottom with no errors or stray stderr in its stored outputs.
"""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from llmcourse.teaching import toc_parts

ROOT = Path(__file__).resolve().parent.parent
PROGRESS_BAR = re.compile(r"\d+/\d+ \[[\d:?]+<")  # tqdm's "1500/1500 [00:45<00:00": allowed
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
IGNORE_TAG = "nbval-ignore-output"  # nbval compares every output but those of cells so tagged


def toc_files():
    return [f for _, files in toc_parts() for f in files]


def markdown(nb):
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_every_chapter_is_in_the_toc_and_the_intro():
    listed = toc_files()
    intro = (ROOT / "book" / "intro.md").read_text()
    for path in CHAPTERS:
        assert f"book/{path.stem}" in listed, f"{path.name} is missing from _toc.yml"
        assert f":link: {path.stem}\n" in intro, f"{path.name} has no card in book/intro.md"
    for entry in listed:
        assert list(ROOT.glob(entry + ".*")), f"_toc.yml lists {entry}, which does not exist"


def test_colab_cells_are_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "sync_colab_cell.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_structure(path):
    nb = nbformat.read(path, as_version=4)
    number = int(path.name[:2])
    text = markdown(nb)
    title = re.search(r"^# (.+)$", text, re.M)
    assert title and not re.match(r"\d", title[1]), (
        f"title must be '# Title': the number {number} comes from the file name"
    )
    no_alt = [
        c.metadata.get("mystnb", {}).get("figure", {}).get("name", f"cell {i}")
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))
        and len(c.metadata.get("mystnb", {}).get("image", {}).get("alt", "")) < 40
    ]
    assert no_alt == [], f"figures without alt text (mystnb.image.alt): {no_alt}"
    assert "You will be able to" in text
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[-3:] == ["Summary", "Exercises", "Further reading"], headings[-3:]
    exercises = re.findall(r"```\{exercise\}", text)
    labels = re.findall(r":label: (ex-ch\d\d-[\w-]+)", text)
    assert len(exercises) >= 3 and len(labels) == len(exercises)
    for label in labels:
        assert f"{{solution-start}} {label}" in text, f"{label} has no solution"
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) >= len(labels)
    checks = [
        c for c in nb.cells if c.cell_type == "code" and re.search(r"\bcheck_\w+\(", c.source)
    ]
    assert len(checks) >= len(labels), "every exercise needs a check call"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_was_executed_cleanly(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), (
        "execute the chapter top to bottom: make execute NB=" + str(path.relative_to(ROOT))
    )
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error", f"stored error in: {cell.source[:60]!r}"
            if out.output_type != "stream" or out.name != "stderr":
                continue
            if not (PROGRESS_BAR.search(out.text) or not out.text.strip()):
                pytest.fail(f"stderr in output of {cell.source[:60]!r}: {out.text[:200]}")
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_few_outputs_escape_nbval(path):
    """Outputs nbval does not compare carry the cell tag (not a comment a reader would see),
    and are at most a tenth of the code cells: the rest of the chapter is proven current."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    comment = [c.source[:60] for c in code if "NBVAL_IGNORE_OUTPUT" in c.source]
    assert comment == [], f"use the cell tag {IGNORE_TAG!r}, not a comment: {comment}"
    ignored = [c for c in code if IGNORE_TAG in c.metadata.get("tags", [])]
    assert len(ignored) <= len(code) / 10, f"{len(ignored)} of {len(code)} cells escape nbval"
