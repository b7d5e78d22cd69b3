"""Author-year citations for the course's bibliography (sphinxcontrib-bibtex).

- In the text, round brackets: "Vaswani et al. (2017)", "(Vaswani et al., 2017; Devlin et
  al., 2019)": select with ``bibtex_reference_style: author_year_round``.
- In the bibliography, entries sorted by author and year and labelled the same way
  ("Vaswani et al., 2017", with a/b where one author group has two works in a year)
  instead of "[VSP+17]": select with ``bibtex_default_style: author_year``.
"""

import dataclasses
from collections import Counter

import pybtex.plugin
import sphinxcontrib.bibtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.template import field, first_of, node, optional, tag
from sphinxcontrib.bibtex.style.referencing import BracketStyle, PersonStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle
from sphinxcontrib.bibtex.style.template import join


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")", sep="; ")


@node
def _names(children, data, role, other=None, **kwargs):
    """The names of sphinxcontrib.bibtex, but "X and others" in a bib file reads "X et al."."""
    assert not children
    persons = data["entry"].persons[role]
    person_style = data["style"].person
    named = [p for p in persons if str(p) != "others"]
    parts = [person_style.style_plugin.format(p, person_style.abbreviate) for p in named]
    if other is not None and len(named) < len(persons):
        return Text(join[parts[0]].format_data(data), other)
    return join(other=other, **kwargs)[parts].format_data(data)


@node
def _author_or_editor_or_title(children, data, **kwargs):
    assert not children
    return first_of[
        optional[_names("author", **kwargs)],
        optional[_names("editor", **kwargs)],
        tag("em")[field("title")],
    ].format_data(data)


@dataclasses.dataclass
class EtAlPersonStyle(PersonStyle):
    def _kwargs(self, full):
        return dict(
            sep=self.sep, sep2=self.sep2, last_sep=self.last_sep, other=None if full else self.other
        )

    def names(self, role, full):
        return _names(role=role, **self._kwargs(full))

    def author_or_editor_or_title(self, full):
        return _author_or_editor_or_title(**self._kwargs(full))


@dataclasses.dataclass
class RoundAuthorYearReferenceStyle(AuthorYearReferenceStyle):
    person: PersonStyle = dataclasses.field(default_factory=EtAlPersonStyle)
    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_textual: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_author: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_label: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_year: BracketStyle = dataclasses.field(default_factory=_round)


def _surname(person) -> str:
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def _author_year(entry) -> str:
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in persons]
    if len(names) == 1:
        who = names[0]
    elif len(names) == 2 and "others" not in names:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [_author_year(e) for e in entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label


class AuthorYearStyle(PlainStyle):
    default_label_style = AuthorYearLabelStyle
    default_sorting_style = "author_year_title"


pybtex.plugin.register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)
sphinxcontrib.bibtex.plugin.register_plugin(
    "sphinxcontrib.bibtex.style.referencing", "author_year_round", RoundAuthorYearReferenceStyle
)


def setup(app):
    return {"parallel_read_safe": True, "parallel_write_safe": True}
