"""Grade a class's chapter notebooks: each in a sandbox, every verdict made outside it.

Usage:
  llmcourse-grade SUBMISSIONS... [--out grades] [--jobs N] [--timeout 600] [--shard I/N]
                  [--seed-file FILE] [--regrade STUDENT ...] [--unsafe]
  llmcourse-grade merge RESULT_FOLDER... --out FOLDER     (combine shards; idempotent)

SUBMISSIONS are notebooks or folders searched for *.ipynb. The student is the first folder
under the folder given (``submissions/alice/03_self_attention.ipynb`` is alice's), or the file
name for a notebook directly in it. For each notebook:

1. Its chapter comes from its exercise labels (kept in the student edition), else from its
   file name (``04_...``). Its answer cells come from the layout metadata of the student
   edition (``llmcourse.teaching.layout``), else from where the chapter's check calls are.
2. Before anything runs, the answer cells are read (``honesty``): a syntax error, the course
   package's function, the chapter's own function under another name, or a call the prompt
   rules out is reported as such, with no credit. Other cells the student wrote are read
   for tools that tamper with the grader's process; such a notebook gets no credit at all.
3. The notebook runs, top to bottom, in its own sandbox (``sandbox``). Right after each
   answer cell the answer is called on hidden test cases drawn from the grader's secret seed
   (``specs``); what it returns comes back as plain data (``codec``).
4. Here, outside the sandbox, each result is compared with the reference: pass or fail (with
   what is wrong, and the self-study check's hint). Late cells cannot change an earlier
   answer's verdict, and a timeout or crash later in the notebook keeps the verdicts before.

Each submission's result is written to OUT/results/ as soon as it is graded; a second run
skips notebooks already graded (unchanged, same seed), so an interrupted run resumes;
``--regrade alice`` grades alice's notebooks again. Then OUT/class.csv (one row per student,
a total), OUT/exercises.csv (one row per student and exercise) and OUT/feedback/STUDENT.md.
The exit status is 0 once everything is graded, whatever the grades.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

from llmcourse.teaching import BOOK, honesty, sandbox
from llmcourse.teaching.codec import decode, encode_input
from llmcourse.teaching.layout import (
    Exercise,
    cell_layout,
    chapters,
    defined_names,
    exercise_labels,
    find_exercises,
)
from llmcourse.teaching.specs import SPECS, Raises, expected

VERSION = 1  # bump when a change makes old results stale
CASE_TIMEOUT_S = 20  # one hidden case
CHECK_TIMEOUT_S = 30  # the self-study check, run for its hint
NO_CREDIT = {"syntax error", "not own work", "tampering"}
STATUS_HELP = {
    "pass": "the answer gave the right result on every hidden test case",
    "fail": "the answer ran but gave a wrong result on a hidden test case (the feedback "
    "says which and why)",
    "not answered": "the answer cell still holds the stub, or the answer's name is not "
    "defined after it",
    "error": "the answer raised an exception on a hidden test case (or, rarely, the grader "
    "could not grade the exercise: the reason says which)",
    "syntax error": "the answer cell is not valid Python",
    "not own work": "the answer is the course package's function, the chapter's own "
    "function under another name, or calls what the prompt rules out",
    "tampering": "a cell uses tools that could tamper with grading (exec, tracing, patching "
    "modules, ...): the whole notebook gets no credit; read it",
    "timeout": "the notebook ran out of time before this exercise was reached (or one hidden "
    "case ran over its limit)",
    "crashed": "the notebook's process died (os._exit, out of memory, a segfault) before "
    "this exercise was reached",
    "output limit": "the notebook printed more than the output limit before this exercise "
    "was reached",
}


# ---- the book and the submissions -------------------------------------------------------


@dataclass
class Chapter:
    name: str  # 03_self_attention.ipynb
    exercises: list[Exercise]
    code: set[str]  # the sources of its code cells that are not solutions
    by_id: dict[str, str]  # cell id -> source, for the book's own code cells
    problem: str = ""  # why its exercises could not be read (then it has none)


def read_book(book: Path = BOOK) -> dict[str, Chapter]:
    """Chapter file name -> what grading needs of it. A chapter whose exercise layout is
    broken is kept, with the problem: its submissions are reported, the others graded."""
    out = {}
    for path in chapters(book):
        nb = nbformat.read(path, as_version=4)
        try:
            exercises = find_exercises(nb)
        except ValueError as error:
            print(
                f"llmcourse-grade: {path.name}: {error}: its submissions cannot be graded",
                file=sys.stderr,
            )
            out[path.name] = Chapter(path.name, [], set(), {}, str(error))
            continue
        solutions = {i for e in exercises for i in e.solution_cells}
        code = {
            i: c for i, c in enumerate(nb.cells) if c.cell_type == "code" and i not in solutions
        }
        out[path.name] = Chapter(
            path.name,
            exercises,
            {c.source for c in code.values()},
            {c.get("id", ""): c.source for c in code.values()},
        )
    return out


def identify(nb, path: Path, book: dict[str, Chapter]) -> str:
    """The book chapter a submission is, by its exercise labels, else by its file name."""
    try:
        labels = set(exercise_labels(nb))
    except (KeyError, TypeError):
        labels = set()
    overlap = {name: len(labels & {e.label for e in ch.exercises}) for name, ch in book.items()}
    best = max(overlap, key=overlap.get, default="")
    if best and overlap[best] > 0:
        return best
    prefix = re.match(r"(\d\d)_", path.name)
    matches = [name for name in book if prefix and name.startswith(prefix[1] + "_")]
    return matches[0] if len(matches) == 1 else ""


def answer_cells(nb, exercises: list[Exercise]) -> dict[str, int]:
    """Exercise label -> the index of its answer cell (the last, if several) in ``nb``."""
    found: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        meta = cell_layout(cell)
        older = "answer" in cell.get("metadata", {}).get("tags", [])  # editions before roles
        if cell.cell_type == "code" and (meta.get("role") in ("answer", "solution") or older):
            found[meta.get("exercise", "")] = index
    for exercise in exercises:
        if exercise.label in found:
            continue
        # No layout (a notebook rebuilt by hand): the cell binding the answer's name last,
        # before the check call of this exercise.
        call = f"{exercise.check_function}("
        checks = [
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code"
            and call in c.source
            and not set(exercise.answer_names) & defined_names(c.source)
        ]
        limit = checks[0] if checks else len(nb.cells)
        binding = [
            i
            for i, c in enumerate(nb.cells[:limit])
            if c.cell_type == "code" and set(exercise.answer_names) & defined_names(c.source)
        ]
        if binding:
            found[exercise.label] = binding[-1]
    return found


def student_of(path: Path, root: Path) -> str:
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return path.stem
    return relative.parts[0] if len(relative.parts) > 1 else path.stem


def find_submissions(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(notebook, the folder it was found under) for every submission, sorted."""
    found = []
    for path in paths:
        if path.is_dir():
            found += [
                (p, path)
                for p in sorted(path.rglob("*.ipynb"))
                if ".ipynb_checkpoints" not in p.parts
            ]
        elif path.exists():
            found.append((path, path.parent))
        else:
            raise SystemExit(f"llmcourse-grade: no such file or folder: {path}")
    return found


