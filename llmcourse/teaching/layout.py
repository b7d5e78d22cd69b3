"""Where each exercise of a chapter is: its prompt, its solution (or answer) and its check.

The layout is stored once in the notebook, as cell metadata, and read back by the student
edition, the grader and the teacher guide::

    cell.metadata["llmcourse"] = {"exercise": "ex-ch05-pe-vector", "role": "prompt",
                                  "title": "The encoding of one position"}
    cell.metadata["llmcourse"] = {"exercise": "ex-ch05-pe-vector", "role": "solution"}
    cell.metadata["llmcourse"] = {"exercise": "ex-ch05-pe-vector", "role": "check",
                                  "check": "check_pe_vector",
                                  "module": "llmcourse.exercises.ch05",
                                  "args": "pe_vector", "answer": ["pe_vector"]}

and ``notebook.metadata["llmcourse"]["layout"] = 1`` says a notebook carries it. In the
student edition the solution cells are replaced by one cell whose role is "answer".

``llmcourse-layout --write [notebooks]`` derives the layout from the chapter's MyST markup
(CONTRIBUTING.md, "Exercises": an ``{exercise}`` directive with a ``:label:``, solution
cells tagged ``solution`` between ``{solution-start}`` and ``{solution-end}``, then a cell
calling ``check_...(answer)``) and writes it; ``--check`` exits 1 if a notebook's stored
layout is missing or disagrees with its markup. A notebook without stored layout is read
by the same derivation, so the tools also work on chapters not yet annotated.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from llmcourse.teaching import BOOK

KEY = "llmcourse"  # the metadata namespace, on cells and on the notebook
# A discussion question's model answer: the markdown cell after the question, tagged so.
# The teacher guide shows it; the student edition leaves it out.
ANSWER_TAG = "discussion-answer"
VERSION = 1

# ```{exercise} Title        or   :::{exercise} Title
#  :label: ex-ch05-pe-vector       :label: ...
EXERCISE_RE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{exercise\}[ \t]*(?P<title>[^\n]*)\n(?P<options>(?::[^\n]*\n)*)",
    re.MULTILINE,
)
LABEL_RE = re.compile(r"^:label:[ \t]*(\S+)", re.MULTILINE)
# A whole solution-start or solution-end directive, options included, up to its closing fence.
SOLUTION_START_RE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{solution-start\}[ \t]*(?P<label>\S+)[^\n]*\n"
    r"(?:[^\n]*\n)*?(?P=fence)[ \t]*$\n?",
    re.MULTILINE,
)
SOLUTION_END_RE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{solution-end\}[^\n]*\n(?:[^\n]*\n)*?(?P=fence)[ \t]*$\n?",
    re.MULTILINE,
)


@dataclass
class Exercise:
    """One exercise of a chapter, as laid out by CONTRIBUTING.md."""

    label: str  # ex-ch05-pe-vector
    title: str  # The encoding of one position
    prompt_cell: int  # index of the markdown cell holding the {exercise} directive
    solution_cells: list[int] = field(default_factory=list)  # solution (or answer) cells
    check_cell: int | None = None  # the code cell calling the check on the answer
    check_function: str = ""  # check_pe_vector
    check_module: str = ""  # llmcourse.exercises.ch05
    check_args: str = ""  # source of the arguments: "pe_vector"
    answer_names: list[str] = field(default_factory=list)  # names the answer must define

    @property
    def check_call(self) -> str:
        return f"{self.check_function}({self.check_args})"


def chapters(book: Path = BOOK) -> list[Path]:
    """Every chapter notebook of the book, in order (NN_name.ipynb)."""
    return sorted(p for p in book.glob("*.ipynb") if re.match(r"\d\d_", p.name))


def cell_layout(cell) -> dict:
    """The layout metadata of one cell ({} if none)."""
    value = cell.get("metadata", {}).get(KEY, {})
    return value if isinstance(value, dict) else {}


def is_annotated(nb) -> bool:
    return nb.get("metadata", {}).get(KEY, {}).get("layout") == VERSION


def find_exercises(nb) -> list[Exercise]:
    """Every exercise of a notebook, in order: from its stored layout if it has one, else
    derived from its markup. Raises ValueError naming a malformed exercise."""
    return read_layout(nb) if is_annotated(nb) else derive_layout(nb)


def read_layout(nb) -> list[Exercise]:
    """The exercises as stored in the cells' metadata."""
    exercises: dict[str, Exercise] = {}
    for index, cell in enumerate(nb.cells):
        meta = cell_layout(cell)
        label, role = meta.get("exercise"), meta.get("role")
        if not label:
            continue
        if role == "prompt":
            if label in exercises:
                raise ValueError(f"cell {index}: exercise label {label} repeats")
            exercises[label] = Exercise(label, meta.get("title", ""), index)
            continue
        if label not in exercises:
            raise ValueError(f"cell {index}: a {role} cell of {label} before its prompt")
        exercise = exercises[label]
        if role in ("solution", "answer"):
            exercise.solution_cells.append(index)
        elif role == "check":
            exercise.check_cell = index
            exercise.check_function = meta.get("check", "")
            exercise.check_module = meta.get("module", "")
            exercise.check_args = meta.get("args", "")
            exercise.answer_names = list(meta.get("answer", []))
    for exercise in exercises.values():
        if not exercise.solution_cells:
            raise ValueError(f"exercise {exercise.label} has no solution or answer cell")
        if exercise.check_cell is None:
            raise ValueError(f"exercise {exercise.label} has no check cell")
    return list(exercises.values())


