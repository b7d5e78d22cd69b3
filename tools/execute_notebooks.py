"""Execute chapters in place, top to bottom in a fresh kernel, and report time and memory.

Usage: python tools/execute_notebooks.py [book/NN_name.ipynb ...]   (default: every chapter)

This is how a chapter's stored outputs are made: nbval later re-runs the notebook and
compares every output with what this wrote. Timing metadata is not recorded, so a re-run
changes nothing but what the code itself prints. The measured wall time and peak memory of
each chapter are written to timings.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
# The same notebook metadata for every chapter (no editor or machine details), besides the
# course's own ("llmcourse": the exercise layout and the home page's one-line summary).
METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {
        "name": "python",
        "pygments_lexer": "ipython3",
        "codemirror_mode": {"name": "ipython", "version": 3},
    },
}
PEAK_MEMORY = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def execute(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        seconds = time.perf_counter() - start
        probe = nbformat.v4.new_code_cell(PEAK_MEMORY)  # run in the kernel, never stored
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
        nb.cells.pop()
    course = nb.metadata.get("llmcourse")  # the course's own: exercise layout, summary
    nb.metadata = nbformat.from_dict(METADATA | ({"llmcourse": course} if course else {}))
    nbformat.write(nb, path)
    peak_kb = int(probe.outputs[0]["text"])
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak_kb / 1024)}


def main(argv: list[str]) -> int:
    paths = [Path(p).resolve() for p in argv] or sorted((ROOT / "book").glob("*.ipynb"))
    record_path = ROOT / "timings.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    for path in paths:
        result = execute(path)
        record[path.name] = result
        print(
            f"{path.name}: {result['seconds']} s, peak memory {result['peak_rss_mb']} MB",
            flush=True,
        )
    record_path.write_text(json.dumps(dict(sorted(record.items())), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
