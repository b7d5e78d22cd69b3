"""Write book/teacher_guide.md, and the chapter cards of book/intro.md, from the chapters
themselves and from timings.json.

Usage: llmcourse-guide [--check]   (or ``make guide``)

Nothing about a chapter is typed by hand: each chapter's title, its "You will be able to"
objectives and its exercises come from the notebook (exercises through
``llmcourse.teaching.layout``), each exercise's difficulty from its "Difficulty: ★★☆" line,
its discussion questions and their model answers from ``{admonition} Discussion: ...`` cells
and the ``discussion-answer`` cells after them; its prerequisites are declared in its
notebook metadata (``llmcourse.prerequisites``, a list of earlier chapters), and
``undeclared`` checks them against the ``llmcourse`` modules the chapter imports (a module
belongs to the first chapter that imports it); run time and peak memory come from
timings.json, written by tools/execute_notebooks.py (``make execute``). Student time is an
estimate from the chapter's length and its exercises' difficulty (``STUDY``), and the
semester and workshop plans are built from it. The page's first part says how to plan a
course and how to hand out, collect and grade the exercises. Re-run this after changing a
chapter or re-executing one.
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

from llmcourse.teaching import BOOK, ROOT, toc_parts
from llmcourse.teaching.grade import STATUS_HELP
from llmcourse.teaching.layout import ANSWER_TAG, Exercise, chapters, find_exercises

GUIDE = BOOK / "teacher_guide.md"
INTRO = BOOK / "intro.md"
CARDS_BEGIN = "<!-- chapter cards: written by llmcourse-guide (make guide), do not edit -->"
CARDS_END = "<!-- end of chapter cards -->"
TIMINGS = ROOT / "timings.json"
# Package modules that are course plumbing, not a chapter's subject.
PLUMBING = {"notebook", "plotting", "offline", "exercises", "diagrams", "explorers", "validation"}
OBJECTIVES_RE = re.compile(r"^\**You will be able to:?\**:?[ \t]*$", re.MULTILINE)
DIFFICULTY_RE = re.compile(r"^Difficulty:\s*(★+)(☆*)\s*$", re.MULTILINE)
# ```{admonition} Discussion: Title      (the question: options, a blank line, the body)
DISCUSSION_RE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{admonition\}[ \t]*Discussion:[ \t]*(?P<title>[^\n]+)\n"
    r"(?P<body>(?:[^\n]*\n)*?)(?P=fence)[ \t]*$",
    re.MULTILINE,
)
# Student time, an estimate: prose read at 100 words a minute (with equations), code read
# and run at 10 lines a minute (folded cells not counted), and minutes per exercise by its
# difficulty (1, 2 or 3 stars).
STUDY = {"words_per_minute": 100, "code_lines_per_minute": 10, "exercise_minutes": (15, 30, 60)}
SEMESTER_WEEKS = 12  # teaching weeks, leaving room for a project and exams
WORKSHOP = {  # two days, each about six hours of work: the core path, one exercise a chapter
    "Day 1: the Transformer, piece by piece": [3, 4, 5, 6],
    "Day 2: a whole model, trained and run": [7, 8, 9, 12],
}


@dataclass
class Discussion:
    title: str
    question: str
    answer: str


@dataclass
class Chapter:
    path: Path
    number: int
    title: str
    objectives: list[str]
    summary: str  # one line, from the notebook's metadata (llmcourse.summary)
    exercises: list[Exercise]
    difficulty: dict[str, int]  # exercise label -> 1, 2 or 3 stars
    discussions: list[Discussion]
    prerequisites: list[int]  # declared in its metadata (llmcourse.prerequisites)
    modules: set[str]  # llmcourse modules imported by its code
    reading_minutes: float
    exercise_minutes: float

    @property
    def study_minutes(self) -> float:
        return self.reading_minutes + self.exercise_minutes

    def core_minutes(self) -> float:
        """Reading, and the first easiest exercise: the workshop's version of the chapter."""
        easiest = min(self.difficulty.values(), default=0)
        return self.reading_minutes + (STUDY["exercise_minutes"][easiest - 1] if easiest else 0)


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


def _directive_body(text: str) -> str:
    """A directive's content without its option lines (``:class: ...``)."""
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith(":")).strip()


def _discussions(nb, path: Path) -> list[Discussion]:
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for match in DISCUSSION_RE.finditer(cell.source):
            after = nb.cells[index + 1] if index + 1 < len(nb.cells) else None
            if after is None or ANSWER_TAG not in after.metadata.get("tags", []):
                raise ValueError(
                    f"{path.name}: discussion question {match['title'].strip()!r} has no model "
                    f"answer: the next cell must be a markdown cell tagged {ANSWER_TAG!r}"
                )
            answer = re.sub(r"^(`{3,}|:{3,})\{admonition\}[^\n]*\n", "", after.source.strip())
            answer = re.sub(r"\n(`{3,}|:{3,})$", "", answer)
            found.append(
                Discussion(
                    match["title"].strip(), _directive_body(match["body"]), _directive_body(answer)
                )
            )
    return found


