"""The student edition (tools/student_edition.py) and the teacher guide (tools/teacher_guide.py).

Every chapter in book/ is checked, so a new chapter joins these tests by existing: its
exercises must follow CONTRIBUTING.md's layout, its student notebook must hold no solution,
and every unanswered exercise must stop with a clear "not yet answered" error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import student_edition as se  # noqa: E402
import teacher_guide  # noqa: E402

from llmcourse.exercises import NotYetAnswered  # noqa: E402

CHAPTERS = se.chapters()
SHORT = "05_multi_head_attention.ipynb"  # executed end to end: short, three exercises


@pytest.fixture(scope="module")
def editions(tmp_path_factory):
    """chapter name -> (book notebook, student notebook), built by the command line tool."""
    out = tmp_path_factory.mktemp("student")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "student_edition.py"),
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("solutions removed") == len(CHAPTERS)
    return {p.name: (nbformat.read(p, as_version=4), nbformat.read(out / p.name, as_version=4))
            for p in CHAPTERS}


def test_there_are_chapters():
    assert len(CHAPTERS) >= 6
    assert [p.name[:2] for p in CHAPTERS] == sorted(p.name[:2] for p in CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_follow_the_convention(path):
    exercises = se.find_exercises(nbformat.read(path, as_version=4))
    assert len(exercises) >= 3, f"{path.name}: {len(exercises)} exercises"
    number = path.name[:2]
    for exercise in exercises:
        assert exercise.label.startswith(f"ex-ch{number}-"), exercise.label
        assert exercise.check_module == f"llmcourse.exercises.ch{number}", exercise
        assert exercise.answer_names, f"{exercise.label}: the check uses no name the solution defines"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook_has_no_solutions_and_no_outputs(editions, path):
    book, student = editions[path.name]
    text = nbformat.writes(student)
    assert "solution-start" not in text and "solution-end" not in text
    for cell in student.cells:
        assert "solution" not in cell.metadata.get("tags", [])
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    exercises = se.find_exercises(book)
    for exercise in exercises:
        for index in exercise.solution_cells:
            solution = book.cells[index].source.strip()
            assert not any(c.source.strip() == solution for c in student.cells), exercise.label
    # Prompts and check calls are kept; so is every other cell, in order.
    assert se.exercise_labels(student) == [e.label for e in exercises]
    kept = [c.source for c in student.cells if c.cell_type == "code"
            and "answer" not in c.metadata.get("tags", [])]
    expected = [c.source for c in book.cells
                if c.cell_type == "code" and "solution" not in c.metadata.get("tags", [])]
    assert kept == expected
    stubs = [c for c in student.cells if "answer" in c.metadata.get("tags", [])]
    assert [c.metadata["llmcourse"]["exercise"] for c in stubs] == [e.label for e in exercises]
    assert student.cells[0].metadata["tags"][0] == "colab-setup"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_each_stub_and_its_check_say_not_yet_answered(editions, path):
    """Run each stub, then the book's check call after it: both stop as 'not yet answered'."""
    book, student = editions[path.name]
    stubs = {c.metadata["llmcourse"]["exercise"]: c for c in student.cells
             if "answer" in c.metadata.get("tags", [])}
    namespace: dict = {}  # shared, in order: a check cell may import the next one's check
    for exercise in se.find_exercises(book):
        message = f"Exercise {exercise.label}: not yet answered — write your answer here"
        with pytest.raises(NotYetAnswered, match=message):
            exec(stubs[exercise.label].source, namespace)
        check = book.cells[exercise.check_cell].source
        with pytest.raises(NotYetAnswered, match="not yet answered"):
            exec(check, namespace)


