"""The prose quotes only numbers its chapter can see (CONTRIBUTING.md, "Output rules").

A measured number in a chapter's markdown or figure captions (a decimal, a percentage, a
count of 3 or more digits, a number with a scale word such as "1.5 million" or "124M") must
be printed by one of that chapter's compared outputs (cells not tagged
``nbval-ignore-output``) or written in its code, possibly rounded ("2.51" for 2.5117;
a one-digit number with a scale word, "3 million", only exactly), or be a literature
figure listed with its citation in ``tests/literature_figures.yml``.
Not measured figures: years (1900-2039), section, figure, table and chapter numbers, version
numbers, numbers inside names ("GPT-2", "SmolLM2-135M"), bit patterns with a leading zero,
and whole numbers in LaTeX (equation constants and exponents; decimals in LaTeX are checked).
So when code changes a number, the sentence that quotes it fails here.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
LITERATURE = Path(__file__).resolve().parent / "literature_figures.yml"
IGNORE_TAG = "nbval-ignore-output"

SCALES = {
    "thousand": 10**3,
    "million": 10**6,
    "billion": 10**9,
    "trillion": 10**12,
    "k": 10**3,
    "M": 10**6,
    "B": 10**9,
    "T": 10**12,
}
NUMBER = re.compile(
    r"""
    (?P<int>\d{1,3}(?:[,_\u2009\u202f]\d{3})+(?!\d)|\d+)         # 1,536,000  1_000  42
    (?:\.(?P<frac>\d+))?                                        # .25
    (?:e(?P<exp>[-+]?\d+)|\s*\\times\s*10\^\{?(?P<exp10>[-+]?\d+)\}?)?  # e23, \times 10^{23}
    (?P<pct>\s?\\?%)?                                           # %
    (?P<scale>[\s-](?:thousand|million|billion|trillion)\b|[kMBT]\b)?
