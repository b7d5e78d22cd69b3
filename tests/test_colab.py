"""Colab readiness: a chapter runs in a fresh environment holding only what Colab preinstalls.

A new virtual environment gets torch, transformers, numpy, matplotlib (Colab's own) and the
kernel machinery; nothing of the course. Chapter 5 then runs top to bottom in it with
``google.colab`` present, so its first cell installs the course package exactly as on
Colab, with the git URL replaced by this checkout. Slow (minutes: it installs packages), so
it runs only with LLMCOURSE_COLAB_TEST=1:  make test-colab
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from sync_colab_cell import TAG, colab_cell_source  # noqa: E402

CHAPTER = ROOT / "book" / "05_positional_encoding.ipynb"
COLAB_PREINSTALLED = [
    "torch==2.13.0",
    "transformers",
    "numpy",
    "matplotlib",
    "ipykernel",
    "nbclient",
]
FAKE_COLAB = (
    "import importlib.machinery, sys, types  # pretend to be Colab\n"
    'sys.modules["google.colab"] = types.ModuleType("google.colab")\n'
    'sys.modules["google.colab"].__spec__ = importlib.machinery.ModuleSpec(\n'
    '    "google.colab", None)\n'
)
RUNNER = r"""
import json, sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
print(json.dumps({"cells": len(nb.cells)}))
"""

pytestmark = pytest.mark.skipif(
    os.environ.get("LLMCOURSE_COLAB_TEST") != "1",
    reason="slow: set LLMCOURSE_COLAB_TEST=1 (make test-colab)",
)


def colab_notebook(local: Path):
    """Chapter 5 with google.colab faked and the install pointed at the local checkout."""
    nb = nbformat.read(CHAPTER, as_version=4)
    first = nb.cells[0]
    assert TAG in first.metadata["tags"] and first.source == colab_cell_source()
    start = first.source.index('"llmcourse @ git+')
    end = first.source.index('"', start + 1) + 1
    first.source = FAKE_COLAB + first.source[:start] + json.dumps(str(local)) + first.source[end:]
    return nb


def test_a_chapter_runs_in_a_fresh_colab_like_environment(tmp_path):
    venv = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = subprocess.run(
        [python, "-m", "pip", "install", "-q", *COLAB_PREINSTALLED],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    work = tmp_path / "content"  # Colab's working folder: no checkout to import from
    work.mkdir()
    gone = subprocess.run([python, "-c", "import llmcourse"], capture_output=True, cwd=work)
    assert gone.returncode != 0, "the fresh environment must not have the course package yet"

    nb_path = work / CHAPTER.name
    nbformat.write(colab_notebook(ROOT), nb_path)
    runner = tmp_path / "run.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [python, runner, nb_path, work],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    installed = subprocess.run(
        [python, "-c", "import llmcourse; print(llmcourse.__file__)"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    assert "site-packages" in installed.stdout, installed.stdout + installed.stderr
    torch = subprocess.run(
        [python, "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert torch.stdout.startswith("2.13.0"), "installing the course replaced Colab's torch"
