"""Write book/teacher_guide.md, and the chapter cards of book/intro.md, from the chapters
themselves and from timings.json.

Usage: llmcourse-guide [--check]   (or ``make guide``)

Nothing about a chapter is typed by hand: each chapter's title, its "You will be able to"
objectives and its exercises come from the notebook (exercises through
``llmcourse.teaching.layout``); what it builds on comes from the ``llmcourse`` modules it
imports (a module belongs to the first chapter that imports it) and from the earlier
chapters its prose names; run time and peak memory come from timings.json, written by
tools/execute_notebooks.py (``make execute``). The page's first part says how to hand out,
collect and grade the exercises. Re-run this after changing a chapter or re-executing one.
The home page's chapter cards (between the CARDS markers of book/intro.md) come from
_toc.yml's parts, each chapter's title, the one-line ``summary`` in its notebook metadata
(``llmcourse.summary``) and its run time.
With --check, write nothing and exit 1 if either page is stale.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from llmcourse.teaching import BOOK, ROOT
from llmcourse.teaching.grade import STATUS_HELP
from llmcourse.teaching.layout import Exercise, chapters, find_exercises

GUIDE = BOOK / "teacher_guide.md"
INTRO = BOOK / "intro.md"
CARDS_BEGIN = "<!-- chapter cards: written by llmcourse-guide (make guide), do not edit -->"
CARDS_END = "<!-- end of chapter cards -->"
TIMINGS = ROOT / "timings.json"
# Package modules that are course plumbing, not a chapter's subject.
PLUMBING = {"notebook", "plotting", "offline", "exercises"}
OBJECTIVES_RE = re.compile(r"^\**You will be able to:?\**:?[ \t]*$", re.MULTILINE)
CHAPTER_REF_RE = re.compile(r"\b[Cc]hapters?\s+(\d+(?:\s*(?:,|and|or|to|-|–)\s*\d+)*)")


@dataclass
class Chapter:
    path: Path
    number: int
    title: str
    objectives: list[str]
    summary: str  # one line, from the notebook's metadata (llmcourse.summary)
    exercises: list[Exercise]
    modules: set[str]  # llmcourse modules imported by its code
    mentioned: set[int]  # chapter numbers its prose names


def _objectives(text: str) -> list[str]:
    """The list items after "You will be able to:" (continuation lines joined)."""
    match = OBJECTIVES_RE.search(text)
    if match is None:
        return []
    items: list[str] = []
    for line in text[match.end() :].lstrip("\n").splitlines():
        if line.startswith(("- ", "* ")):
            items.append(line[2:].strip())
        elif line.startswith("  ") and items:
            items[-1] += " " + line.strip()
        else:
            break
    return items


def _modules(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {
        n.split(".")[1]
        for n in names
        if n.startswith("llmcourse.") and n.split(".")[1] not in PLUMBING
    }


def read_chapter(path: Path) -> Chapter:
    nb = nbformat.read(path, as_version=4)
    markdown = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    title = re.search(r"^# (.+)$", markdown, re.MULTILINE)
    if title is None:
        raise ValueError(f"{path.name}: no '# Title' heading")
    if re.match(r"\d+\.", title[1]):
        raise ValueError(
            f"{path.name}: its heading {title[1]!r} is numbered by hand; the chapter's "
            "number comes from its file name (the website and this guide add it)"
        )
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    mentioned = {
        int(n) for m in CHAPTER_REF_RE.finditer(markdown) for n in re.findall(r"\d+", m[1])
    }
    summary = nb.metadata.get("llmcourse", {}).get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError(
            f"{path.name}: no one-line summary in its notebook metadata "
            "(llmcourse.summary), which the home page's chapter card shows"
        )
    return Chapter(
        path,
        int(path.name[:2]),
        f"{int(path.name[:2])}. {title[1].strip()}",
        _objectives(markdown),
        summary.strip(),
        find_exercises(nb),
        set().union(*map(_modules, code)),
        mentioned,
    )


def builds_on(chapter: Chapter, every: list[Chapter]) -> list[int]:
    """Earlier chapters whose modules it imports or whose number its prose names."""
    home: dict[str, int] = {}
    for other in every:
        for module in other.modules:
            home.setdefault(module, other.number)
    earlier = {home[m] for m in chapter.modules} | chapter.mentioned
    known = {c.number for c in every}
    return sorted(n for n in earlier if n < chapter.number and n in known)


def _time(record: dict | None) -> tuple[str, str]:
    if not record:
        return "not measured", "not measured"
    return f"{record['seconds']:.0f} s", f"{record['peak_rss_mb']} MB"


def render(book: Path = BOOK, timings_path: Path = TIMINGS) -> str:
    every = [read_chapter(p) for p in chapters(book)]
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    by_number = {c.number: c for c in every}
    lines = [
        "# Teacher guide",
        "",
        "This page is for teachers who assign the course's exercises. It is generated by",
        "`llmcourse-guide` (`make guide`) from the chapters themselves and from the run",
        "times that `make execute` measured, so it cannot drift from the book: a test fails",
        "when it is out of date.",
        "",
        "## How the exercises work",
        "",
        "Every chapter ends with exercises. Each has a prompt, a solution folded away on this",
        "website, and a check function that the student calls on their own answer: it passes a",
        "correct answer and, for a wrong one, says what is wrong. The checks are for practice:",
        "they run in the student's own notebook, where a student can change anything.",
        "Grading does not trust them (see below).",
        "",
        "**The solutions are public.** They are in this book, in the repository and in the",
        "package's tests. Grade the exercises as practice, or as part of a grade only with",
        "that in mind; the grader detects copying the package's or the chapter's own code,",
        "not a solution retyped from this website.",
        "",
        "## Handing out",
        "",
        "- `make student` writes the **student edition**, `student/NN_name.ipynb`: the same",
        '  chapters with every solution replaced by an answer cell that stops with "Exercise',
        '  ...: not yet answered", and with no outputs. Hand these out (they also run on',
        "  Colab). Students write each answer in its answer cell and keep the cell (its",
        "  metadata tells the grader which exercise it answers).",
        "- `make student-site` builds a **class website without the solutions**, from the",
        "  student edition, in `_build/student-site/`: publish that one, not this book.",
        "- Or download them from this website, made from the chapters at every build:",
        '  <a href="../downloads/student-edition.zip">the student edition</a> and',
        '  <a href="../downloads/notebooks.zip">the chapters with outputs and solutions</a>',
        "  (zip files of notebooks).",
        "",
        "## Collecting",
        "",
        "Collect the notebooks into one folder per student:",
        "`submissions/alice/03_self_attention.ipynb`. A notebook's chapter is found from its",
        "exercise labels, so renamed files are fine.",
        "",
        "## Grading",
        "",
        "`make grade SUBMISSIONS=submissions` (or `llmcourse-grade submissions --out grades",
        "--jobs 2`) grades every notebook. Each runs in its own sandbox (bubblewrap: no",
        "network, an empty folder of its own, read-only access to the course package and",
        "nothing else of yours, limits on time, memory and output); without bubblewrap the",
        "grader refuses unless told `--unsafe`, and `grading/Containerfile` is a container",
        "that has it. Right after each answer cell, the answer is called on hidden test cases",
        "drawn from a secret seed (`grades/seed`; never share it), and what it returns comes",
        "back as plain numbers; the grader compares them with its own reference outside the",
        "sandbox. A later cell cannot change an earlier answer's result.",
        "",
        "Results are written per notebook as soon as it is graded, so an interrupted run",
        "resumes where it stopped. You get `grades/class.csv` (one row per student: one column",
        "per exercise, a total), `grades/exercises.csv` (one row per student and exercise,",
        "with the reason) and `grades/feedback/STUDENT.md` to send each student. For a large",
        "class, `grading/` has a SLURM job array and a Kubernetes indexed Job that grade",
        "shards in parallel, and `llmcourse-grade merge` combines their results.",
        "",
        "**Re-grading one student** (a late or corrected notebook): replace their notebook and",
        "run the same command again; unchanged notebooks are skipped. To grade a student again",
        "without a change, add `--regrade alice`.",
        "",
        "What each result means:",
        "",
        *[f"- **{status}**: {meaning}." for status, meaning in STATUS_HELP.items()],
        "",
        "## Chapters at a glance",
        "",
        "Run time and peak memory are for the whole chapter, top to bottom, as measured by",
        "`make execute` on the machine that last executed it.",
        "",
        "| chapter | exercises | builds on | run time | peak memory |",
        "|---|---|---|---|---|",
    ]
    for c in every:
        seconds, memory = _time(timings.get(c.path.name))
        before = ", ".join(str(n) for n in builds_on(c, every)) or "—"
        lines.append(
            f"| [{c.title}]({c.path.name}) | {len(c.exercises)} | {before} | {seconds} | {memory} |"
        )
    total = sum(timings[c.path.name]["seconds"] for c in every if c.path.name in timings)
    measured = sum(c.path.name in timings for c in every)
    lines += [
        "",
        f"{measured} of {len(every)} chapters measured, {total / 60:.1f} minutes in all.",
        "",
    ]
    for c in every:
        seconds, memory = _time(timings.get(c.path.name))
        before = builds_on(c, every)
        lines += [f"## {c.title}", ""]
        if before:
            names = "; ".join(f"[{by_number[n].title}]({by_number[n].path.name})" for n in before)
            lines += [f"**Builds on:** {names}.", ""]
        else:
            lines += ["**Builds on:** nothing earlier in the course.", ""]
        lines += ["**Learning objectives.** Students will be able to:", ""]
        lines += [f"- {o}" for o in c.objectives] or ["- (the chapter lists none)"]
        lines += [
            "",
            f"**Suggested assignment:** its {len(c.exercises)} exercises, each "
            "checked by the call after it:",
            "",
        ]
        lines += [  # numbered as on the chapter's page (_ext/chapter_numbers.py)
            f"- Exercise {c.number}.{i}, {{ref}}`{e.label}` (`{e.check_function}`)"
            for i, e in enumerate(c.exercises, start=1)
        ]
        if seconds == "not measured":
            lines += [
                "",
                f"**Run time:** not measured yet (`make execute NB=book/{c.path.name}`).",
                "",
            ]
        else:
            lines += ["", f"**Run time:** {seconds}, peak memory {memory}.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_cards(book: Path = BOOK, timings_path: Path = TIMINGS) -> str:
    """The home page's chapters: one grid of cards per part of _toc.yml, with run times."""
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    by_file = {f"book/{p.stem}": read_chapter(p) for p in chapters(book)}
    lines = [CARDS_BEGIN]
    for part in yaml.safe_load((book.parent / "_toc.yml").read_text())["parts"]:
        members = [by_file[e["file"]] for e in part["chapters"] if e["file"] in by_file]
        if not members:
            continue
        lines += ["", f"### {part['caption']}", "", "::::{grid} 1 2 2 3", ":gutter: 2", ""]
        for c in members:
            record = timings.get(c.path.name)
            runs = f"Runs in {record['seconds']:.0f} s." if record else "Run time not measured."
            lines += [
                f":::{{grid-item-card}} {c.title}",
                f":link: {c.path.stem}",
                ":link-type: doc",
                "",
                c.summary,
                "",
                f"*{runs}*",
                ":::",
                "",
            ]
        lines.append("::::")
    lines += ["", CARDS_END]
    return "\n".join(lines)


def render_intro(intro: Path = INTRO, book: Path = BOOK, timings_path: Path = TIMINGS) -> str:
    """book/intro.md with its chapter cards rewritten."""
    text = intro.read_text()
    begin, end = text.find(CARDS_BEGIN), text.find(CARDS_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{intro.name}: the chapter cards' markers are missing ({CARDS_BEGIN})")
    return text[:begin] + render_cards(book, timings_path) + text[end + len(CARDS_END) :]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pages = {GUIDE: render(), INTRO: render_intro()}
    if "--check" in argv:
        stale = [p for p, text in pages.items() if not p.exists() or p.read_text() != text]
        for page in stale:
            print(f"stale: {page.relative_to(ROOT)}; run llmcourse-guide (make guide)")
        return 1 if stale else 0
    for page, text in pages.items():
        page.write_text(text)
        print(f"wrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