""",
    re.VERBOSE,
)
# A number right after one of these words is a reference, not a measurement.
REFERENCE_WORDS = re.compile(
    r"(?:\b(?:sections?|figures?|fig\.|tables?|chapters?|appendix|"
    r"equations?|eqs?\.|pages?|pp?\.|versions?|python)|§)\s*\Z",
    re.IGNORECASE,
)
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.DOTALL)
NOT_PROSE = [
    re.compile(r"^:[\w-]+:.*$", re.MULTILINE),  # directive options (:label:)
    re.compile(r"\{\w+\}`[^`]*`"),  # roles: {numref}`fig-x`
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"https?://\S+|arXiv:\s*\S+|doi:\s*\S+", re.IGNORECASE),  # addresses, ids
    re.compile(r"<!--.*?-->", re.DOTALL),  # comments
]


def _exponent(match: re.Match) -> int:
    return int(match["exp"] or match["exp10"] or 0)


def _mantissa(match: re.Match) -> Decimal:
    """The number as written, without its exponent or scale: 5.88 for 5.88e23."""
    return Decimal(re.sub(r"\D", "", match["int"]) + "." + (match["frac"] or "0"))


def _unit(match: re.Match) -> Decimal:
    """What the mantissa is multiplied by: 10^23 for 5.88e23, 10^6 for "4.7 million"."""
    scale = (match["scale"] or "").strip(" -\n")
    return Decimal(SCALES[scale] if scale else 1).scaleb(_exponent(match))


def _blank_code_blocks(text: str) -> str:
    """Blank out fenced code (```python ... ```), keeping directives (```{exercise} ... ```)."""
    lines, fence = text.split("\n"), None  # fence: the characters that close the open block
    for i, line in enumerate(lines):
        opening = re.match(r"\s*(`{3,}|~{3,})(.*)$", line)
        if fence is None and opening and not opening[2].lstrip().startswith("{"):
            fence, lines[i] = opening[1], " " * len(line)
        elif fence is not None:
            if line.strip() == fence:
                fence = None
            lines[i] = " " * len(line)
    return "\n".join(lines)


def quoted_numbers(text: str) -> list[tuple[str, re.Match]]:
    """The measured numbers a piece of prose quotes, as (the number as written, its match)."""
    text = _blank_code_blocks(text)
    for pattern in NOT_PROSE:
        text = pattern.sub(lambda m: " " * len(m.group()), text)  # keep offsets for context
    math = [m.span() for m in MATH.finditer(text)]
    found = []
    for m in NUMBER.finditer(text):
        start, end = m.span()
        before, after = text[max(0, start - 20) : start], text[end : end + 2]
        if re.search(r"(?:[A-Za-z_]|[A-Za-z0-9]-|\d\.)\Z", before) or re.match(r"\.\d", after):
            continue  # part of a name (GPT-2, SmolLM2-135M, L6) or a version (0.1.2)
        if REFERENCE_WORDS.search(before):
            continue  # section 2.3, figure 1.2, chapter 11
        in_math = any(a <= start < b for a, b in math)
        digits = len(re.sub(r"\D", "", m["int"]))
        decimal = bool(m["frac"] or _exponent(m))
        if in_math and not (m["frac"] or m["pct"]):
            continue  # equation constants and exponents: 12 C^2, 10^{-4}, 2 \times 10^4
        if not (decimal or m["pct"] or m["scale"] or digits >= 3):
            continue  # small whole numbers: counts the reader can check by eye
        if not decimal and len(m["int"]) > 1 and m["int"].startswith("0"):
            continue  # a code or bit pattern (01111011), not a count
        if (
            not (decimal or m["pct"] or m["scale"] or "," in m["int"])
            and digits == 4
            and 1900 <= int(m["int"]) <= 2039
        ):
            continue  # a year
        found.append((re.sub(r"\s+", " ", m.group()).replace("\\%", "%"), m))
    return found


def _rounds_to(value: Decimal, match: re.Match) -> bool:
    """Whether ``value`` rounded at the precision of the quoted number gives that number."""
    step = Decimal(1).scaleb(-len(match["frac"] or ""))
    with localcontext(prec=100):
        scaled = value / _unit(match)
        return any(
            scaled.quantize(step, rounding=r) == _mantissa(match)
            for r in (ROUND_HALF_EVEN, ROUND_HALF_UP)
        )


def evidence(nb) -> tuple[list[Decimal], list[Decimal]]:
    """Every number in the chapter's code and compared outputs, and every printed percentage."""
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts.append(cell.source)
        if IGNORE_TAG in cell.metadata.get("tags", []):
            continue  # not compared by nbval: prose may not quote it
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            for kind in ("text/plain", "text/html"):
                texts.append(out.get("data", {}).get(kind, ""))
    values, percentages = [], []
    for text in texts:
        for m in NUMBER.finditer(text):
            with localcontext(prec=100):
                value = _mantissa(m) * _unit(m)
            (percentages if m["pct"] else values).append(value)
            if m["scale"]:
                values.append(_mantissa(m))  # "4.6 million" also supports a bare 4.6
    return values, percentages


def prose(nb) -> list[tuple[int, str]]:
    """(cell index, text) of every markdown cell and figure caption."""
    parts = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            parts.append((index, cell.source))
        caption = cell.metadata.get("mystnb", {}).get("figure", {}).get("caption")
        if caption:
            parts.append((index, caption))
    return parts


def unsupported(nb, literature: list[str] = ()) -> list[str]:
    """Each quoted number that no compared output, code or literature entry supports."""
    values, percentages = evidence(nb)
    problems = []
    for index, text in prose(nb):
        for quoted, m in quoted_numbers(text):
            if quoted in literature:
                continue
            pool = percentages if m["pct"] else values
            if m["scale"] and len(_mantissa(m).normalize().as_tuple().digits) == 1:
                # "1 billion" would round from anything between 0.5 and 1.5 billion: exact only
                supported = any(v == _mantissa(m) * _unit(m) for v in pool)
            else:
                supported = any(_rounds_to(v, m) for v in pool)
            if not supported:
                context = " ".join(text[max(0, m.start() - 50) : m.end() + 30].split())
                problems.append(f"cell {index}: {quoted!r} in '...{context}...'")
    return problems


