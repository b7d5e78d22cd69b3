"""The teaching kit: student edition, grading and the teacher guide.

- ``layout``: where each exercise's prompt, solution and check are in a chapter, stored as
  cell metadata (``llmcourse-layout --write``) and read back by everything else.
- ``student_edition``: the chapters without solutions (``llmcourse-student``, ``make student``).
- ``grade``: grading a class's notebooks in a sandbox (``llmcourse-grade``, ``make grade``);
  ``runner`` is what runs inside the sandbox, ``specs`` the hidden test cases and references,
  ``honesty`` the static analysis of answers, ``codec`` the plain data passed in and out.
- ``guide``: book/teacher_guide.md (``llmcourse-guide``, ``make guide``).
- ``simulate``: a simulated class of submissions, for trying the grader (``llmcourse-class``).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository (editable install)
BOOK = ROOT / "book"
