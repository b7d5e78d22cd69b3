"""Build the student edition of the book: every chapter without its exercise solutions.

Usage: python tools/student_edition.py [--out student] [book/NN_name.ipynb ...]
       (default: every chapter in book/, written to student/NN_name.ipynb)

In a student notebook
- each exercise's solution (the code cells tagged ``solution``) is replaced by one stub cell
  that sets the answer's name(s) to None and raises ``NotYetAnswered`` naming the exercise, so
  "Run all" stops there with a clear message instead of crashing somewhere else;
- the ``{solution-start}`` / ``{solution-end}`` directives are removed from the markdown;
- every output is cleared;
- everything else (prose, figures' code, the exercise prompts, the check calls) is as in the book.

This module is also the one place that knows how exercises are laid out in a chapter
(CONTRIBUTING.md, "Exercises"): ``find_exercises`` returns, for one notebook, each exercise's
label, title, solution cells and check call. tools/grade.py and tools/teacher_guide.py use it.
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"

# ```{exercise} Title        or   :::{exercise} Title
#  :label: ex-ch03-pe-vector       :label: ...
EXERCISE_RE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{exercise\}[ \t]*(?P<title>[^\n]*)\n(?P<options>(?::[^\n]*\n)*)",
    re.MULTILINE,
)
LABEL_RE = re.compile(r"^:label:[ \t]*(\S+)", re.MULTILINE)
# A whole solution-start or solution-end directive, options included, up to its closing fence.
SOLUTION_START_RE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{solution-start\}[ \t]*(?P<label>\S+)[^\n]*\n(?:[^\n]*\n)*?(?P=fence)[ \t]*$\n?",
    re.MULTILINE,
)
SOLUTION_END_RE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{solution-end\}[^\n]*\n(?:[^\n]*\n)*?(?P=fence)[ \t]*$\n?",
    re.MULTILINE,
)
NOT_YET = "Exercise {label}: not yet answered — write your answer here"
STUB = '''\
# Exercise {label}: write your answer in this cell, delete the `raise` line,
# then run the check below.
from llmcourse.exercises import NotYetAnswered

{assignments}
raise NotYetAnswered("{message}")'''


@dataclass
class Exercise:
    """One exercise of a chapter, as laid out by CONTRIBUTING.md."""

    label: str  # ex-ch03-pe-vector
    title: str  # The encoding of one position
    prompt_cell: int  # index of the markdown cell holding the {exercise} directive
    solution_cells: list[int] = field(default_factory=list)  # code cells tagged "solution"
    check_cell: int | None = None  # the code cell calling the check on the answer
    check_function: str = ""  # check_pe_vector
    check_module: str = ""  # llmcourse.exercises.ch03
    check_args: str = ""  # source of the arguments: "pe_vector"
    answer_names: list[str] = field(default_factory=list)  # names the answer must define

    @property
    def check_call(self) -> str:
        return f"{self.check_function}({self.check_args})"


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _check_calls(source: str) -> list[ast.Call]:
    """Calls of a function named check_* in a code cell, in source order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id.startswith("check_")]
    return sorted(calls, key=lambda c: (c.lineno, c.col_offset))


def _imported_from(cells, name: str) -> str:
    """The module a code cell imports ``name`` from (``from M import name``), or ""."""
    for cell in cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(a.name == name for a in node.names):
                return node.module or ""
    return ""