def key_of(student: str, path: Path) -> str:
    """The file name of a submission's result: readable and unique."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{student}__{path.stem}")[:80]
    return f"{safe}__{digest}"


# ---- grading one submission ---------------------------------------------------------------


@dataclass
class Settings:
    seed: str
    timeout: float = 600
    memory_gb: float = 6
    max_output_mb: float = 20
    threads: int = 1
    bwrap: str | None = None  # None with unsafe
    unsafe: bool = False

    @property
    def seed_id(self) -> str:
        return hashlib.sha256(self.seed.encode()).hexdigest()[:12]


def _rng(seed: str, student: str, label: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{student}/{label}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _row(exercise: Exercise, status: str, detail: str = "", hint: str = "") -> dict:
    return {
        "label": exercise.label,
        "title": exercise.title,
        "status": status,
        "detail": detail,
        "hint": hint,
    }


def grade_submission(path: Path, root: Path, book: dict[str, Chapter], settings: Settings) -> dict:
    """Grade one notebook; returns its result (what goes into OUT/results/KEY.json)."""
    start = time.monotonic()
    student = student_of(path, root)
    raw = path.read_bytes()
    result = {
        "version": VERSION,
        "student": student,
        "submission": str(path),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "seed_id": settings.seed_id,
        "chapter": "",
        "status": "",
        "detail": "",
        "seconds": 0.0,
        "exercises": [],
    }

    def done(status: str, detail: str = "") -> dict:
        result.update(status=status, detail=detail, seconds=round(time.monotonic() - start, 1))
        return result

    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as error:  # not JSON, not a notebook
        return done("unreadable", f"{type(error).__name__}: {str(error)[:200]}")
    chapter_name = identify(nb, path, book)
    if not chapter_name:
        return done("unknown chapter", "no ex-chNN- labels and no NN_ file name")
    chapter = book[chapter_name]
    result["chapter"] = chapter_name
    if chapter.problem:
        return done(
            "error",
            f"the book's {chapter_name} is malformed ({chapter.problem}): "
            "tell the course's authors",
        )
    rows = {e.label: _row(e, "") for e in chapter.exercises}
    result["exercises"] = list(rows.values())
    answers = answer_cells(nb, chapter.exercises)

    # Static reading, before anything runs.
    answer_index = set(answers.values())
    modules = honesty.imported_names([c.source for c in nb.cells if c.cell_type == "code"])
    tampering = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or index in answer_index or cell.source in chapter.code:
            continue
        found = honesty.scan_cell(cell.source, modules, f"cell {index}")
        original = chapter.by_id.get(cell.get("id", ""), None)
        if original is not None:  # a book cell, changed: only what the change brought in
            known = {f.message.split(": ", 1)[-1] for f in honesty.scan_cell(original, modules, "")}
            found = [f for f in found if f.message.split(": ", 1)[-1] not in known]
        tampering += found
    probes: dict[int, list[dict]] = {}
    cases = {}
    for exercise in chapter.exercises:
        row = rows[exercise.label]
        spec = SPECS.get(exercise.label)
        if exercise.label not in answers:
            row.update(status="not answered", detail="no answer cell found")
            continue
        index = answers[exercise.label]
        if spec is None:
            row.update(
                status="error",
                detail=f"the grader has no test cases for "
                f"{exercise.label}: tell the course's authors",
            )
            continue
        source = nb.cells[index].source
        findings = honesty.scan_answer(
            source,
            exercise.answer_names,
            spec.forbid,
            spec.chapter,
            spec.no_index,
            f"the answer cell ({index})",
        )
        if findings:
            kinds = {f.kind for f in findings}
            status = (
                "syntax error"
                if "syntax error" in kinds
                else ("tampering" if kinds == {"tampering"} else "not own work")
            )
            row.update(status=status, detail="; ".join(f.message for f in findings[:3]))
            continue
        drawn = spec.cases(_rng(settings.seed, student, exercise.label))
        cases[exercise.label] = drawn
        probes.setdefault(index, []).append(
            {
                "label": exercise.label,
                "name": exercise.answer_names[0],
                "driver": spec.driver,
                "free": honesty.free_names(source),
                "cases": [
                    {"args": encode_input(c.args), "kwargs": encode_input(c.kwargs)} for c in drawn
                ],
                "check": exercise.check_function,
                "module": exercise.check_module,
            }
        )
    if tampering:
        detail = "; ".join(f.message for f in tampering[:3])
        for row in rows.values():
            if row["status"] not in ("syntax error",):
                row.update(status="tampering", detail=detail)
        return done("tampering", detail)
    if not probes:
        for row in rows.values():
            row["status"] = row["status"] or "not answered"
        return done("not run", "no answer to run")

    outcome = run_in_sandbox(nb, probes, settings)
    for label, message in outcome["probes"].items():
        spec = SPECS[label]
        rows[label].update(judge(spec, cases[label], message))
    status = outcome["status"]
    for row in rows.values():
        if not row["status"]:
            row.update(
                status=status if status != "ran" else "error",
                detail=outcome["detail"] or "the answer cell was never run",
            )
    return done(status, outcome["detail"])


def judge(spec, cases, outcome: dict) -> dict:
    """The verdict on one answer, from what came back from the sandbox (plain data)."""
    if not outcome.get("answered"):
        return {"status": "not answered", "detail": outcome.get("why", "")}
    for key in ("package", "alias", "not_function", "package_use"):
        if key in outcome:
            status = "fail" if key == "not_function" else "not own work"
            return {"status": status, "detail": outcome[key]}
    for free, (module, name) in outcome.get("free", {}).items():
        if name and name in spec.forbid | spec.chapter:
            return {
                "status": "not own work",
                "detail": f"the answer calls {free}, which is {module}.{name}: this "
                "exercise rules that out",
            }
    hint = outcome.get("hint", "")
    for case, got in zip(cases, outcome.get("results", [])):
        where = f"on a hidden test case ({case.describe()})"
        if "not_answered" in got:
            return {"status": "not answered", "detail": got["not_answered"]}
        want = expected(spec, case)
        if isinstance(want, Raises):
            problem = want.check(got.get("raised"))
            if problem:
                return {"status": "fail", "detail": f"{where}: {problem}", "hint": hint}
            continue
        if "timeout" in got:
            return {
                "status": "timeout",
                "detail": f"{where}, the answer ran over {got['timeout']:g} s",
            }
        if "raised" in got:
            return {
                "status": "error",
                "detail": f"{where}, the answer raised {got['raised']}",
                "hint": hint,
            }
        problem = spec.compare(decode(got["value"]), want)
        if problem:
            return {"status": "fail", "detail": f"{where}: {problem}", "hint": hint}
    if len(outcome.get("results", [])) != len(cases):
        return {"status": "error", "detail": "not every hidden case came back"}
    return {"status": "pass", "detail": "", "hint": ""}


def run_in_sandbox(nb, probes: dict[int, list[dict]], settings: Settings) -> dict:
    """Run the notebook's code cells and its probes in a fresh sandbox; collect the events."""
    nonce = secrets.token_hex(16)
    plan = {
        "nonce": nonce,
        "case_timeout": CASE_TIMEOUT_S,
        "check_timeout": CHECK_TIMEOUT_S,
        "cells": [[i, c.source] for i, c in enumerate(nb.cells) if c.cell_type == "code"],
        "probes": {str(k): v for k, v in probes.items()},
    }
    workdir = Path(tempfile.mkdtemp(prefix="llmcourse-submission-"))
    events: list[dict] = []
    output = {"bytes": 0, "tail": b""}
    limit = int(settings.max_output_mb * 2**20)
    read_end, write_end = os.pipe()
    try:
        cmd, cwd = sandbox.command(workdir, sys.executable, settings.bwrap)
        env = sandbox.environment(settings.threads, workdir, settings.bwrap is not None)
        env["LLMCOURSE_RESULT_FD"] = str(write_end)
        if settings.bwrap is None:
            env["PYTHONPATH"] = str(workdir / "course")
        process = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(write_end,),
            preexec_fn=sandbox.limits(int(settings.memory_gb * 2**30)),
        )
        os.close(write_end)
        write_end = -1

        def read_events() -> None:
            buffer = b""
            with os.fdopen(read_end, "rb", buffering=0) as pipe:
                while chunk := pipe.read(65536):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        head, _, body = line.partition(b" ")
                        if head.decode(errors="replace") == nonce:
                            try:
                                events.append(json.loads(body))
                            except ValueError:
                                pass

        def read_output() -> None:
            while chunk := process.stdout.read(65536):
                output["bytes"] += len(chunk)
                output["tail"] = (output["tail"] + chunk)[-4000:]
                if output["bytes"] > limit:
                    _kill(process)
                    return

        readers = [
            threading.Thread(target=read_events, daemon=True),
            threading.Thread(target=read_output, daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            process.stdin.write(json.dumps(plan).encode())
            process.stdin.close()
        except BrokenPipeError:
            pass
        timed_out = False
        try:
            process.wait(timeout=settings.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill(process)
        for reader in readers:
            reader.join(timeout=10)
    finally:
        if write_end >= 0:
            os.close(write_end)
        shutil.rmtree(workdir, ignore_errors=True)
    probes_out = {e["probe"]: e["outcome"] for e in events if "probe" in e}
    cells = [e["cell"] for e in events if "cell" in e]
    where = f"after cell {cells[-1]}" if cells else "before the first cell finished"
    if any(e.get("done") for e in events):
        status, detail = "ran", ""
    elif output["bytes"] > limit:
        status, detail = (
            "output limit",
            f"stopped {where}: more than {settings.max_output_mb:g} MB of output",
        )
    elif timed_out:
        status, detail = "timeout", f"stopped {where}: over {settings.timeout:g} s"
    else:
        tail = output["tail"].decode(errors="replace").strip().splitlines()[-1:] or [""]
        status, detail = (
            "crashed",
            f"the process died {where} (exit {process.returncode}"
            f"{'; ' + tail[0][:120] if tail[0] else ''})",
        )
    return {"status": status, "detail": detail, "probes": probes_out}


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, 9)
        except (ProcessLookupError, PermissionError):
            process.kill()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


# ---- the class: results, resume, report ---------------------------------------------------


def load_results(folders: list[Path]) -> dict[str, dict]:
    """Key -> result, from the results/ folders of one or more grading runs (shards)."""
    found: dict[str, dict] = {}
    for folder in folders:
        results = folder / "results" if (folder / "results").is_dir() else folder
        for path in sorted(results.glob("*.json")):
            result = json.loads(path.read_text())
            if path.stem in found and found[path.stem] != result:
                raise SystemExit(
                    f"llmcourse-grade: {path.stem} was graded differently in two "
                    "folders; re-grade it in one"
                )
            found[path.stem] = result
    return found


def write_result(out: Path, key: str, result: dict) -> None:
    folder = out / "results"
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{key}.tmp"
    temporary.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, folder / f"{key}.json")  # whole, or not at all


def report(
    results: dict[str, dict], out: Path, book: dict[str, Chapter], stream=sys.stdout
) -> None:
    """OUT/class.csv, OUT/exercises.csv and OUT/feedback/; a summary on ``stream``."""
    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(results.values(), key=lambda r: (r["student"], r["chapter"], r["submission"]))
    students = sorted({r["student"] for r in ordered})
    graded = sorted({r["chapter"] for r in ordered if r["chapter"]})
    labels = (
        [e.label for name in graded for e in book[name].exercises]
        if all(name in book for name in graded)
        else sorted({e["label"] for r in ordered for e in r["exercises"]})
    )
    best: dict[tuple[str, str], dict] = {}  # (student, label) -> the best row
    for r in ordered:
        for row in r["exercises"]:
            k = (r["student"], row["label"])
            if k not in best or (row["status"] == "pass" and best[k]["status"] != "pass"):
                best[k] = row
    with (out / "class.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *labels, "total", "out_of"])
        for student in students:
            marks = [
                int(best.get((student, label), {}).get("status") == "pass") for label in labels
            ]
            writer.writerow([student, *marks, sum(marks), len(labels)])
    with (out / "exercises.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "student",
                "submission",
                "chapter",
                "notebook_status",
                "exercise",
                "status",
                "passed",
                "detail",
                "hint",
            ]
        )
        for r in ordered:
            for row in r["exercises"] or [
                {"label": "", "status": "", "detail": r["detail"], "hint": ""}
            ]:
                writer.writerow(
                    [
                        r["student"],
                        r["submission"],
                        r["chapter"],
                        r["status"],
                        row["label"],
                        row["status"],
                        int(row["status"] == "pass"),
                        row["detail"],
                        row.get("hint", ""),
                    ]
                )
    feedback = out / "feedback"
    feedback.mkdir(exist_ok=True)
    for student in students:
        lines = [f"# Feedback for {student}", ""]
        for r in (r for r in ordered if r["student"] == student):
            passed = sum(e["status"] == "pass" for e in r["exercises"])
            lines += [
                f"## {Path(r['submission']).name} ({r['chapter'] or 'unknown chapter'})",
                "",
                f"{passed} of {len(r['exercises'])} exercises passed."
                + (
                    f" The notebook {r['status']}: {r['detail']}"
                    if r["status"] not in ("ran", "not run")
                    else ""
                ),
                "",
            ]
            for row in r["exercises"]:
                mark = "passed" if row["status"] == "pass" else row["status"]
                lines.append(f"- **{row['label']}** ({row['title']}): {mark}")
                if row["status"] != "pass":
                    if row["detail"]:
                        lines.append(f"  - {row['detail']}")
                    if row.get("hint"):
                        lines.append(f"  - Hint: {row['hint']}")
            lines.append("")
        (feedback / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', student)}.md").write_text("\n".join(lines))
    total = sum(len(r["exercises"]) for r in ordered)
    passed = sum(e["status"] == "pass" for r in ordered for e in r["exercises"])
    share = f"{100 * passed / total:.0f}%" if total else "-"
    for r in ordered:
        counts = f"{sum(e['status'] == 'pass' for e in r['exercises'])}/{len(r['exercises'])}"
        print(
            f"{r['student']:<20} {Path(r['submission']).name:<36} {r['status']:<14} {counts}",
            file=stream,
        )
    print(
        f"Total: {passed}/{total} exercises passed ({share}) in {len(ordered)} notebooks "
        f"of {len(students)} students; wrote {out / 'class.csv'}",
        file=stream,
    )


def _seed(args, out: Path) -> str:
    path = args.seed_file or out / "seed"
    if path.exists():
        return path.read_text().strip()
    if args.seed_file:
        raise SystemExit(f"llmcourse-grade: no seed file {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_hex(16) + "\n")
    path.chmod(0o600)
    return path.read_text().strip()


def grade_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llmcourse-grade", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", type=Path)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("grades"),
        help="results, class.csv, feedback/ (default: grades/)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded at once")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per notebook")
    parser.add_argument("--memory", type=float, default=6, help="GB of address space each")
    parser.add_argument("--max-output", type=float, default=20, help="MB of output each")
    parser.add_argument(
        "--seed-file",
        type=Path,
        help="the secret seed of the hidden cases (default: OUT/seed, made "
        "once); shards must share one",
    )
    parser.add_argument("--shard", help="I/N: grade only every N-th notebook, from the I-th")
    parser.add_argument("--regrade", nargs="*", default=[], help="students to grade again")
    parser.add_argument("--book", type=Path, default=BOOK, help=argparse.SUPPRESS)
    parser.add_argument(
        "--unsafe", action="store_true", help="grade without a sandbox (student code runs as you)"
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    bwrap = sandbox.bubblewrap()
    if bwrap is None and not args.unsafe:
        print(
            f"llmcourse-grade: REFUSING TO GRADE: no sandbox. {sandbox.why_no_sandbox()}.\n"
            "Student code would run with your permissions. Grade in the container "
            "(grading/Containerfile), or pass --unsafe for practice work only.",
            file=sys.stderr,
        )
        return 2
    if bwrap is None:
        print(
            "llmcourse-grade: WARNING: --unsafe: no sandbox, student code runs with your "
            "permissions",
            file=sys.stderr,
        )
    book = read_book(args.book)
    out = args.out
    settings = Settings(
        seed=_seed(args, out),
        timeout=args.timeout,
        memory_gb=args.memory,
        max_output_mb=args.max_output,
        bwrap=bwrap,
        unsafe=bwrap is None,
        threads=max(1, (os.cpu_count() or 1) // args.jobs),
    )
    submissions = find_submissions(args.submissions)
    if args.shard:
        index, count = (int(n) for n in args.shard.split("/"))
        if not 0 <= index < count:
            parser.error("--shard I/N needs 0 <= I < N")
        submissions = submissions[index::count]
    existing = load_results([out]) if (out / "results").is_dir() else {}
    todo = []
    for path, root in submissions:
        student = student_of(path, root)
        key = key_of(student, path)
        old = existing.get(key)
        fresh = (
            old
            and old.get("version") == VERSION
            and old.get("seed_id") == settings.seed_id
            and old.get("sha256") == hashlib.sha256(path.read_bytes()).hexdigest()
        )
        if fresh and student not in args.regrade:
            continue
        todo.append((path, root, key))
    skipped = len(submissions) - len(todo)
    print(
        f"grading {len(todo)} notebooks ({skipped} already graded) with {args.jobs} "
        f"job(s), sandbox: {'bubblewrap' if bwrap else 'NONE (--unsafe)'}",
        file=sys.stderr,
        flush=True,
    )
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            pool.submit(grade_submission, path, root, book, settings): (path, key)
            for path, root, key in todo
        }
        for future in as_completed(futures):
            path, key = futures[future]
            result = future.result()
            write_result(out, key, result)
            passed = sum(e["status"] == "pass" for e in result["exercises"])
            print(
                f"  {path}: {result['status']}, {passed}/{len(result['exercises'])} "
                f"({result['seconds']} s)",
                file=sys.stderr,
                flush=True,
            )
    print(f"graded in {time.monotonic() - start:.1f} s", file=sys.stderr)
    keys = {key_of(student_of(p, r), p) for p, r in submissions}
    mine = {k: v for k, v in load_results([out]).items() if k in keys}
    report(mine, out, book)
    return 0


def merge_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="llmcourse-grade merge", description="Combine the results of grading shards."
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--book", type=Path, default=BOOK, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    results = load_results(args.folders)
    for key, result in results.items():
        write_result(args.out, key, result)
    report(load_results([args.out]), args.out, read_book(args.book))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["merge"]:
        return merge_main(argv[1:])
    return grade_main(argv)


if __name__ == "__main__":
    sys.exit(main())