def test_a_student_notebook_runs_up_to_each_exercise(editions):
    """Run a whole student chapter: the only errors are the exercises' NotYetAnswered."""
    _, student = editions[SHORT]
    client = NotebookClient(student, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(ROOT / "book")}})
    client.execute()
    errors = [(i, o) for i, c in enumerate(student.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    first_stub = min(i for i, c in enumerate(student.cells)
                     if "answer" in c.metadata.get("tags", []))
    assert errors, "the unanswered exercises raised nothing"
    assert all(o.ename == "NotYetAnswered" for _, o in errors), [
        (i, o.ename, o.evalue) for i, o in errors]
    assert min(i for i, _ in errors) == first_stub
    assert errors[0][1].evalue.startswith("Exercise ex-ch05-")


def test_building_the_student_edition_leaves_the_book_alone():
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        se.student_notebook(nb)
        assert nbformat.writes(nb) == before, path.name
        assert nbformat.writes(nb) == nbformat.writes(nbformat.read(path, as_version=4))


def test_malformed_exercises_are_named():
    def notebook(*cells):
        return nbformat.v4.new_notebook(cells=list(cells))

    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    prompt = md("```{exercise} T\n:label: ex-ch99-a\n\nDo it.\n```\n\n"
                "```{solution-start} ex-ch99-a\n:class: dropdown\n```")
    answer = code("def f():\n    return 1", metadata={"tags": ["solution"]})
    end = md("```{solution-end}\n```")
    check = code("from llmcourse.exercises.ch99 import check_f\n\ncheck_f(f)")
    exercises = se.find_exercises(notebook(prompt, answer, end, check))
    assert [(e.label, e.title, e.check_call, e.answer_names) for e in exercises] == [
        ("ex-ch99-a", "T", "check_f(f)", ["f"])]
    with pytest.raises(ValueError, match="no cell calling check_"):
        se.find_exercises(notebook(prompt, answer, end))
    with pytest.raises(ValueError, match="outside solution-start"):
        se.find_exercises(notebook(answer, prompt, end, check))
    with pytest.raises(ValueError, match="no code cell tagged solution"):
        se.find_exercises(notebook(prompt, end, check))
    with pytest.raises(ValueError, match="has no :label:"):
        se.find_exercises(notebook(md("```{exercise} T\n\nDo it.\n```")))
    with pytest.raises(ValueError, match="never imported"):
        se.find_exercises(notebook(prompt, answer, end, code("check_f(f)")))


def test_colon_fences_are_understood_too():
    text = ":::{exercise} T\n:label: ex-ch99-b\n\nx\n:::\n\n:::{solution-start} ex-ch99-b\n" \
           ":class: dropdown\n:::\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
    assert se.exercise_labels(nb) == ["ex-ch99-b"]
    assert "solution-start" not in se.strip_solution_markup(text)
    assert se.strip_solution_markup(text).endswith(":::")


# ---- the teacher guide ------------------------------------------------------------------------


def test_teacher_guide_is_up_to_date():
    assert teacher_guide.GUIDE.read_text() == teacher_guide.render(), (
        "book/teacher_guide.md is stale: run make guide (python tools/teacher_guide.py)")


def test_teacher_guide_lists_every_chapter_objective_and_exercise():
    text = teacher_guide.render()
    for path in CHAPTERS:
        chapter = teacher_guide.read_chapter(path)
        assert f"## {chapter.title}" in text and chapter.objectives
        for objective in chapter.objectives:
            assert f"- {objective}" in text
        for exercise in chapter.exercises:
            assert f"{{ref}}`{exercise.label}` (`{exercise.check_function}`)" in text


def test_teacher_guide_times_come_from_timings(tmp_path):
    timings = tmp_path / "timings.json"
    timings.write_text('{"%s": {"seconds": 12.4, "peak_rss_mb": 321}}' % CHAPTERS[0].name)
    text = teacher_guide.render(timings_path=timings)
    assert "**Run time:** 12 s, peak memory 321 MB." in text
    assert f"1 of {len(CHAPTERS)} chapters measured, 0.2 minutes in all." in text
    assert "not measured yet (`make execute NB=book/" in text


def test_teacher_guide_builds_on_earlier_chapters():
    chapters = [teacher_guide.read_chapter(p) for p in CHAPTERS]
    for chapter in chapters:
        assert all(n < chapter.number for n in teacher_guide.builds_on(chapter, chapters))
    assert teacher_guide.builds_on(chapters[0], chapters) == []
