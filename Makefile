# The Rise of Large Language Models: build, test and run the course.
# Every target installs what it needs into .venv first (Python 3.10 or newer).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
export HF_HUB_OFFLINE := 1

.PHONY: install data book test lab execute benchmark scaling clean student grade guide test-site test-colab

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)"
	touch $(STAMP)

install: $(STAMP)

# Fetch, check and cache the offline models and the corpus (about 200 MB, once).
data: install
	$(PY) -m llmcourse.offline

# The website, warnings as errors; open _build/html/index.html.
book: install
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"

# Every test: unit tests, nbval over every chapter (all outputs compared), the -W build.
test: data
	@echo "== unit tests (with the Colab-like fresh environment) =="
	LLMCOURSE_COLAB_TEST=1 $(PY) -m pytest tests
	@echo "== nbval: every chapter re-executed, every output compared =="
	$(PY) -m pytest book $(NBVAL)
	@echo "== the website, warnings as errors =="
	$(MAKE) book

# The chapters in JupyterLab.
lab: data
	$(VENV)/bin/jupyter lab book/

# Re-execute chapters in place (all, or NB=book/01_rise_of_llms.ipynb) and record timings.
execute: data
	$(PY) tools/execute_notebooks.py $(NB)
	$(PY) tools/teacher_guide.py

# Our GPT and Llama against Hugging Face's on the same weights (a few minutes, a quiet machine
# gives meaningful ratios); writes benchmarks/results/*.json, shown in chapters 9 and 12.
benchmark: data
	$(PY) benchmarks/gpt_vs_hf.py
	$(PY) benchmarks/llama_vs_hf.py

# Chapter 11's toy scaling experiment; writes llmcourse/data/scaling_results.json.
scaling: data
	$(PY) scripts/scaling_experiment.py

# Teaching kit. The student edition: every chapter without its solutions, in student/.
student: install
	$(PY) tools/student_edition.py

# Grade completed notebooks: make grade SUBMISSIONS=folder-or-notebook [CSV=grades.csv]
grade: data
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=path [CSV=out.csv]"; exit 2; }
	$(PY) tools/grade.py $(SUBMISSIONS) $(if $(CSV),--csv $(CSV)) --timeout $(or $(TIMEOUT),600)

# Regenerate book/teacher_guide.md after changing or re-executing a chapter.
guide: install
	$(PY) tools/teacher_guide.py

# The website in headless Chromium (needs: apt-get install -y chromium chromium-driver);
# screenshots go to _build/screenshots. Part of make test when Chromium is installed.
test-site: install
	$(PY) -m pytest tests/test_website.py -v

# A Colab-like fresh environment installs the package and runs a chapter (about a minute;
# part of make test).
test-colab: data
	LLMCOURSE_COLAB_TEST=1 $(PY) -m pytest tests/test_colab.py -v

clean:
	rm -rf _build $(VENV)
