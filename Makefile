# The Rise of Large Language Models: build, test and run the course.
# Every target installs what it needs into .venv first (Python 3.10 or newer).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
export HF_HUB_OFFLINE := 1
# Everything ruff checks and formats: the package, its tests and tools, and the chapters' code.
CODE   := llmcourse tests tools benchmarks scripts _ext book

.PHONY: install data book pdf test lab execute benchmark scaling clean student student-site grade \
        grade-merge guide layout test-site test-colab

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)"
	touch $(STAMP)

install: $(STAMP)

# Fetch, check and cache the offline models and the corpus (about 200 MB, once).
data: install
	$(PY) -m llmcourse.offline --rebuild

# The website, warnings as errors; open _build/html/index.html.
book: install
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"

# The whole book as one PDF, printed from the website by headless Chromium:
# _build/pdf/rise-of-llms.pdf.
pdf: book
	$(PY) tools/make_pdf.py

# Every test: lint, unit tests, nbval over every chapter (all outputs compared), the -W build.
test: data
	@echo "== lint and format (ruff: pyproject.toml; book/ruff.toml keeps chapters to 84 columns) =="
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
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
	$(VENV)/bin/llmcourse-guide

# Our GPT and Llama against Hugging Face's on the same weights (a few minutes, a quiet machine
# gives meaningful ratios); writes benchmarks/results/*.json, shown in chapters 9 and 12.
benchmark: data
	$(PY) benchmarks/gpt_vs_hf.py
	$(PY) benchmarks/llama_vs_hf.py

# Chapter 11's toy scaling experiment; writes llmcourse/data/scaling_results.json.
scaling: data
	$(PY) scripts/scaling_experiment.py

# Teaching kit (llmcourse.teaching; README, "Teaching with it"). The student edition: every
# chapter without its solutions, in student/.
student: install
	$(VENV)/bin/llmcourse-student

# The class website without the solutions: the student edition built as a site, in
# _build/student-site/_build/html (publish this one, not the book).
student-site: student
	rm -rf _build/student-site && mkdir -p _build/student-site/book
	cp _config.yml _toc.yml _build/student-site/ && cp -r _static _ext _extra _build/student-site/
	cp student/*.ipynb book/intro.md book/teacher_guide.md _build/student-site/book/
	$(VENV)/bin/jupyter-book build _build/student-site --path-output _build/student-site
	@echo "The class website: open $(CURDIR)/_build/student-site/_build/html/index.html"

# Grade a class: make grade SUBMISSIONS=folder [OUT=grades] [JOBS=2] [TIMEOUT=600]
# (each notebook in a bubblewrap sandbox; writes OUT/class.csv, OUT/feedback/; resumes).
grade: data
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder [OUT=grades] [JOBS=2]"; exit 2; }
	$(VENV)/bin/llmcourse-grade $(SUBMISSIONS) --out $(or $(OUT),grades) --jobs $(or $(JOBS),1) \
		--timeout $(or $(TIMEOUT),600)

# Combine shards graded elsewhere (grading/slurm.sh, grading/k8s-job.yaml): make grade-merge
# SHARDS="grades/shard-*" OUT=grades/class
grade-merge: install
	$(VENV)/bin/llmcourse-grade merge $(SHARDS) --out $(or $(OUT),grades/class)

# Regenerate book/teacher_guide.md after changing or re-executing a chapter.
guide: install
	$(VENV)/bin/llmcourse-guide

# Store each chapter's exercise layout as cell metadata (after adding or moving an exercise).
layout: install
	$(VENV)/bin/llmcourse-layout --write

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
