"""Grade students' completed chapter notebooks with the book's own exercise checks.

Usage: python tools/grade.py SUBMISSION [SUBMISSION ...] [--csv out.csv] [--timeout 600]
       SUBMISSION: a notebook, or a folder searched recursively for *.ipynb

For each notebook:
1. Which chapter it is comes from the exercise labels in its markdown (``ex-ch03-...``, kept
   in the student edition), or else from its file name (``03_...``).
2. It runs top to bottom in a fresh kernel (nbclient), in its own folder, continuing past
   cells that raise, within ``--timeout`` seconds for the whole notebook.
3. Then, in that same kernel, each of the chapter's exercises is graded by the check call
   the book itself makes after that exercise (``check_pe_vector(pe_vector)``, imported from
   ``llmcourse.exercises.chNN``), whatever the student did to their own check cells.
   Outcomes: pass, fail (the check's hint), not answered (a NotYetAnswered, or the answer's
   name is not defined), error (the check itself could not run).
A notebook that times out is interrupted and then graded on what it had defined; one whose
kernel dies (a crash, memory) scores 0 with the reason. Neither stops the other notebooks.

The table is printed; --csv also writes one row per notebook and exercise. Exit status 0.
Student code runs with your permissions: grade in a container or a throwaway account.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_edition import BOOK, Exercise, chapters, exercise_labels, find_exercises  # noqa: E402

GRACE_S = 60  # time allowed to the checks after the notebook itself has run (or timed out)
GRADING_CELL = '''\
import contextlib as _gr_cl, io as _gr_io, json as _gr_json
_gr = {{"label": {label!r}}}
try:
    from llmcourse.exercises import ExerciseError as _GrWrong, NotYetAnswered as _GrTodo
    from {module} import {function} as _gr_check
    with _gr_cl.redirect_stdout(_gr_io.StringIO()):
        _gr_check({args})
    _gr["status"] = "pass"
except _GrTodo as _gr_e:
    _gr.update(status="not answered", detail=str(_gr_e))
except NameError as _gr_e:
    _gr.update(status="not answered", detail=str(_gr_e))
except _GrWrong as _gr_e:
    _gr.update(status="fail", detail=str(_gr_e))
except BaseException as _gr_e:
    _gr.update(status="error", detail=f"{{type(_gr_e).__name__}}: {{_gr_e}}")
with open({verdicts!r}, "a") as _gr_f:
    _gr_f.write(_gr_json.dumps(_gr) + "\\n")'''


@dataclass
class Result:
    notebook: Path
    chapter: str  # the book's file name, or "" if unknown
    status: str  # ran, timeout, crashed, unknown chapter, unreadable
    detail: str = ""
    seconds: float = 0.0
    exercises: list[dict] = field(default_factory=list)  # label, title, status, detail

    @property
    def passed(self) -> int:
        return sum(e["status"] == "pass" for e in self.exercises)


def book_exercises(book: Path = BOOK) -> dict[str, list[Exercise]]:
    """Chapter file name -> its exercises, read from the book's notebooks."""
    return {p.name: find_exercises(nbformat.read(p, as_version=4)) for p in chapters(book)}


def identify(nb, path: Path, book: dict[str, list[Exercise]]) -> str:
    """The book chapter a submission is, by its exercise labels, else by its file name."""
    labels = set(exercise_labels(nb))
    overlap = {name: len(labels & {e.label for e in exs}) for name, exs in book.items()}
    best = max(overlap, key=overlap.get, default="")
    if best and overlap[best] > 0:
        return best
    prefix = re.match(r"(\d\d)_", path.name)
    matches = [name for name in book if prefix and name.startswith(prefix[1] + "_")]
    return matches[0] if len(matches) == 1 else ""


def grading_cell(exercise: Exercise, verdicts: Path):
    """A cell that runs the book's check on the answer and appends its verdict to a file."""
    source = GRADING_CELL.format(label=exercise.label, module=exercise.check_module,
                                 function=exercise.check_function, args=exercise.check_args,
                                 verdicts=str(verdicts))
    return nbformat.v4.new_code_cell(source)


def _verdict(verdicts: Path, label: str) -> dict | None:
    """The last verdict the grading cells wrote for ``label`` (the kernel writes a file, not
    stdout: after a timeout nbclient may still be reading the interrupted cell's output)."""
    if not verdicts.exists():
        return None
    found = [json.loads(line) for line in verdicts.read_text().splitlines() if line.strip()]
    found = [v for v in found if v.get("label") == label]
    return found[-1] if found else None


def _interrupt(client: NotebookClient) -> None:
    """Stop the running cell. ipykernel drops requests that arrive just after an interrupt,
    so wait until a trivial cell runs again."""
    run_sync(client.km.interrupt_kernel)()
    probe = nbformat.v4.new_code_cell("pass")
    client.nb.cells.append(probe)
    try:
        for _ in range(10):
            time.sleep(1)
            client.timeout = 10
            reply = client.execute_cell(probe, len(client.nb.cells) - 1)
            if reply is not None and probe.get("execution_count"):
                break
    finally:
        client.nb.cells.pop()


