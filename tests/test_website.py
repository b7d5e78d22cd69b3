"""The website as readers see it, in a real browser (headless Chromium driven by Selenium).

The book is built with warnings as errors into a temporary folder, served on 127.0.0.1, and
every page of _toc.yml is opened: no console errors, every figure's image loaded, an
exercise solution opens when clicked, the Colab launch button points at the chapter's
notebook, and the search page finds "attention". Screenshots of one chapter at desktop and
phone widths are saved in _build/screenshots/ (git-ignored).

The browser is kept offline (every host name but 127.0.0.1 fails to resolve): every formula
must still render, since MathJax is served by the site itself. Requests that leave 127.0.0.1
are recorded in _build/screenshots/external_requests.txt, not counted as errors. Needs
Debian's Chromium and its driver:
    apt-get install -y chromium chromium-driver
Without them these tests are skipped.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from llmcourse.teaching import toc_pages

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("LLMCOURSE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LLMCOURSE_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "_build" / "screenshots"
COLAB = "https://colab.research.google.com/github/"
INSTALL = "apt-get install -y chromium chromium-driver"
# Console errors that come from the Jupyter Book 1.x theme stack, not from the course: they
# are written to _build/screenshots/external_requests.txt, not failed on.
KNOWN_UPSTREAM = {
    # sphinx-thebe 0.3.1 adds its config <script> twice under jupyter-book 1.0.4; the first
    # copy defines everything, so the "live code" button still works.
    "Identifier 'THEBE_JS_URL' has already been declared",
    # The browser itself asks for /favicon.ico; the book has none.
    "favicon.ico - Failed to load resource",
}

webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(f"Chromium is not installed: {INSTALL}", allow_module_level=True)

sys.path.insert(0, str(ROOT / "tools"))
from make_pdf import make_pdf  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def source_of(page: str) -> Path:
    for suffix in (".ipynb", ".md"):
        if (ROOT / (page + suffix)).exists():
            return ROOT / (page + suffix)
    raise FileNotFoundError(page)


def figure_cells(page: str) -> int:
    """How many captioned figures a page's notebook declares (0 for a markdown page)."""
    path = source_of(page)
    if path.suffix != ".ipynb":
        return 0
    nb = nbformat.read(path, as_version=4)
    return sum("figure" in c.metadata.get("mystnb", {}) for c in nb.cells)


