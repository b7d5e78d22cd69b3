"""Put the chapters in the website as two downloads, written at every build:

    downloads/notebooks.zip        every chapter as executed, outputs and solutions included
    downloads/student-edition.zip  every chapter without solutions or outputs (make student)

The teacher guide links to both. They are made from book/ at build time, so they cannot
fall behind the chapters.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path


def write_downloads(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from llmcourse.teaching.layout import chapters
    from llmcourse.teaching.student_edition import build

    book = Path(app.srcdir) / "book"
    out = Path(app.outdir) / "downloads"
    out.mkdir(parents=True, exist_ok=True)
    notebooks = chapters(book)
    with tempfile.TemporaryDirectory() as tmp:
        students = build(notebooks, Path(tmp))
        for name, files in (("notebooks.zip", notebooks), ("student-edition.zip", students)):
            partial = out / (name + ".partial")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in files:
                    archive.write(path, path.name)
            partial.replace(out / name)  # never a half-written zip under the real name


def setup(app):
    app.connect("build-finished", write_downloads)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