def literature_figures() -> dict[str, list[dict]]:
    return yaml.safe_load(LITERATURE.read_text()) or {}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_prose_quotes_only_numbers_the_chapter_shows(path):
    allowed = [str(entry["number"]) for entry in literature_figures().get(path.stem, [])]
    problems = unsupported(nbformat.read(path, as_version=4), allowed)
    assert not problems, (
        "numbers quoted in the prose that no compared output or code of the chapter shows "
        "(print them, write them in words that stay true, or list a literature figure with "
        f"its citation in {LITERATURE.name}):\n" + "\n".join(problems)
    )


def test_literature_figures_are_cited_and_quoted():
    stems = {p.stem for p in CHAPTERS}
    for stem, entries in literature_figures().items():
        assert stem in stems, f"{LITERATURE.name}: no chapter {stem}"
        nb = nbformat.read(ROOT / "book" / f"{stem}.ipynb", as_version=4)
        quoted = {q for _, text in prose(nb) for q, _ in quoted_numbers(text)}
        for entry in entries:
            assert set(entry) == {"number", "citation"} and str(entry["citation"]).strip(), entry
            assert str(entry["number"]) in quoted, (
                f"{LITERATURE.name}: {stem} no longer quotes {entry['number']!r}: remove it"
            )


# The checker itself, on a synthetic chapter.


def _chapter(markdown: str, outputs: dict[str, str], ignored: str = "") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(markdown))
    for source, printed in outputs.items():
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
        nb.cells.append(cell)
    if ignored:
        cell = nbformat.v4.new_code_cell("print(seconds)", metadata={"tags": [IGNORE_TAG]})
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=ignored)]
        nb.cells.append(cell)
    return nb


OUTPUTS = {
    "print(loss, steps, share)": "loss 2.5117 after 1,536,000 characters: 45%\n",
    "lr = 3e-3": "",
}


@pytest.mark.parametrize(
    "markdown",
    [
        "The loss fell to 2.51 nats, or 2.5117.",  # rounded, or in full
        "It saw 1.5 million characters (1,536,000), 45% of them.",  # scale words, percentages
        "Learning rate 0.003.",  # a number in the code
        "Vaswani et al. (2017), section 3.2, figure 1.2, chapter 11, GPT-2, SmolLM2-135M, v0.1.2.",
        "$$N = 12 L C^2 + 13 C, \\quad 10^{-4}$$ and 42 steps.",  # LaTeX whole numbers, small ints
        "$1.536 \\times 10^{6}$ characters, $2 \\times 10^4$.",  # LaTeX powers of ten
        "The exponent bits `01111011`.",  # a bit pattern, not a count
        "Karpathy reports 1.47 nats.",  # listed literature figure
        "```python\nx = 123.45\n```\nThen 2.51.",  # code in a fence is code
    ],
)
def test_checker_accepts_supported_numbers(markdown):
    assert unsupported(_chapter(markdown, OUTPUTS), ["1.47"]) == []


@pytest.mark.parametrize(
    "markdown, flagged",
    [
        ("The loss fell to 2.61 nats.", "2.61"),  # a planted wrong number
        ("The loss fell to 2.513 nats.", "2.513"),  # rounds otherwise
        ("It saw 1.6 million characters.", "1.6 million"),
        ("It saw 2 million characters.", "2 million"),  # one digit: exact only
        ("It saw 1,563,000 characters.", "1,563,000"),
        ("Half of them, 50%, were new.", "50%"),
        ("$\\log x = 2.49$", "2.49"),  # decimals in LaTeX count
        ("Training took 26.4 s.", "26.4"),  # printed only by an ignored cell
        ("A context of 2048 tokens.", "2048"),  # not a year
        ("Karpathy reports 1.47 nats.", "1.47"),  # not listed this time
        ("```{exercise} Loss\nReach 2.61 nats.\n```", "2.61"),  # a directive is prose
    ],
)
def test_checker_flags_unsupported_numbers(markdown, flagged):
    problems = unsupported(_chapter(markdown, OUTPUTS, ignored="trained in 26.4 s\n"))
    assert len(problems) == 1 and repr(flagged) in problems[0], problems
