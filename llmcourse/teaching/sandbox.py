"""The sandbox one submission runs in: bubblewrap, or (refused unless asked) none.

With bubblewrap (Debian/Ubuntu: ``apt-get install bubblewrap``) each submission gets
- its own empty working folder (``book/`` in the sandbox's view, so a chapter's relative
  paths such as ``../benchmarks/results`` resolve), writable, deleted afterwards;
- read-only views of what a chapter needs and nothing else: the Python installation, the
  course package, ``benchmarks/results``, the offline model cache; not the book (its
  solutions), not the teacher's files, not other submissions;
- no network (a new, empty network namespace), its own process, IPC and user namespaces
  (an unprivileged user inside), a private ``/tmp``, and death with the grader;
- ``PYTHONSAFEPATH=1``, so a ``./llmcourse`` it writes is never imported;
- limits: wall-clock time (the grader kills it), address space (``--memory``), the size of
  any file it writes, and its output (the grader stops reading and kills it past
  ``--max-output``).

Without bubblewrap the grader refuses, unless told ``--unsafe``: then each submission still
runs in its own empty folder with a read-only copy of the package and ``PYTHONSAFEPATH``,
but with the teacher's permissions (fine for a student's own practice, not for grades).
A container recipe for teachers who prefer one is in ``grading/Containerfile``.
"""

from __future__ import annotations

import os
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from llmcourse.offline import cache_dir
from llmcourse.teaching import ROOT

FILE_LIMIT = 256 * 2**20  # bytes, any one file a submission writes


def bubblewrap() -> str | None:
    """The bwrap executable if it can make a sandbox here, else None."""
    exe = shutil.which("bwrap")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [
                exe,
                "--ro-bind",
                "/",
                "/",
                "--unshare-all",
                "--dev",
                "/dev",
                "--proc",
                "/proc",
                "true",
            ],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return exe if done.returncode == 0 else None


def why_no_sandbox() -> str:
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    return (
        "bubblewrap is installed but cannot create a sandbox here (user namespaces "
        "disabled?); use the container recipe in grading/Containerfile"
    )


def _needed() -> list[tuple[Path, Path]]:
    """(outside, inside) read-only paths a chapter needs."""
    paths = [Path(sys.base_prefix), Path(sys.prefix), ROOT / "llmcourse"]
    results = ROOT / "benchmarks" / "results"
    if results.is_dir():
        paths.append(results)
    cache = cache_dir()
    if cache.is_dir():
        paths.append(cache)
    return [(p.resolve(), p.resolve()) for p in dict.fromkeys(paths)]


def environment(threads: int, workdir: Path, sandboxed: bool) -> dict[str, str]:
    """The runner's environment: nothing of the teacher's, offline, safe import path."""
    scratch = Path("/tmp") if sandboxed else workdir / "scratch"  # the sandbox's own /tmp
    for folder in ("home", "hf", "mpl"):
        if not sandboxed:
            (scratch / folder).mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch / "home"),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "PYTHONSAFEPATH": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(scratch / "hf"),
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(scratch / "mpl"),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "LLMCOURSE_CACHE": str(cache_dir().resolve()),
        "LLMCOURSE_GRADING": "1",
    }


def command(workdir: Path, python: str, bwrap: str | None) -> tuple[list[str], Path]:
    """The command running the runner on ``workdir`` and the folder it starts in.

    ``workdir`` is the submission's own empty folder. With ``bwrap`` None (``--unsafe``) a
    read-only copy of the package goes in ``workdir/course`` and the runner starts in
    ``workdir/course/book``."""
    runner = [python, "-m", "llmcourse.teaching.runner"]
    if bwrap is None:
        course = workdir / "course"
        shutil.copytree(
            ROOT / "llmcourse", course / "llmcourse", ignore=shutil.ignore_patterns("__pycache__")
        )
        results = ROOT / "benchmarks" / "results"
        if results.is_dir():
            shutil.copytree(results, course / "benchmarks" / "results")
        for path in course.rglob("*"):
            mode = path.stat().st_mode
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        (course / "book").mkdir()
        return runner, course / "book"
    book = (ROOT / "book").resolve()
    args = [
        bwrap,
        "--die-with-parent",
        "--new-session",
        "--unshare-all",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--hostname",
        "sandbox",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--dir",
        "/tmp/home",
    ]
    for system in ("/usr", "/lib", "/lib64", "/bin", "/sbin"):
        if os.path.islink(system):
            args += ["--symlink", os.readlink(system), system]
        elif os.path.isdir(system):
            args += ["--ro-bind", system, system]
    for etc in (
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/localtime",
        "/etc/nsswitch.conf",
        "/etc/ssl/certs",
        "/etc/matplotlibrc",
    ):
        if os.path.exists(etc):
            args += ["--ro-bind", etc, etc]
    for outside, inside in _needed():
        args += ["--ro-bind", str(outside), str(inside)]
    args += ["--bind", str(workdir), str(book), "--chdir", str(book)]
    return args + runner, workdir


def limits(memory_bytes: int):
    """A preexec function setting the submission's resource limits."""

    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply
