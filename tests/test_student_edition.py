"""The exercise layout, the student edition and the teacher guide (llmcourse.teaching).

Every chapter in book/ is checked, so a new chapter joins these tests by existing: its
exercises must follow CONTRIBUTING.md's layout, its layout must survive being stored as
metadata, its student notebook must hold no solution, and every unanswered exercise must stop
with a clear "not yet answered" error.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from llmcourse.exercises import NotYetAnswered
from llmcourse.teaching import guide, layout
from llmcourse.teaching import student_edition as se

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = layout.chapters()
SHORT = "04_multi_head_attention.ipynb"  # executed end to end: short, a few exercises


def read(path: Path):
    return nbformat.read(path, as_version=4)


def annotated(path: Path):
    """A copy of a chapter with its layout written as metadata (the book is left alone)."""
    nb = read(path)
    layout.annotate(nb)
    return nb


@pytest.fixture(scope="module")
def editions(tmp_path_factory):
    """chapter name -> (book notebook, student notebook), built by the command line tool."""
    out = tmp_path_factory.mktemp("student")
    done = subprocess.run(
        [sys.executable, "-m", "llmcourse.teaching.student_edition", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("solutions removed") == len(CHAPTERS)
    return {p.name: (read(p), read(out / p.name)) for p in CHAPTERS}


def test_there_are_chapters():
    assert len(CHAPTERS) >= 6
    assert [p.name[:2] for p in CHAPTERS] == sorted(p.name[:2] for p in CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_follow_the_convention(path):
    exercises = layout.find_exercises(read(path))
    assert len(exercises) >= 3, f"{path.name}: {len(exercises)} exercises"
    number = path.name[:2]
    for exercise in exercises:
        assert exercise.label.startswith(f"ex-ch{number}-"), exercise.label
        assert exercise.check_module == f"llmcourse.exercises.ch{number}", exercise
        assert exercise.answer_names, (
            f"{exercise.label}: the check uses no name the solution defines"
        )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_stored_layout_is_the_derived_one(path):
    """Written once as metadata, the layout reads back as what the markup says; a stale or
    missing layout is named."""
    nb = read(path)
    derived = layout.derive_layout(nb)
    stored = annotated(path)
    assert layout.is_annotated(stored) and layout.stale(stored) == ""
    assert layout.read_layout(stored) == derived == layout.find_exercises(stored)
    assert not layout.annotate(stored), "annotating twice changes nothing"
    if not layout.is_annotated(nb):
        assert layout.stale(nb) == "no stored layout"
    moved = copy.deepcopy(stored)  # a check cell that lost its metadata
    del moved.cells[derived[0].check_cell].metadata["llmcourse"]
    assert layout.stale(moved)


def test_layout_command_writes_and_checks(tmp_path):
    path = tmp_path / SHORT
    nbformat.write(read(ROOT / "book" / SHORT), path)
    command = [sys.executable, "-m", "llmcourse.teaching.layout"]
    if not layout.is_annotated(read(path)):
        check = subprocess.run([*command, "--check", str(path)], capture_output=True, text=True)
        assert check.returncode == 1 and "no stored layout" in check.stdout
    write = subprocess.run([*command, "--write", str(path)], capture_output=True, text=True)
    assert write.returncode == 0, write.stderr
    check = subprocess.run([*command, "--check", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    nb = read(path)
    roles = [c.metadata.get("llmcourse", {}).get("role") for c in nb.cells]
    exercises = len(layout.derive_layout(read(ROOT / "book" / SHORT)))
    assert roles.count("prompt") == roles.count("check") == exercises >= 4
    # Only metadata changed: sources and outputs are the book's.
    book = read(ROOT / "book" / SHORT)
    assert [c.source for c in nb.cells] == [c.source for c in book.cells]
    assert [c.get("outputs") for c in nb.cells] == [c.get("outputs") for c in book.cells]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook_has_no_solutions_and_no_outputs(editions, path):
    book, student = editions[path.name]
    text = nbformat.writes(student)
    assert "solution-start" not in text and "solution-end" not in text
    for cell in student.cells:
        assert "solution" not in cell.metadata.get("tags", [])
        assert cell.metadata.get("llmcourse", {}).get("role") != "solution"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    exercises = layout.find_exercises(book)
    for exercise in exercises:
        for index in exercise.solution_cells:
            solution = book.cells[index].source.strip()
            assert not any(c.source.strip() == solution for c in student.cells), exercise.label
    # Prompts and check calls are kept; so is every other cell, in order.
    assert layout.exercise_labels(student) == [e.label for e in exercises]
    kept = [
        c.source
        for c in student.cells
        if c.cell_type == "code" and "answer" not in c.metadata.get("tags", [])
    ]
    expected = [
        c.source
        for c in book.cells
        if c.cell_type == "code" and "solution" not in c.metadata.get("tags", [])
    ]
    assert kept == expected
    stubs = [c for c in student.cells if "answer" in c.metadata.get("tags", [])]
    assert [c.metadata["llmcourse"] for c in stubs] == [
        {"exercise": e.label, "role": "answer"} for e in exercises
    ]
    assert student.cells[0].metadata["tags"][0] == "colab-setup"
    # The student edition carries its layout: answers, checks and prompts are found by it.
    assert layout.is_annotated(student)
    found = layout.read_layout(student)
    assert [(e.label, e.check_function, e.answer_names) for e in found] == [
        (e.label, e.check_function, e.answer_names) for e in exercises
    ]


def test_annotated_and_plain_books_give_the_same_student_edition():
    for path in CHAPTERS[:3]:
        plain, stored = se.student_notebook(read(path)), se.student_notebook(annotated(path))
        assert nbformat.writes(plain) == nbformat.writes(stored), path.name


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_each_stub_and_its_check_say_not_yet_answered(editions, path):
    """Run each stub, then the book's check call after it: both stop as 'not yet answered'."""
    book, student = editions[path.name]
    stubs = {
        c.metadata["llmcourse"]["exercise"]: c
        for c in student.cells
        if "answer" in c.metadata.get("tags", [])
    }
    namespace: dict = {}  # shared, in order: a check cell may import the next one's check
    for exercise in layout.find_exercises(book):
        message = f"Exercise {exercise.label}: not yet answered — write your answer here"
        with pytest.raises(NotYetAnswered, match=message):
            exec(stubs[exercise.label].source, namespace)
        check = book.cells[exercise.check_cell].source
        with pytest.raises(NotYetAnswered, match="not yet answered"):
            exec(check, namespace)