# ---- deriving the layout from the markup (run once by --write, or on unannotated notebooks)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _parse(source: str):
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _check_calls(source: str) -> list[ast.Call]:
    """Calls of a function named check_* in a code cell, in source order."""
    tree = _parse(source)
    if tree is None:
        return []
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id.startswith("check_")
    ]
    return sorted(calls, key=lambda c: (c.lineno, c.col_offset))


def _imported_from(cells, name: str) -> str:
    """The module a code cell imports ``name`` from (``from M import name``), or ""."""
    for cell in cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        for node in ast.walk(tree) if tree else []:
            if isinstance(node, ast.ImportFrom) and any(a.name == name for a in node.names):
                return node.module or ""
    return ""


def defined_names(source: str) -> set[str]:
    """Names bound at the top level of a cell (def, class, assignment)."""
    tree = _parse(source)
    names: set[str] = set()
    for node in tree.body if tree else []:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def derive_layout(nb) -> list[Exercise]:
    """Every exercise of a notebook, from its MyST markup and solution tags."""
    exercises: list[Exercise] = []
    by_label: dict[str, Exercise] = {}
    open_label: str | None = None  # inside solution-start ... solution-end
    awaiting_check: Exercise | None = None  # solution ended, check call not seen yet
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            events = [(m.start(), "exercise", m) for m in EXERCISE_RE.finditer(cell.source)]
            events += [(m.start(), "start", m) for m in SOLUTION_START_RE.finditer(cell.source)]
            events += [(m.start(), "end", m) for m in SOLUTION_END_RE.finditer(cell.source)]
            for _, kind, match in sorted(events, key=lambda e: e[0]):
                if kind == "exercise":
                    label = LABEL_RE.search(match["options"])
                    if label is None:
                        raise ValueError(
                            f"cell {index}: exercise {match['title']!r} has no :label:"
                        )
                    exercise = Exercise(label[1], match["title"].strip(), index)
                    if exercise.label in by_label:
                        raise ValueError(f"cell {index}: exercise label {exercise.label} repeats")
                    exercises.append(exercise)
                    by_label[exercise.label] = exercise
                elif kind == "start":
                    if match["label"] not in by_label:
                        raise ValueError(
                            f"cell {index}: solution-start {match['label']} names "
                            "no exercise above it"
                        )
                    open_label = match["label"]
                else:
                    if open_label is None:
                        raise ValueError(f"cell {index}: solution-end without solution-start")
                    awaiting_check, open_label = by_label[open_label], None
        elif cell.cell_type == "code":
            if "solution" in _tags(cell):
                if open_label is None:
                    raise ValueError(
                        f"cell {index}: a cell tagged solution outside "
                        "solution-start ... solution-end"
                    )
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
            raise ValueError(
                f"exercise {exercise.label}: no cell calling check_...(answer) "
                "after its solution-end"
            )
        if not exercise.check_module:
            raise ValueError(
                f"exercise {exercise.label}: {exercise.check_function} is never "
                "imported (from llmcourse.exercises.chNN import ...)"
            )
        defined = set().union(*(defined_names(nb.cells[i].source) for i in exercise.solution_cells))
        call = _check_calls(nb.cells[exercise.check_cell].source)[-1]
        used = [n.id for a in call.args for n in ast.walk(a) if isinstance(n, ast.Name)]
        exercise.answer_names = [n for n in dict.fromkeys(used) if n in defined]
    return exercises


