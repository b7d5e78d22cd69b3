"""The diagrams' drawing primitives: sizes in inches, clear errors, and every diagram of the
course draws a figure of legible size."""

import inspect

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from llmcourse.diagrams import canvas  # noqa: E402


def test_canvas_units_are_inches():
    fig, ax = canvas.canvas(4, 2, title="t")
    assert tuple(fig.get_size_inches()) == (4, 2)
    assert ax.get_xlim() == (0, 4) and ax.get_ylim() == (0, 2)
    plt.close(fig)


def test_matrix_returns_its_size_and_draws_its_cells():
    fig, ax = canvas.canvas(3, 3)
    before = len(ax.patches)
    width, height = canvas.matrix(ax, 0.5, 2.5, 2, 3, cell=0.2, values=[[0, 0.5, 1]] * 2,
                                  highlight=[(0, 1)])  # fmt: skip
    assert (round(width, 6), round(height, 6)) == (0.6, 0.4)
    assert len(ax.patches) - before == 2 * 3 + 1 + 1  # cells, outline, highlight
    plt.close(fig)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: canvas.canvas(0, 2), "at most 10 x 12"),
        (lambda: canvas.box(canvas.canvas(2, 2)[1], 1, 1, 1, 1, kind="nope"), "kind must be"),
        (lambda: canvas.matrix(canvas.canvas(2, 2)[1], 0, 2, 0, 3), "at least one row"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
    plt.close("all")


def diagram_functions():
    import importlib
    import pkgutil

    import llmcourse.diagrams as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name == "canvas":
            continue
        module = importlib.import_module(f"llmcourse.diagrams.{info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module.__name__ and not name.startswith("_"):
                yield f"{info.name}.{name}", function


@pytest.mark.parametrize("name, function", list(diagram_functions()) or [("none", None)])
def test_every_diagram_draws_a_legible_figure(name, function):
    if function is None:
        pytest.skip("no diagram modules yet")
    fig = function()
    width, height = fig.get_size_inches()
    assert width <= 6.5, f"{name} is {width} inches wide: too small on a phone"
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert sizes and min(sizes) >= 8, f"{name} has text smaller than 8 points"
    plt.close(fig)