def test_a_student_notebook_runs_up_to_each_exercise(editions):
    """Run a whole student chapter: the only errors are the exercises' NotYetAnswered."""
    _, student = editions[SHORT]
    client = NotebookClient(
        student,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(ROOT / "book")}},
    )
    client.execute()
    errors = [
        (i, o)
        for i, c in enumerate(student.cells)
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    first_stub = min(
        i for i, c in enumerate(student.cells) if "answer" in c.metadata.get("tags", [])
    )
    assert errors, "the unanswered exercises raised nothing"
    assert all(o.ename == "NotYetAnswered" for _, o in errors), [
        (i, o.ename, o.evalue) for i, o in errors
    ]
    assert min(i for i, _ in errors) == first_stub
    assert errors[0][1].evalue.startswith("Exercise ex-ch04-")


def test_building_the_student_edition_leaves_the_book_alone():
    for path in CHAPTERS:
        nb = read(path)
        before = nbformat.writes(nb)
        se.student_notebook(nb)
        assert nbformat.writes(nb) == before, path.name
        assert nbformat.writes(nb) == nbformat.writes(read(path))


def test_malformed_exercises_are_named():
    def notebook(*cells):
        return nbformat.v4.new_notebook(cells=list(cells))

    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    prompt = md(
        "```{exercise} T\n:label: ex-ch99-a\n\nDo it.\n```\n\n"
        "```{solution-start} ex-ch99-a\n:class: dropdown\n```"
    )
    answer = code("def f():\n    return 1", metadata={"tags": ["solution"]})
    end = md("```{solution-end}\n```")
    check = code("from llmcourse.exercises.ch99 import check_f\n\ncheck_f(f)")
    exercises = layout.find_exercises(notebook(prompt, answer, end, check))
    assert [(e.label, e.title, e.check_call, e.answer_names) for e in exercises] == [
        ("ex-ch99-a", "T", "check_f(f)", ["f"])
    ]
    with pytest.raises(ValueError, match="no cell calling check_"):
        layout.find_exercises(notebook(prompt, answer, end))
    with pytest.raises(ValueError, match="outside solution-start"):
        layout.find_exercises(notebook(answer, prompt, end, check))
    with pytest.raises(ValueError, match="no code cell tagged solution"):
        layout.find_exercises(notebook(prompt, end, check))
    with pytest.raises(ValueError, match="has no :label:"):
        layout.find_exercises(notebook(md("```{exercise} T\n\nDo it.\n```")))
    with pytest.raises(ValueError, match="never imported"):
        layout.find_exercises(notebook(prompt, answer, end, code("check_f(f)")))
    stored = notebook(prompt, answer, end, check)
    layout.annotate(stored)
    del stored.cells[3].metadata["llmcourse"]  # the check cell's layout lost
    with pytest.raises(ValueError, match="no check cell"):
        layout.read_layout(stored)


def test_colon_fences_are_understood_too():
    text = (
        ":::{exercise} T\n:label: ex-ch99-b\n\nx\n:::\n\n:::{solution-start} ex-ch99-b\n"
        ":class: dropdown\n:::\n"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
    assert layout.exercise_labels(nb) == ["ex-ch99-b"]
    assert "solution-start" not in se.strip_solution_markup(text)
    assert se.strip_solution_markup(text).endswith(":::")


def test_the_old_tool_paths_forward_to_the_package(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "student_edition.py"),
            "--out",
            str(tmp_path),
            str(ROOT / "book" / SHORT),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / SHORT).exists()


# ---- the teacher guide ------------------------------------------------------------------------


def test_teacher_guide_is_up_to_date():
    assert guide.GUIDE.read_text() == guide.render(), (
        "book/teacher_guide.md is stale: run make guide (llmcourse-guide)"
    )


def test_teacher_guide_lists_every_chapter_objective_and_exercise():
    text = guide.render()
    for path in CHAPTERS:
        chapter = guide.read_chapter(path)
        assert f"## {chapter.title}" in text and chapter.objectives
        for objective in chapter.objectives:
            assert f"- {objective}" in text
        for exercise in chapter.exercises:
            assert f"{{ref}}`{exercise.label}` (`{exercise.check_function}`)" in text


def test_teacher_guide_says_how_to_grade():
    text = guide.render()
    for needed in (
        "## Handing out",
        "## Collecting",
        "## Grading",
        "make student-site",
        "**The solutions are public.**",
        "--regrade",
        "**error**",
        "**crashed**",
        "**timeout**",
        "class.csv",
        "feedback/",
    ):
        assert needed in text, needed


def test_teacher_guide_times_come_from_timings(tmp_path):
    timings = tmp_path / "timings.json"
    timings.write_text(json.dumps({CHAPTERS[0].name: {"seconds": 12.4, "peak_rss_mb": 321}}))
    text = guide.render(timings_path=timings)
    assert "**Run time:** 12 s, peak memory 321 MB." in text
    assert f"1 of {len(CHAPTERS)} chapters measured, 0.2 minutes in all." in text
    assert "not measured yet (`make execute NB=book/" in text


def test_every_chapter_declares_prerequisites_that_cover_its_imports():
    chapters = [guide.read_chapter(p) for p in CHAPTERS]
    for chapter in chapters:
        assert all(n < chapter.number for n in chapter.prerequisites)
        assert guide.undeclared(chapter, chapters) == [], (
            f"{chapter.path.name} imports course modules from chapters its declared "
            "prerequisites (notebook metadata llmcourse.prerequisites) do not reach"
        )
    assert chapters[0].prerequisites == []


def _chapter_with(tmp_path, cells, prerequisites=(1,)):
    """A copy of chapter 2 with extra cells before its first cell, saved under tmp_path."""
    nb = read(CHAPTERS[1])
    nb.metadata["llmcourse"]["prerequisites"] = list(prerequisites)
    nb.cells[1:1] = cells
    path = tmp_path / CHAPTERS[1].name
    nbformat.write(nb, path)
    return path


QUESTION = (
    "```{admonition} Discussion: Why bytes?\n:class: discussion\n\nWhy start from bytes?\n```"
)
ANSWER = "```{admonition} A model answer\n:class: dropdown\n\nNo text is then unknown.\n```"


def test_discussion_questions_reach_the_guide_with_their_answer_and_not_the_student(tmp_path):
    answer = nbformat.v4.new_markdown_cell(ANSWER, metadata={"tags": [layout.ANSWER_TAG]})
    path = _chapter_with(tmp_path, [nbformat.v4.new_markdown_cell(QUESTION), answer])
    chapter = guide.read_chapter(path)
    assert ("Why bytes?", "Why start from bytes?", "No text is then unknown.") in [
        (d.title, d.question, d.answer) for d in chapter.discussions
    ]
    student = se.student_notebook(read(path))
    sources = "".join(c.source for c in student.cells)
    assert "Why start from bytes?" in sources and "No text is then unknown." not in sources


def test_a_discussion_question_without_a_model_answer_is_refused(tmp_path):
    path = _chapter_with(tmp_path, [nbformat.v4.new_markdown_cell(QUESTION)])
    with pytest.raises(ValueError, match="'Why bytes\\?' has no model answer"):
        guide.read_chapter(path)


@pytest.mark.parametrize("declared", [None, [2], [0], [True], "1"])
def test_prerequisites_must_be_earlier_chapter_numbers(tmp_path, declared):
    path = _chapter_with(tmp_path, [], prerequisites=())
    nb = read(path)
    nb.metadata["llmcourse"]["prerequisites"] = declared
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="llmcourse.prerequisites"):
        guide.read_chapter(path)


def test_every_exercise_has_a_difficulty():
    for path in CHAPTERS:
        chapter = guide.read_chapter(path)
        assert set(chapter.difficulty) == {e.label for e in chapter.exercises}
        assert set(chapter.difficulty.values()) <= {1, 2, 3}


def test_the_semester_keeps_chapter_order_and_fits_its_weeks():
    chapters = [guide.read_chapter(p) for p in CHAPTERS]
    for weeks in (len(chapters), guide.SEMESTER_WEEKS, 3):
        plan = guide.semester(chapters, weeks)
        assert len(plan) == weeks
        assert [c.number for week in plan for c in week] == [c.number for c in chapters]
    assert "### A semester of" in guide.render() and "### A two-day workshop" in guide.render()