PAGES = toc_pages()  # every page, root first ("book/05_positional_encoding")
NOTEBOOKS = [p for p in PAGES if source_of(p).suffix == ".ipynb"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A fresh -W build of the book, outside the repository's own _build."""
    out = tmp_path_factory.mktemp("site")
    command = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(ROOT),
        "--path-output",
        str(out),
        "-W",
        "-n",
        "--keep-going",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request log in the test output
        pass


@pytest.fixture(scope="module")
def external():
    """Console errors not counted: requests that left 127.0.0.1, known upstream messages."""
    seen: list[str] = []
    yield seen
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "external_requests.txt").write_text("".join(f"{m}\n" for m in seen))


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        # Offline: any host other than the local server fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def open_page(browser, url: str, external: list[str]) -> list[str]:
    """Load ``url``; return its console errors, minus failed requests to other hosts."""
    browser.get_log("browser")  # drop what earlier pages left
    browser.get(url)
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    errors = []
    for entry in browser.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        urls = re.findall(r"https?://[^\s\"']+", entry["message"])
        if urls and not any(u.startswith("http://127.0.0.1") for u in urls):
            external.append(f"{url}: external: {entry['message']}")
        elif any(known in entry["message"] for known in KNOWN_UPSTREAM):
            external.append(f"{url}: upstream: {entry['message']}")
        else:
            errors.append(entry["message"])
    return errors


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_without_console_errors_and_figures_appear(browser, server, external, page):
    errors = open_page(browser, f"{server}/{page}.html", external)
    assert errors == [], f"{page}: console errors {errors}"
    assert browser.find_element(By.CSS_SELECTOR, "article h1").text.strip()
    broken = browser.execute_script(
        "return [...document.querySelectorAll('main img')]"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert broken == [], f"{page}: images that did not load: {broken}"
    figures = browser.execute_script(
        "return [...document.querySelectorAll('main figure img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length"
    )
    assert figures >= figure_cells(page), f"{page}: {figures} figures shown"
    math = rendered_math(browser)
    assert math["errors"] == [], f"{page}: MathJax errors {math['errors']}"
    assert math["rendered"] == math["formulas"], f"{page}: formulas not rendered: {math}"
    assert abs(browser.execute_script("return window.innerWidth") - 1280) < 40
    wide = browser.execute_script(
        "return [...document.querySelectorAll('main div.cell_input pre')]"
        ".filter(p => p.scrollWidth > p.clientWidth + 1)"
        ".map(p => p.textContent.split('\\n').reduce((a, b) => a.length > b.length ? a : b))"
    )
    assert wide == [], f"{page}: code cells that scroll sideways at 1280 px, longest lines: {wide}"


@pytest.mark.parametrize("page", PAGES)
def test_no_page_scrolls_sideways_on_a_phone(browser, server, external, page):
    browser.set_window_size(390, 844)
    try:
        open_page(browser, f"{server}/{page}.html", external)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{page} is {overflow} px wider than a 390 px phone screen"
    finally:
        browser.set_window_size(1280, 900)


def rendered_math(browser) -> dict:
    """Once MathJax has finished: the page's formulas, how many it rendered, its errors."""
    return browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const count = () => {
            const formulas = [...document.querySelectorAll('main .math')];
            done({formulas: formulas.length,
                  rendered: formulas.filter(f => f.querySelector('mjx-container')).length,
                  errors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent)});
        };
        if (!document.querySelector('main .math')) count();
        else if (!(window.MathJax && MathJax.startup)) done({formulas: -1, rendered: 0,
                                                             errors: ['MathJax did not load']});
        else MathJax.startup.promise.then(count);
    """)


@pytest.mark.parametrize("page", NOTEBOOKS)
def test_solution_opens_on_click_and_launch_buttons(browser, server, external, page):
    open_page(browser, f"{server}/{page}.html", external)
    solutions = browser.find_elements(By.CSS_SELECTOR, "div.solution.dropdown")
    assert solutions, f"{page}: no exercise solution on the page"
    body = solutions[0].find_element(By.CSS_SELECTOR, "section, .cell")
    assert not body.is_displayed(), f"{page}: the solution is visible before it is opened"
    button = solutions[0].find_element(By.CSS_SELECTOR, "button.toggle-button")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    browser.execute_script("arguments[0].click();", button)  # a sticky bar may overlap it
    WebDriverWait(browser, 5).until(lambda d: body.is_displayed())
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a")]
    colab = [h for h in links if h and h.startswith(COLAB)]
    chapter = int(Path(page).name[:2])
    numbers = browser.execute_script(
        "return [...document.querySelectorAll('main .caption-number, main p.admonition-title')]"
        ".map(e => e.textContent.trim()).filter(t => /^(Figure|Table|Exercise) /.test(t))"
    )
    assert numbers, f"{page}: no numbered figure or exercise"
    wrong = [n for n in numbers if not re.match(rf"(Figure|Table|Exercise) {chapter}\.\d+", n)]
    assert wrong == [], f"{page}: not numbered within chapter {chapter}: {wrong}"
    assert colab, f"{page}: no Colab launch button"
    assert all(h.endswith(f"/{page}.ipynb") for h in colab), colab


def test_search_finds_attention(browser, server, external):
    assert open_page(browser, f"{server}/search.html?q=attention", external) == []
    try:
        WebDriverWait(browser, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
        )
    except TimeoutException:
        pytest.fail("the search page listed no result for 'attention'")
    hits = browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")
    titles = " ".join(a.text for a in hits)
    assert "Self-attention" in titles, titles


def _screenshot(browser, server, external, name: str, size: tuple[int, int]) -> int:
    """Save a screenshot of a chapter at ``size``; return how far the page overflows."""
    page = next((p for p in NOTEBOOKS if "attention" in p), NOTEBOOKS[0])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(*size)
    try:
        open_page(browser, f"{server}/{page}.html", external)
        target = SCREENSHOTS / f"{Path(page).name}_{name}.png"
        assert browser.save_screenshot(str(target)) and target.stat().st_size > 10_000
        inner = browser.execute_script("return window.innerWidth")
        assert abs(inner - size[0]) < 40, (name, inner)
        return browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    finally:
        browser.set_window_size(1280, 900)


def test_screenshot_desktop(browser, server, external):
    assert _screenshot(browser, server, external, "desktop", (1280, 900)) <= 1


def test_screenshot_phone(browser, server, external):
    assert _screenshot(browser, server, external, "phone", (390, 844)) <= 1


@pytest.mark.parametrize("size", [(1400, 900), (390, 844)], ids=["desktop", "phone"])
def test_home_page_shows_three_ways_in_above_the_fold(browser, server, external, size):
    browser.set_window_size(*size)
    try:
        assert open_page(browser, f"{server}/{PAGES[0]}.html", external) == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / f"home_{size[0]}.png"))
        cards = browser.execute_script(
            "return [...document.querySelectorAll('main .sd-card')].slice(0, 3).map(c => "
            "({title: c.querySelector('.sd-card-title').textContent.trim(),"
            "  bottom: c.getBoundingClientRect().bottom, height: window.innerHeight}))"
        )
        assert [c["title"] for c in cards] == ["Start reading", "Run it yourself", "Teach with it"]
        below = [c["title"] for c in cards if c["bottom"] > c["height"]]
        assert below == [], f"below the fold at {size[0]} px: {below}"
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"the home page is {overflow} px too wide at {size[0]} px"
    finally:
        browser.set_window_size(1280, 900)


def test_teacher_guide_downloads_are_the_chapters(browser, server, external, tmp_path):
    import io
    import urllib.request
    import zipfile

    open_page(browser, f"{server}/book/teacher_guide.html", external)
    links = {
        a.text: a.get_attribute("href")
        for a in browser.find_elements(By.CSS_SELECTOR, "a")
        if (a.get_attribute("href") or "").endswith(".zip")
    }
    assert set(links) == {"the student edition", "the chapters with outputs and solutions"}
    chapters = sorted(p.name for p in (ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    for text, url in links.items():
        with urllib.request.urlopen(url, timeout=30) as response:
            archive = zipfile.ZipFile(io.BytesIO(response.read()))
        assert sorted(archive.namelist()) == chapters, text
        first = nbformat.reads(archive.read(chapters[0]).decode(), as_version=4)
        solutions = [c for c in first.cells if "solution" in c.metadata.get("tags", [])]
        assert bool(solutions) == (text != "the student edition"), text


# The interactive explorers (llmcourse.explorers) on chapters 3 and 10: they answer input in
# the offline browser, and the pages stay small.

EXPLORER_PAGES = {"03_": "div.llmc-attn", "10_": "div.llmc-samp"}


def _explorer(browser, server, external, prefix: str):
    page = next(p for p in NOTEBOOKS if Path(p).name.startswith(prefix))
    assert open_page(browser, f"{server}/{page}.html", external) == []
    roots = browser.find_elements(By.CSS_SELECTOR, EXPLORER_PAGES[prefix])
    assert len(roots) == 1, f"{page}: {len(roots)} explorers"
    WebDriverWait(browser, 10).until(lambda d: roots[0].get_attribute("data-ready") == "1")
    # 'instant': the theme scrolls smoothly, and a long page is still moving otherwise
    browser.execute_script(
        "arguments[0].scrollIntoView({block: 'start', behavior: 'instant'});", roots[0]
    )
    return roots[0]


def test_attention_explorer_03_self_attention_responds_offline(browser, server, external):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    root = _explorer(browser, server, external, "03_")

    def shown():
        return [e.text for e in root.find_elements(By.CSS_SELECTOR, ".llmc-tok .llmc-w")]

    first = shown()
    assert len(first) > 3 and any(w not in ("", "\u00b7") for w in first)
    head = Select(root.find_element(By.CSS_SELECTOR, 'select[data-llmc="head"]'))
    other = "0" if head.first_selected_option.get_attribute("value") != "0" else "1"
    head.select_by_value(other)
    assert shown() != first, "choosing another head changed nothing"
    layer = Select(root.find_element(By.CSS_SELECTOR, 'select[data-llmc="layer"]'))
    before = shown()
    layer.select_by_value("0")
    assert shown() != before, "choosing another layer changed nothing"
    tokens = root.find_elements(By.CSS_SELECTOR, ".llmc-tok")
    before = shown()
    browser.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", tokens[-1]
    )
    ActionChains(browser).move_to_element(tokens[-1]).perform()  # hover: a new query
    assert "llmc-q" in tokens[-1].get_attribute("class")
    assert shown() != before, "hovering over another token changed nothing"
    caption = root.find_element(By.CSS_SELECTOR, '[data-llmc="caption"]').text
    assert caption.startswith(f"Layer 0, head {other}.")


def test_sampling_explorer_10_hugging_face_responds_offline(browser, server, external):
    from selenium.webdriver.common.keys import Keys

    root = _explorer(browser, server, external, "10_")
    summary = root.find_element(By.CSS_SELECTOR, '[data-llmc="summary"]')

    def shown():
        return summary.text, [r.text for r in root.find_elements(By.CSS_SELECTOR, "tr[data-rank]")]

    first = shown()
    assert re.match(r"\d+ of the 40 tokens survive", first[0]), first[0]
    root.find_element(By.CSS_SELECTOR, 'input[data-llmc="temperature"]').send_keys(Keys.HOME)
    assert root.find_element(By.CSS_SELECTOR, 'output[data-llmc="temperature"]').text == "0.10"
    second = shown()
    assert second != first, "moving the temperature slider changed nothing"
    root.find_element(By.CSS_SELECTOR, 'input[data-llmc="top_p"]').send_keys(Keys.END)
    root.find_element(By.CSS_SELECTOR, 'input[data-llmc="top_k"]').send_keys(Keys.HOME)
    assert shown()[0].startswith("1 of the 40 tokens survive"), shown()[0]
    assert "1.000" in shown()[1][0]  # the one survivor gets all the probability


@pytest.mark.parametrize("prefix", sorted(EXPLORER_PAGES))
def test_explorer_pages_stay_under_2_mb(site, prefix):
    """A page's own content: its HTML and the images it shows (not the shared theme)."""
    page = next(p for p in NOTEBOOKS if Path(p).name.startswith(prefix))
    html_file = site / f"{page}.html"
    text = html_file.read_text()
    images = {
        src
        for src in re.findall(r'<img[^>]+src="([^"]+)"', text)
        if not src.startswith(("http:", "https:", "data:"))
    }
    size = html_file.stat().st_size + sum((html_file.parent / src).stat().st_size for src in images)
    assert size < 2_000_000, f"{page}: {size:,} bytes"
    print(f"{page}: {size:,} bytes of its own ({html_file.stat().st_size:,} of HTML)")


def test_the_book_prints_to_pdf_with_its_formulas_rendered(site, tmp_path):
    out = tmp_path / "chapter.pdf"
    pages = make_pdf(site, out, ["book/03_self_attention"])
    assert pages >= 5 and not out.with_suffix(".pdf.partial").exists()
    from pypdf import PdfReader

    text = "\n".join(page.extract_text() for page in PdfReader(out).pages)
    assert "Self-attention" in text and "softmax" in text
    assert "\\frac" not in text and "\\sqrt" not in text, "raw TeX: MathJax did not render"