def exercise_labels(nb) -> list[str]:
    """The labels of a notebook's exercises: from its layout, else from its markdown."""
    if is_annotated(nb):
        return [
            cell_layout(c)["exercise"] for c in nb.cells if cell_layout(c).get("role") == "prompt"
        ]
    labels = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for match in EXERCISE_RE.finditer(cell.source):
                label = LABEL_RE.search(match["options"])
                labels += [label[1]] if label else []
    return labels


def layout_metadata(exercises: list[Exercise]) -> dict[int, dict]:
    """Cell index -> the metadata that records ``exercises`` (solution role for solutions)."""
    meta: dict[int, dict] = {}
    for e in exercises:
        meta[e.prompt_cell] = {"exercise": e.label, "role": "prompt", "title": e.title}
        for i in e.solution_cells:
            meta[i] = {"exercise": e.label, "role": "solution"}
        meta[e.check_cell] = {
            "exercise": e.label,
            "role": "check",
            "check": e.check_function,
            "module": e.check_module,
            "args": e.check_args,
            "answer": list(e.answer_names),
        }
    return meta


def annotate(nb) -> bool:
    """Write the layout derived from ``nb``'s markup into its metadata, in place. Returns
    whether anything changed."""
    wanted = layout_metadata(derive_layout(nb))
    changed = not is_annotated(nb)
    for index, cell in enumerate(nb.cells):
        have = cell.metadata.get(KEY)
        want = wanted.get(index)
        if want is None and have is not None and "exercise" in have:
            del cell.metadata[KEY]
            changed = True
        elif want is not None and have != want:
            cell.metadata[KEY] = want
            changed = True
    nb.metadata.setdefault(KEY, {})["layout"] = VERSION
    return changed


def stale(nb) -> str:
    """Why ``nb``'s stored layout is missing or wrong, or "" if it is current."""
    if not is_annotated(nb):
        return "no stored layout"
    try:
        stored = read_layout(nb)
    except ValueError as error:
        return str(error)
    if layout_metadata(stored) != layout_metadata(derive_layout(nb)):
        return "the stored layout disagrees with the exercises' markup"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmcourse-layout",
        description="Store (--write) or verify (--check) each chapter's exercise layout as "
        "cell metadata.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the layout into the notebooks")
    mode.add_argument("--check", action="store_true", help="exit 1 if a layout is stale")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    args = parser.parse_args(argv)
    paths = args.notebooks or chapters()
    problems = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            why = stale(nb)
            if why:
                print(f"{path}: {why}; run llmcourse-layout --write {path}")
                problems += 1
        elif annotate(nb):
            nbformat.write(nb, path)
            print(f"{path}: layout of {len(read_layout(nb))} exercises written")
        else:
            print(f"{path}: layout already current")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
