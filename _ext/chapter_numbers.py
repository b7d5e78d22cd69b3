"""Number chapters, and figures, tables and exercises within their chapter: "3. Self-attention",
"Figure 3.2", "Exercise 3.3".

A chapter's number is the two digits its file name starts with (``book/04_...`` is 4), so
titles are not numbered by hand: the notebook's heading is "# Self-attention" and the site
shows "3. Self-attention" (page, sidebar, links), as the teacher guide and home page do.

Sphinx numbers captioned figures, tables and sphinx-exercise's exercises in one sequence
across the book unless the table of contents is numbered, and Jupyter Book restarts a numbered
table of contents at every part. So after Sphinx has assigned its numbers (the
``env-get-updated`` event), this renumbers every chapter's items as (chapter, n), in page
order, the chapter being the two digits its file name starts with (``book/04_...`` is 4).
Pages that are not chapters (the introduction, the teacher guide) keep Sphinx's numbers.
"""

from __future__ import annotations

import re

from docutils import nodes

CHAPTER = re.compile(r"(?:^|/)(\d\d)_[^/]+$")


def number_title(app, doctree) -> None:
    """Prefix the chapter's number to its title, before Sphinx records the title."""
    match = CHAPTER.search(app.env.docname)
    section = next(iter(doctree.findall(nodes.section)), None)
    if match and section is not None:
        title = section[0]
        title.insert(0, nodes.Text(f"{int(match.group(1))}. "))


def renumber_by_chapter(app, env) -> list[str]:
    changed = []
    for docname, by_type in env.toc_fignumbers.items():
        match = CHAPTER.search(docname)
        if not match:
            continue
        chapter = int(match.group(1))
        for figtype, numbers in by_type.items():
            in_page_order = sorted(numbers, key=numbers.get)
            by_type[figtype] = {id_: (chapter, i) for i, id_ in enumerate(in_page_order, 1)}
        changed.append(docname)
    return changed


def setup(app):
    # Before Sphinx's title collector (default priority, 500) reads the title.
    app.connect("doctree-read", number_title, priority=400)
    # After Sphinx's own numbering (its collector listens at the default priority, 500).
    app.connect("env-get-updated", renumber_by_chapter, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
