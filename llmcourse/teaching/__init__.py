"""The teaching kit: student edition, grading and the teacher guide.

- ``layout``: where each exercise's prompt, solution and check are in a chapter, stored as
  cell metadata (``llmcourse-layout --write``) and read back by everything else.
- ``student_edition``: the chapters without solutions (``llmcourse-student``, ``make student``).
- ``grade``: grading a class's notebooks in a sandbox (``llmcourse-grade``, ``make grade``);
  ``runner`` is what runs inside the sandbox, ``specs`` the hidden test cases and references,
  ``honesty`` the static analysis of answers, ``codec`` the plain data passed in and out.
- ``guide``: book/teacher_guide.md (``llmcourse-guide``, ``make guide``).
- ``simulate``: a simulated class of submissions, for trying the grader (``llmcourse-class``).

``toc_parts`` and ``toc_pages`` read _toc.yml, the book's page order, for all of them and for
tools/make_pdf.py and the tests.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository (editable install)
BOOK = ROOT / "book"


def toc_parts(root: Path = ROOT) -> list[tuple[str, list[str]]]:
    """_toc.yml's parts in order: (caption, ["book/01_rise_of_llms", ...]); a toc without
    parts is one part without a caption."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    parts = toc.get("parts", [{"caption": "", "chapters": toc.get("chapters", [])}])
    return [(p.get("caption", ""), [e["file"] for e in p.get("chapters", [])]) for p in parts]


def toc_pages(root: Path = ROOT) -> list[str]:
    """Every page of the book in reading order: "book/intro", "book/01_rise_of_llms", ..."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [toc["root"]] + [f for _, files in toc_parts(root) for f in files]
