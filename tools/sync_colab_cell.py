"""Write the Colab set-up cell, built from _config.yml's repository.url, into every chapter,
and point the home page's "Run it yourself" card at chapter 1 on Colab.

Usage: python tools/sync_colab_cell.py [--check] [book/NN_name.ipynb ...]   (default: every chapter)

Every notebook in book/ starts with this cell. On Google Colab it installs the course
package from the repository (keeping Colab's own torch), plus the few packages a chapter
needs beyond it (EXTRA_PACKAGES); anywhere else it does nothing.
The repository URL lives only in _config.yml: after changing it, run this script.
With --check, change nothing and exit 1 if any notebook's cell is missing or stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
TAG = "colab-setup"

TEMPLATE = """\
# Colab set-up: on Google Colab, install the course package (Colab's torch is kept).
# Anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    packages = [
        "llmcourse @ git+{url}@{branch}",{extra}
    ]
    pip_install = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run(pip_install + packages, check=True)"""

# Packages a chapter needs beyond the course package (Colab readers install only what the
# chapter's first cell installs); the ranges are requirements.txt's.
EXTRA_PACKAGES = {"13": ["peft>=0.21,<0.22"]}  # chapter 13 compares its LoRA with peft's


def colab_cell_source(config_path: Path = ROOT / "_config.yml", extra=()) -> str:
    repo = yaml.safe_load(config_path.read_text())["repository"]
    extra_lines = "".join(f'\n        "{package}",' for package in extra)
    return TEMPLATE.format(
        url=repo["url"].rstrip("/"), branch=repo.get("branch", "main"), extra=extra_lines
    )


def sync(path: Path, source: str, check: bool) -> bool:
    """Make ``path``'s first cell the set-up cell. Returns True if it was already right."""
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0] if nb.cells else None
    if first is not None and TAG in first.metadata.get("tags", []):
        if first.source == source:
            return True
        first.source = source
    else:
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": [TAG, "remove-cell"]})
        nb.cells.insert(0, cell)
    if not check:
        nbformat.write(nb, path)
    return False


COLAB_LINK = re.compile(r"^:link: https://colab\.research\.google\.com/\S+$", re.MULTILINE)


def sync_intro(intro: Path, config_path: Path, check: bool) -> bool:
    """Make the home page's Colab link open chapter 1 from the repository. True if right."""
    repo = yaml.safe_load(config_path.read_text())["repository"]
    github = repo["url"].rstrip("/").removeprefix("https://github.com/")
    link = (
        f":link: https://colab.research.google.com/github/{github}/blob/"
        f"{repo.get('branch', 'main')}/book/01_rise_of_llms.ipynb"
    )
    text = intro.read_text()
    if len(COLAB_LINK.findall(text)) != 1:
        raise ValueError(f"{intro.name}: expected one Colab card link (':link: https://colab...')")
    new = COLAB_LINK.sub(link, text)
    if new != text and not check:
        intro.write_text(new)
    return new == text


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a.startswith("-") and a != "--check"]
    if unknown:  # --help included: the usage is the module's docstring
        usage = next(line for line in __doc__.splitlines() if line.startswith("Usage:"))
        print(__doc__.strip() if unknown == ["--help"] else f"unknown option {unknown[0]}; {usage}")
        return 0 if unknown == ["--help"] else 2
    check = "--check" in argv
    paths = [Path(a).resolve() for a in argv if a != "--check"]
    paths = paths or sorted((ROOT / "book").glob("*.ipynb"))
    stale = [
        p
        for p in paths
        if not sync(p, colab_cell_source(extra=EXTRA_PACKAGES.get(p.name[:2], ())), check)
    ]
    intro = ROOT / "book" / "intro.md"
    if not sync_intro(intro, ROOT / "_config.yml", check):
        stale.append(intro)
    for path in stale:
        print(f"{'stale' if check else 'updated'}: {path.relative_to(ROOT)}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