def _prerequisites(nb, path: Path, number: int) -> list[int]:
    declared = nb.metadata.get("llmcourse", {}).get("prerequisites")
    if not isinstance(declared, list) or not all(
        type(n) is int and 1 <= n < number for n in declared
    ):
        raise ValueError(
            f"{path.name}: its notebook metadata must declare llmcourse.prerequisites, a list "
            f"of earlier chapter numbers (1 to {number - 1}; [] for none), got {declared!r}"
        )
    return sorted(declared)


def read_chapter(path: Path) -> Chapter:
    nb = nbformat.read(path, as_version=4)
    number = int(path.name[:2])
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
    summary = nb.metadata.get("llmcourse", {}).get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError(
            f"{path.name}: no one-line summary in its notebook metadata "
            "(llmcourse.summary), which the home page's chapter card shows"
        )
    exercises = find_exercises(nb)
    difficulty = {}
    for exercise in exercises:
        stars = DIFFICULTY_RE.search(nb.cells[exercise.prompt_cell].source)
        if stars is None or len(stars[1]) + len(stars[2]) != 3:
            raise ValueError(
                f"{path.name}: exercise {exercise.label} has no 'Difficulty: ★☆☆' line "
                "(one to three filled stars out of three)"
            )
        difficulty[exercise.label] = len(stars[1])
    shown = [  # what a student reads and runs: not solutions, not folded diagram code
        c.source
        for c in nb.cells
        if c.cell_type == "code"
        and not {"solution", "hide-input", "remove-cell"} & set(c.metadata.get("tags", []))
    ]
    words = len(re.sub(r"\$\$.*?\$\$|\$[^$\n]*\$", " x ", markdown, flags=re.DOTALL).split())
    lines = sum(
        1
        for s in shown
        for line in s.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return Chapter(
        path,
        number,
        f"{number}. {title[1].strip()}",
        _objectives(markdown),
        summary.strip(),
        exercises,
        difficulty,
        _discussions(nb, path),
        _prerequisites(nb, path, number),
        set().union(*map(_modules, code)),
        words / STUDY["words_per_minute"] + lines / STUDY["code_lines_per_minute"],
        sum(STUDY["exercise_minutes"][d - 1] for d in difficulty.values()),
    )


def needs(chapter: Chapter, every: list[Chapter]) -> set[int]:
    """The declared prerequisites and theirs, all the way down."""
    by_number = {c.number: c for c in every}
    todo, seen = list(chapter.prerequisites), set()
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += by_number[n].prerequisites if n in by_number else []
    return seen


def undeclared(chapter: Chapter, every: list[Chapter]) -> list[int]:
    """Earlier chapters whose modules it imports but that its prerequisites do not reach."""
    home: dict[str, int] = {}
    for other in every:
        for module in other.modules:
            home.setdefault(module, other.number)
    used = {home[m] for m in chapter.modules if home[m] < chapter.number}
    return sorted(used - needs(chapter, every))


def _one_paragraph(text: str) -> str:
    return " ".join(text.split())


def _time(record: dict | None) -> tuple[str, str]:
    if not record:
        return "not measured", "not measured"
    return f"{record['seconds']:.0f} s", f"{record['peak_rss_mb']} MB"


def _duration(minutes: float) -> str:
    """About 2.5 h, or 45 min: estimates, rounded to what they are worth."""
    if minutes < 60:
        return f"{5 * round(minutes / 5):.0f} min"
    return f"{round(minutes / 30) / 2:g} h"


def semester(every: list[Chapter], weeks: int = SEMESTER_WEEKS) -> list[list[Chapter]]:
    """Chapters in order, grouped into ``weeks`` weeks: the two neighbouring weeks with the
    least work between them are merged until the count fits."""
    plan = [[c] for c in every]
    while len(plan) > weeks:
        load = [sum(c.study_minutes for c in a + b) for a, b in zip(plan, plan[1:])]
        i = load.index(min(load))
        plan[i : i + 2] = [plan[i] + plan[i + 1]]
    return plan


def _links(chapters: list[Chapter]) -> str:
    return "; ".join(f"[{c.title}]({c.path.name})" for c in chapters)


def _planning(every: list[Chapter]) -> list[str]:
    by_number = {c.number: c for c in every}
    total = sum(c.study_minutes for c in every)
    minutes = STUDY["exercise_minutes"]
    lines = [
        "## Planning a course",
        "",
        "**Student time** per chapter is an estimate, computed from the chapter itself: its",
        f"prose read at {STUDY['words_per_minute']} words a minute (it has equations), its",
        f"code read and run at {STUDY['code_lines_per_minute']} lines a minute (solutions",
        "and folded diagram code not counted), and each exercise by its difficulty:",
        f"★☆☆ {minutes[0]} min, ★★☆ {minutes[1]} min, ★★★ {minutes[2]} min. Calibrate it with",
        f"your own class. The whole course comes to about {_duration(total)}.",
        "",
        "Each chapter declares its **prerequisites** (the earlier chapters it builds on) in",
        "its notebook metadata; a test checks that every course module a chapter imports",
        "comes from a chapter its prerequisites reach.",
        "",
        f"### A semester of {SEMESTER_WEEKS} weeks",
        "",
        f"{SEMESTER_WEEKS} teaching weeks, leaving room for a project and exams. Chapters stay",
        "in order; the lightest neighbours share a week. Assign every exercise of the week;",
        "discuss the chapter's discussion questions in class.",
        "",
        "| week | chapters | student time | exercises |",
        "|---|---|---|---|",
    ]
    for week, group in enumerate(semester(every), start=1):
        work = _duration(sum(c.study_minutes for c in group))
        count = sum(len(c.exercises) for c in group)
        lines.append(f"| {week} | {_links(group)} | {work} | {count} |")
    taught = set().union(*WORKSHOP.values())
    before = [c for c in every if c.number < min(taught)]
    rest = [c for c in every if c.number > min(taught) and c.number not in taught]
    lines += [
        "",
        "### A two-day workshop",
        "",
        "The core path from attention to a real LLM, about six hours of work a day. Per",
        "chapter: read and run it together, then one exercise, the first of the easiest ones.",
        f"Before the first day, the participants read {_links(before)}; afterwards, the",
        f"rest: {_links(rest)}.",
        "",
        "| day | chapters | time |",
        "|---|---|---|",
    ]
    for day, numbers in WORKSHOP.items():
        members = [by_number[n] for n in numbers if n in by_number]
        time = _duration(sum(c.core_minutes() for c in members))
        lines.append(f"| {day} | {_links(members)} | {time} |")
    lines.append("")
    return lines


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
        "Each exercise is marked ★☆☆ (apply what the chapter just showed), ★★☆ (combine",
        "ideas, or predict and then verify) or ★★★ (build or investigate something the",
        "chapter did not show). **Discussion questions** are not graded by a check; each",
        "chapter's section below gives them with a model answer (the student edition leaves",
        "the answers out).",
        "",
        *_planning(every),
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
        "| chapter | prerequisites | exercises | student time | run time | peak memory |",
        "|---|---|---|---|---|---|",
    ]
    for c in every:
        seconds, memory = _time(timings.get(c.path.name))
        before = ", ".join(str(n) for n in c.prerequisites) or "—"
        lines.append(
            f"| [{c.title}]({c.path.name}) | {before} | {len(c.exercises)} | "
            f"{_duration(c.study_minutes)} | {seconds} | {memory} |"
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
        lines += [f"## {c.title}", ""]
        if c.prerequisites:
            before = _links([by_number[n] for n in c.prerequisites])
            lines += [f"**Prerequisites:** {before}.", ""]
        else:
            lines += ["**Prerequisites:** none in the course.", ""]
        lines += [
            f"**Student time:** about {_duration(c.study_minutes)} (reading and running "
            f"{_duration(c.reading_minutes)}, exercises {_duration(c.exercise_minutes)}).",
            "",
        ]
        lines += ["**Learning objectives.** Students will be able to:", ""]
        lines += [f"- {o}" for o in c.objectives] or ["- (the chapter lists none)"]
        lines += [
            "",
            f"**Suggested assignment:** its {len(c.exercises)} exercises, each "
            "checked by the call after it:",
            "",
        ]
        lines += [  # numbered as on the chapter's page (_ext/chapter_numbers.py)
            f"- Exercise {c.number}.{i} {'★' * c.difficulty[e.label]:☆<3}, "
            f"{{ref}}`{e.label}` (`{e.check_function}`)"
            for i, e in enumerate(c.exercises, start=1)
        ]
        if c.discussions:
            lines += ["", "**Discussion questions**, with model answers:", ""]
            for d in c.discussions:
                lines += [f"- *{d.title}* {_one_paragraph(d.question)}", ""]
                lines += [f"  **A model answer.** {_one_paragraph(d.answer)}", ""]
            lines.pop()  # the blank line before the run time comes next
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
    for caption, files in toc_parts(book.parent):
        members = [by_file[f] for f in files if f in by_file]
        if not members:
            continue
        lines += ["", f"### {caption}", "", "::::{grid} 1 2 2 3", ":gutter: 2", ""]
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
