"""Build the student edition of the book: every chapter without its exercise solutions.

Usage: llmcourse-student [--out student] [book/NN_name.ipynb ...]   (or ``make student``)
       (default: every chapter in book/, written to student/NN_name.ipynb)

In a student notebook
- each exercise's solution cells are replaced by one answer cell that sets the answer's
  name(s) to None and raises ``NotYetAnswered`` naming the exercise, so "Run all" stops there
  with a clear message instead of crashing somewhere else;
- the ``{solution-start}`` / ``{solution-end}`` directives are removed from the markdown;
- every output is cleared;
- the model answers of discussion questions (cells tagged ``discussion-answer``) are left out;
- every exercise cell carries the layout metadata (``llmcourse.teaching.layout``), the answer
  cell with role "answer": the grader finds each answer by it;
- everything else (prose, figures' code, the exercise prompts, the check calls) is as in the book.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor

from llmcourse.teaching import ROOT
from llmcourse.teaching.layout import (
    ANSWER_TAG,
    KEY,
    SOLUTION_END_RE,
    SOLUTION_START_RE,
    VERSION,
    Exercise,
    chapters,
    find_exercises,
    layout_metadata,
)

NOT_YET = "Exercise {label}: not yet answered — write your answer here"
STUB = """\
# Exercise {label}: write your answer in this cell, delete the `raise` line,
# then run the check below.
from llmcourse.exercises import NotYetAnswered

{assignments}
raise NotYetAnswered("{message}")"""


def stub_source(exercise: Exercise) -> str:
    """The cell that stands in a student notebook where the solution was."""
    assignments = "".join(f"{name} = None  # your answer\n" for name in exercise.answer_names)
    return STUB.format(
        label=exercise.label, assignments=assignments, message=NOT_YET.format(label=exercise.label)
    )


def strip_solution_markup(text: str) -> str:
    """Markdown without its solution-start and solution-end directives."""
    text = SOLUTION_START_RE.sub("", text)
    text = SOLUTION_END_RE.sub("", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def student_notebook(nb):
    """A new notebook: ``nb`` with answer cells for solutions, no solution markup, no outputs."""
    exercises = find_exercises(nb)
    layout = layout_metadata(exercises)
    first_solution = {ex.solution_cells[0]: ex for ex in exercises}
    other_solutions = {i for ex in exercises for i in ex.solution_cells[1:]}
    metadata = copy.deepcopy(nb.metadata)
    metadata.setdefault(KEY, {})["layout"] = VERSION
    out = nbformat.v4.new_notebook(metadata=metadata)
    for index, cell in enumerate(nb.cells):
        if index in other_solutions:
            continue
        if index in first_solution:
            exercise = first_solution[index]
            stub = nbformat.v4.new_code_cell(
                stub_source(exercise),
                metadata={"tags": ["answer"], KEY: {"exercise": exercise.label, "role": "answer"}},
            )
            if cell.get("id"):  # the solution's id: the same edition from the same book
                stub["id"] = cell["id"]
            out.cells.append(stub)
            continue
        cell = copy.deepcopy(cell)  # same id
        if index in layout:
            cell.metadata[KEY] = layout[index]
        if cell.cell_type == "markdown":
            cell.source = strip_solution_markup(cell.source)
            if not cell.source.strip():
                continue
        out.cells.append(cell)
    # nbconvert's own steps: no outputs (nor their timing metadata), no model answers
    ClearOutputPreprocessor(
        remove_metadata_fields={"collapsed", "scrolled", "execution"}
    ).preprocess(out, {})
    TagRemovePreprocessor(remove_cell_tags={ANSWER_TAG}).preprocess(out, {})
    nbformat.validate(out)
    return out


def build(paths: list[Path], out_dir: Path) -> list[Path]:
    """Write the student edition of each chapter in ``paths`` to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        try:
            student = student_notebook(nb)
        except ValueError as error:
            raise ValueError(f"{path.name}: {error}") from None
        target = out_dir / path.name
        nbformat.write(student, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmcourse-student", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="default: student/")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or chapters()
    for target in build(paths, args.out):
        count = len(find_exercises(nbformat.read(target, as_version=4)))
        print(f"{target}: {count} exercises, solutions removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