def _defined_names(source: str) -> set[str]:
    """Names bound at the top level of a cell (def, class, assignment, import)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def find_exercises(nb) -> list[Exercise]:
    """Every exercise of a notebook, in order. Raises ValueError naming a malformed one."""
    exercises: list[Exercise] = []
    by_label: dict[str, Exercise] = {}
    open_label: str | None = None  # inside solution-start ... solution-end
    awaiting_check: Exercise | None = None  # solution ended, check call not seen yet
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            # Events in the order they appear in the cell's text.
            events = [(m.start(), "exercise", m) for m in EXERCISE_RE.finditer(cell.source)]
            events += [(m.start(), "start", m) for m in SOLUTION_START_RE.finditer(cell.source)]
            events += [(m.start(), "end", m) for m in SOLUTION_END_RE.finditer(cell.source)]
            for _, kind, match in sorted(events, key=lambda e: e[0]):
                if kind == "exercise":
                    label = LABEL_RE.search(match["options"])
                    if label is None:
                        raise ValueError(f"cell {index}: exercise {match['title']!r} has no :label:")
                    exercise = Exercise(label[1], match["title"].strip(), index)
                    if exercise.label in by_label:
                        raise ValueError(f"cell {index}: exercise label {exercise.label} repeats")
                    exercises.append(exercise)
                    by_label[exercise.label] = exercise
                elif kind == "start":
                    if match["label"] not in by_label:
                        raise ValueError(f"cell {index}: solution-start {match['label']} names no "
                                         "exercise above it")
                    open_label = match["label"]
                else:
                    if open_label is None:
                        raise ValueError(f"cell {index}: solution-end without solution-start")
                    awaiting_check, open_label = by_label[open_label], None
        elif cell.cell_type == "code":
            if "solution" in _tags(cell):
                if open_label is None:
                    raise ValueError(f"cell {index}: a cell tagged solution outside "
                                     "solution-start ... solution-end")
                by_label[open_label].solution_cells.append(index)
            elif awaiting_check is not None and _check_calls(cell.source):
                call = _check_calls(cell.source)[-1]
                exercise, awaiting_check = awaiting_check, None
                exercise.check_cell = index
                exercise.check_function = call.func.id
                exercise.check_args = ", ".join(ast.unparse(a) for a in call.args)
                if call.keywords:
                    exercise.check_args += ", " + ", ".join(ast.unparse(k) for k in call.keywords)
                exercise.check_module = _imported_from(nb.cells, call.func.id)
    for exercise in exercises:
        if not exercise.solution_cells:
            raise ValueError(f"exercise {exercise.label} has no code cell tagged solution")
        if exercise.check_cell is None:
            raise ValueError(f"exercise {exercise.label}: no cell calling check_...(answer) "
                             "after its solution-end")
        if not exercise.check_module:
            raise ValueError(f"exercise {exercise.label}: {exercise.check_function} is never "
                             "imported (from llmcourse.exercises.chNN import ...)")
        defined = set().union(*(_defined_names(nb.cells[i].source)
                                for i in exercise.solution_cells))
        call = _check_calls(nb.cells[exercise.check_cell].source)[-1]
        used = [n.id for a in call.args for n in ast.walk(a) if isinstance(n, ast.Name)]
        exercise.answer_names = [n for n in dict.fromkeys(used) if n in defined]
    return exercises


def exercise_labels(nb) -> list[str]:
    """The labels of the exercise directives in a notebook's markdown (book or student)."""
    labels = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for match in EXERCISE_RE.finditer(cell.source):
                label = LABEL_RE.search(match["options"])
                labels += [label[1]] if label else []
    return labels


def stub_source(exercise: Exercise) -> str:
    """The cell that stands in a student notebook where the solution was."""
    names = exercise.answer_names
    assignments = "".join(f"{name} = None  # your answer\n" for name in names)
    return STUB.format(label=exercise.label, assignments=assignments,
                       message=NOT_YET.format(label=exercise.label))


def strip_solution_markup(text: str) -> str:
    """Markdown without its solution-start and solution-end directives."""
    text = SOLUTION_START_RE.sub("", text)
    text = SOLUTION_END_RE.sub("", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def student_notebook(nb):
    """A new notebook: ``nb`` with stubs for solutions, no solution markup, no outputs."""
    exercises = find_exercises(nb)
    first_solution = {ex.solution_cells[0]: ex for ex in exercises}
    other_solutions = {i for ex in exercises for i in ex.solution_cells[1:]}
    out = nbformat.v4.new_notebook(metadata=nb.metadata)
    for index, cell in enumerate(nb.cells):
        if index in other_solutions:
            continue
        if index in first_solution:
            exercise = first_solution[index]
            out.cells.append(nbformat.v4.new_code_cell(
                stub_source(exercise),
                metadata={"tags": ["answer"], "llmcourse": {"exercise": exercise.label}}))
            continue
        cell = copy.deepcopy(cell)  # same id
        if cell.cell_type == "markdown":
            cell.source = strip_solution_markup(cell.source)
            if not cell.source.strip():
                continue
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        out.cells.append(cell)
    nbformat.validate(out)
    return out


def chapters(book: Path = BOOK) -> list[Path]:
    """Every chapter notebook of the book, in order (NN_name.ipynb)."""
    return sorted(p for p in book.glob("*.ipynb") if re.match(r"\d\d_", p.name))


def build(paths: list[Path], out_dir: Path) -> list[Path]:
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="default: student/")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or chapters()
    for target in build(paths, args.out):
        labels = exercise_labels(nbformat.read(target, as_version=4))
        print(f"{target}: {len(labels)} exercises, solutions removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