def grade_notebook(path: Path, book: dict[str, list[Exercise]], timeout: float) -> Result:
    start = time.monotonic()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook
        return Result(path, "", "unreadable", f"{type(error).__name__}: {error}")
    chapter = identify(nb, path, book)
    if not chapter:
        return Result(path, "", "unknown chapter", "no ex-chNN- labels and no NN_ file name")
    exercises = book[chapter]
    result = Result(path, chapter, "ran")
    result.exercises = [{"label": e.label, "title": e.title, "status": "not graded",
                         "detail": ""} for e in exercises]
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            record_timing=False, interrupt_on_timeout=False,
                            resources={"metadata": {"path": str(path.parent)}})
    deadline = start + timeout
    verdicts = Path(tempfile.mkdtemp(prefix="llmcourse-grade-")) / "verdicts.jsonl"
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                client.timeout = max(1, int(deadline - time.monotonic()))
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    result.status = "timeout"
                    result.detail = f"stopped at cell {index} after {timeout:g} s"
                    _interrupt(client)
                    break
            for row, exercise in zip(result.exercises, exercises):
                cell = grading_cell(exercise, verdicts)
                nb.cells.append(cell)  # nbclient needs the cell in the notebook; never saved
                client.timeout = GRACE_S
                try:
                    client.execute_cell(cell, len(nb.cells) - 1)
                except CellTimeoutError:
                    row.update(status="timeout", detail=f"the check ran over {GRACE_S} s")
                    _interrupt(client)
                    continue
                finally:
                    nb.cells.pop()
                verdict = _verdict(verdicts, exercise.label)
                if verdict is None:
                    row.update(status="error", detail="the check gave no verdict")
                else:
                    row.update(status=verdict["status"], detail=verdict.get("detail", ""))
    except DeadKernelError as error:
        result.status, result.detail = "crashed", f"the kernel died: {error}"
        for row in result.exercises:
            if row["status"] == "not graded":
                row.update(status="crashed", detail="")
    except Exception as error:  # the kernel would not start, or nbclient failed
        result.status, result.detail = "crashed", f"{type(error).__name__}: {error}"
        for row in result.exercises:
            if row["status"] == "not graded":
                row.update(status="crashed", detail="")
    finally:
        shutil.rmtree(verdicts.parent, ignore_errors=True)
    result.seconds = round(time.monotonic() - start, 1)
    return result


def find_notebooks(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb")
                            if ".ipynb_checkpoints" not in p.parts)
        elif path.exists():
            found.append(path)
        else:
            raise SystemExit(f"grade.py: no such file or folder: {path}")
    return found


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(results: list[Result], out=sys.stdout) -> None:
    for r in results:
        graded = f"{r.passed}/{len(r.exercises)}" if r.exercises else "-"
        note = f" ({r.detail})" if r.detail else ""
        print(f"\n{r.notebook}  [{r.chapter or '?'}]  {r.status}{note}, {r.seconds} s: "
              f"{graded} exercises passed", file=out)
        for e in r.exercises:
            detail = f"  {_short(e['detail'])}" if e["status"] != "pass" and e["detail"] else ""
            print(f"  {e['status']:<13} {e['label']:<24}{detail}", file=out)
    total = sum(len(r.exercises) for r in results)
    passed = sum(r.passed for r in results)
    share = f"{100 * passed / total:.0f}%" if total else "-"
    print(f"\nTotal: {passed}/{total} exercises passed ({share}) in {len(results)} notebooks",
          file=out)


def write_csv(results: list[Result], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["notebook", "chapter", "notebook_status", "exercise", "title",
                         "status", "passed", "detail"])
        for r in results:
            if not r.exercises:
                writer.writerow([r.notebook, r.chapter, r.status, "", "", "", 0, r.detail])
            for e in r.exercises:
                writer.writerow([r.notebook, r.chapter, r.status, e["label"], e["title"],
                                 e["status"], int(e["status"] == "pass"), e["detail"]])


def main(argv: list[str]) -> int:
    # After a timeout, nbclient leaves a task reading the interrupted cell's output; asyncio
    # would log its end as "Task exception was never retrieved".
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", type=Path)
    parser.add_argument("--csv", type=Path, help="also write one row per exercise here")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds for each notebook to run (default 600)")
    args = parser.parse_args(argv)
    book = book_exercises()
    results = []
    for path in find_notebooks(args.submissions):
        print(f"grading {path} ...", file=sys.stderr, flush=True)
        results.append(grade_notebook(path, book, args.timeout))
    print_table(results)
    if args.csv:
        write_csv(results, args.csv)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
