"""Grading (tools/grade.py), and the exercise checks' own tests against wrong answers.

Grading runs notebooks in real kernels: the book's chapter 5 must score 100%, its untouched
student edition 0%, and a hand-made folder of submissions must give pass, fail (with the
check's hint), not answered, timeout, crash and unreadable without one stopping another.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import grade  # noqa: E402
import student_edition  # noqa: E402

CHAPTER = "05_multi_head_attention.ipynb"  # short, with three exercises


@pytest.fixture(scope="module")
def book():
    return grade.book_exercises()


def by_label(result) -> dict[str, dict]:
    return {e["label"]: e for e in result.exercises}


def test_every_book_check_exists(book):
    import importlib

    for name, exercises in book.items():
        for exercise in exercises:
            module = importlib.import_module(exercise.check_module)
            assert callable(getattr(module, exercise.check_function, None)), (
                f"{name}: {exercise.label} calls {exercise.check_call}, which "
                f"{exercise.check_module} does not define")


def test_the_book_scores_full_marks(book):
    result = grade.grade_notebook(ROOT / "book" / CHAPTER, book, timeout=600)
    assert (result.chapter, result.status) == (CHAPTER, "ran"), result.detail
    assert [e["status"] for e in result.exercises] == ["pass"] * len(book[CHAPTER])
    assert result.passed == len(book[CHAPTER]) >= 3


def test_the_student_edition_scores_zero(book, tmp_path):
    student_edition.build([ROOT / "book" / CHAPTER], tmp_path)
    renamed = tmp_path / "alice_chapter5.ipynb"  # found by its labels, not its name
    (tmp_path / CHAPTER).rename(renamed)
    result = grade.grade_notebook(renamed, book, timeout=600)
    assert (result.chapter, result.status) == (CHAPTER, "ran"), result.detail
    assert result.passed == 0
    for row in result.exercises:
        assert row["status"] == "not answered", row
        assert "not yet answered" in row["detail"]


def tiny_submission(path: Path, label: str, *code: str) -> Path:
    """A notebook with one exercise prompt (so it is recognised) and some code cells."""
    cells = [nbformat.v4.new_markdown_cell(f"```{{exercise}} Anything\n:label: {label}\n\nx\n```")]
    cells += [nbformat.v4.new_code_cell(source) for source in code]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


@pytest.fixture(scope="module")
def graded_folder(book, tmp_path_factory):
    """A folder of awkward submissions, graded once by the command line tool."""
    folder = tmp_path_factory.mktemp("submissions")
    solution = nbformat.read(ROOT / "book" / CHAPTER, as_version=4)
    split = book[CHAPTER][0]
    right = solution.cells[split.solution_cells[0]].source
    tiny_submission(folder / "mixed.ipynb", split.label,
                    right,
                    "def mha_parameter_count(d_model, num_heads, bias=True):\n"
                    "    return 4 * d_model * d_model  # forgot the biases\n",
                    "raise ValueError('a broken cell does not stop the others')")
    tiny_submission(folder / "slow.ipynb", split.label, "import time\ntime.sleep(120)",
                    right)
    tiny_submission(folder / "crash.ipynb", split.label, "import os\nos._exit(1)")
    (folder / "garbage.ipynb").write_text("this is not a notebook")
    tiny_submission(folder / "99_unknown.ipynb", "ex-ch99-nothing", "x = 1")
    out = folder / "grades.csv"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), str(folder),
                           "--csv", str(out), "--timeout", "20"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    return done.stdout, {(Path(r["notebook"]).name, r["exercise"]): r for r in rows}


def test_grading_reports_each_exercise(graded_folder):
    _, rows = graded_folder
    assert rows[("mixed.ipynb", "ex-ch05-split")]["status"] == "pass"
    wrong = rows[("mixed.ipynb", "ex-ch05-params")]
    assert wrong["status"] == "fail" and "bias" in wrong["detail"], wrong
    assert rows[("mixed.ipynb", "ex-ch05-flops")]["status"] == "not answered"
    assert rows[("mixed.ipynb", "ex-ch05-split")]["notebook_status"] == "ran"


def test_timeout_and_crash_do_not_stop_the_others(graded_folder):
    stdout, rows = graded_folder
    slow = rows[("slow.ipynb", "ex-ch05-split")]
    assert slow["notebook_status"] == "timeout"
    assert slow["status"] == "not answered"  # interrupted before the answer's cell
    assert {rows[("crash.ipynb", label)]["status"] for label in
            ("ex-ch05-split", "ex-ch05-params", "ex-ch05-flops")} == {"crashed"}
    assert rows[("crash.ipynb", "ex-ch05-split")]["notebook_status"] == "crashed"
    assert rows[("garbage.ipynb", "")]["notebook_status"] == "unreadable"
    assert rows[("99_unknown.ipynb", "")]["notebook_status"] == "unknown chapter"
    assert "Total: 1/9 exercises passed (11%) in 5 notebooks" in stdout


def test_identify_by_file_name_when_there_are_no_labels(book, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    assert grade.identify(nb, tmp_path / CHAPTER, book) == CHAPTER
    assert grade.identify(nb, tmp_path / "notes.ipynb", book) == ""


def test_grade_needs_an_existing_path(tmp_path):
    with pytest.raises(SystemExit, match="no such file or folder"):
        grade.find_notebooks([tmp_path / "missing"])


# ---- the checks themselves are tested against wrong answers ------------------------------------

RECORDER = r'''
import importlib, json, pkgutil, sys
import pytest
import llmcourse.exercises as ex

seen = {}  # "chNN.check_x" -> {"rejected": n, "not_answered": n}
current = {}


def record(module, outcome):
    frame = sys._getframe(2)
    while frame and not frame.f_code.co_name.startswith("check_"):
        frame = frame.f_back
    if frame is not None:
        counts = seen.setdefault(f"{module}.{frame.f_code.co_name}", {})
        counts[outcome] = counts.get(outcome, 0) + 1


def wrap(module, original):
    def run_checks(exercise, answer, checks):
        try:
            return original(exercise, answer, checks)
        except ex.NotYetAnswered:
            record(module, "not_answered")
            raise
        except ex.ExerciseError:
            record(module, "rejected")
            raise
    return run_checks


for info in pkgutil.iter_modules(ex.__path__):
    if info.name.startswith("ch"):
        module = importlib.import_module(f"llmcourse.exercises.{info.name}")
        if hasattr(module, "run_checks"):
            module.run_checks = wrap(info.name, module.run_checks)
code = pytest.main(sys.argv[2:] + ["-q", "-p", "no:cacheprovider", "-x", "--no-header"])
json.dump({"exit": int(code), "seen": seen}, open(sys.argv[1], "w"))
'''


def every_check() -> dict[str, list[str]]:
    """Module name (ch05) -> the check_* functions it defines."""
    import importlib
    import inspect
    import pkgutil

    import llmcourse.exercises as ex

    found = {}
    for info in sorted(pkgutil.iter_modules(ex.__path__), key=lambda i: i.name):
        if info.name.startswith("ch"):
            module = importlib.import_module(f"llmcourse.exercises.{info.name}")
            found[info.name] = [name for name, f in inspect.getmembers(module, inspect.isfunction)
                                if name.startswith("check_") and f.__module__ == module.__name__]
    return found


def test_every_check_is_tested_against_two_wrong_answers_and_none(tmp_path):
    """Run the tests/test_exercises_chNN.py files, counting what each check rejected."""
    checks = every_check()
    missing_files = [f"tests/test_exercises_{m}.py" for m in checks
                     if not (ROOT / "tests" / f"test_exercises_{m}.py").exists()]
    assert not missing_files, f"checks without tests: {missing_files}"
    script, out = tmp_path / "recorder.py", tmp_path / "seen.json"
    script.write_text(RECORDER)
    files = [str(ROOT / "tests" / f"test_exercises_{m}.py") for m in checks]
    done = subprocess.run([sys.executable, str(script), str(out), *files], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    report = json.loads(out.read_text())
    assert report["exit"] == 0, done.stdout[-3000:]
    seen = report["seen"]
    gaps = []
    for module, names in checks.items():
        for name in names:
            counts = seen.get(f"{module}.{name}", {})
            if counts.get("rejected", 0) < 2:
                gaps.append(f"{module}.{name}: {counts.get('rejected', 0)} wrong answers rejected")
            if counts.get("not_answered", 0) < 1:
                gaps.append(f"{module}.{name}: never shown an unanswered exercise (None)")
    assert not gaps, "checks whose tests need more wrong answers:\n" + "\n".join(gaps)
