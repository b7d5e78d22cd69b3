"""Schematic diagrams of the course, drawn by code so that they are reproducible.

Each diagram is a function that draws a matplotlib figure and returns it. A chapter shows
one in a code cell tagged ``hide-input`` (the website shows the picture, not the code)::

    fig = diagrams.attention_matrices()

with the cell's ``mystnb`` metadata giving a caption (``figure.caption``, ``figure.name``)
and alt text (``image.alt``). The picture is stored in the notebook's output, so it shows on
the website, in JupyterLab and on Colab alike, with or without the repository beside it.

The drawing primitives are in ``llmcourse.diagrams.canvas``; the diagrams are grouped by
the part of the course they belong to, one module each.
"""

from __future__ import annotations
