#!/usr/bin/env python
"""DoReMi on CPU at the debug scale: validation perplexity of main models trained on the baseline
(token-share), uniform and DoReMi mixtures for equal tokens, and the proxy step's cost against a
plain training step, with and without precomputed reference losses.

    python bench/doremi.py [--steps 200] [--main-steps 200] [--global-batch 16]

Data: a lake table of real text in four domains (``source``): Wikipedia articles and State of the
Union speeches (the bundled sample), Shakespeare (tinyshakespeare) and WikiText-2, cut into
documents of about 1,500 characters. Model: 4 layers of width 128 over a byte-level BPE of 4,096
pieces trained on the same text (GPT-NeoX's 50k vocabulary would make the output layer most of a
CPU step). Then ``python -m training.doremi run`` (the dataset job with one
stream per domain and a 10% validation set, the reference on the natural mixture, the proxy) and
``compare`` (three main runs, one seed, scored on the same validation set).

Step cost: tokens/s that the reference run (plain causal LM) and the proxy run (a reference forward
per micro-batch) logged, and a proxy run over the shards with ``ref_loss`` precomputed; medians over
the logging intervals after the first. The peer, the reference implementation
(sangmichaelxie/doremi), needs Hugging Face's Trainer with a flash-attention build for CUDA and cannot
run on this machine, so the plain step is the yardstick here.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import harness

REPO = harness.REPO
os.environ.setdefault("OMP_NUM_THREADS", "1")
DOC_CHARS = 1500


def corpora(shared: Path) -> dict[str, str]:
    return {"wikipedia": (REPO / "sample" / "text" / "hq" / "wikipedia.txt").read_text(encoding="utf-8"),
            "speeches": (REPO / "sample" / "text" / "hq" / "state_union.txt").read_text(encoding="utf-8"),
            "shakespeare": (shared / "data" / "text" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8"),
            "wikitext": (shared / "data" / "text" / "wikitext2" / "valid.txt").read_text(encoding="utf-8")}


def documents(text: str, limit: int) -> list[str]:
    """Consecutive paragraphs joined up to about ``DOC_CHARS`` characters; at most ``limit`` documents."""
    docs, cur = [], ""
    for para in text.split("\n"):
        if para.strip():
            cur = f"{cur}\n{para}" if cur else para
        if len(cur) >= DOC_CHARS:
            docs.append(cur)
            cur = ""
            if len(docs) >= limit:
                break
    return docs


def build_lake(lake: Path, shared: Path, per_domain: int) -> None:
    from jobs.common.session import get_spark

    spark = get_spark("bench-doremi")
    rows = [(f"{d}-{i:05d}", t, d) for d, text in corpora(shared).items() for i, t in enumerate(documents(text, per_domain))]
    spark.createDataFrame(rows, "doc_id string, text string, source string").write.format("delta") \
        .mode("overwrite").save(str(lake / "docs"))
    spark.stop()
    print(f"lake: {len(rows):,} documents in 4 domains -> {lake / 'docs'}")


SCALE = """name: bench-doremi
model: {d_model: 128, n_layers: 4, n_heads: 4, vocab_size: 4096, seq_len: 128}
total_tokens: 1000000
global_batch: 16
micro_batch: 8
lr: 3.0e-3
warmup: 10
weight_decay: 0.033
z_loss: 1.0e-4
final_lr: 3.0e-5
"""


def small_tokenizer(shared: Path, out: Path) -> Path:
    """A byte-level BPE of 4,096 pieces (EOS ``<|endoftext|>``) trained on the four corpora."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpora(shared).values(), trainer)
    path = out / "tokenizer.json"
    tok.save(str(path))
    return path


def tokens_per_s(run: Path) -> float:
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in recs if r.get("tokens_per_s")][1:]  # the first interval warms up
    return statistics.median(rates)


def main() -> int:
    a = harness.parse_args(__doc__, out="doremi", steps=200, main_steps=200, global_batch=16, per_domain=400,
                           scale="")
    shared, out = Path(a.shared), Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    sys.path.insert(0, str(REPO))
    build_lake(out / "lake", shared, a.per_domain)
    tok = small_tokenizer(shared, out)
    if not a.scale:  # the default: the small model above
        a.scale = str(out / "scale.yaml")
        Path(a.scale).write_text(SCALE, encoding="utf-8")
    py = [sys.executable, "-m", "training.doremi"]
    common = ["--scale", a.scale, "--global-batch", str(a.global_batch), "--log-every", "10"]
    secs, _ = harness.run_job([*py, "run", "--lake", str(out / "lake"), "--table", "docs", "--out", str(out / "dr"),
                               "--tokenizer", str(tok), "--steps", str(a.steps), *common], "doremi run", cwd=REPO)
    print(f"doremi run (data + reference + proxy, {a.steps} steps each): {secs:.0f} s")
    harness.run_job([*py, "compare", "--out", str(out / "dr"), "--steps", str(a.main_steps), *common],
                    "doremi compare", cwd=REPO)
    # the proxy again, reading precomputed reference losses
    dr = out / "dr"
    harness.run_job([*py, "ref-losses", "--reference", str(dr / "reference" / "final"), "--data", str(dr / "data"),
                     "--out", str(out / "data_ref")], "ref-losses", cwd=REPO)
    harness.run_job([sys.executable, "-m", "training.train", "--scale", a.scale, "--data", str(out / "data_ref"),
                     "--mix", "uniform", "--objective", "doremi", "--reference-losses", "--out", str(out / "proxy_pre"),
                     "--steps", str(a.steps), "--global-batch", str(a.global_batch), "--log-every", "10"],
                    "proxy with precomputed reference losses", cwd=REPO)

    c = json.loads((dr / "comparison.json").read_text())
    w = json.loads((dr / "domain_weights.json").read_text())
    domains = sorted(w["train_domain_weights"])
    print(f"\nweights ({a.steps} proxy steps, global batch {a.global_batch}):")
    print(f"{'domain':<14}" + "".join(f" {n:>10}" for n in c["runs"]))
    for d in domains:
        print(f"{d:<14}" + "".join(f" {r['weights'][d]:>10.4f}" for r in c["runs"].values()))
    from training.doremi import print_comparison

    print_comparison(c)  # the table `training.doremi compare` prints, and the best run
    avg = {n: r["validation"]["average_ppl"] for n, r in c["runs"].items()}
    print(harness.ratios("average perplexity vs baseline (below 1: better)",
                         {n: avg[n] / avg["baseline"] for n in avg}, 3))

    plain, live, pre = (tokens_per_s(dr / "reference"), tokens_per_s(dr / "proxy"), tokens_per_s(out / "proxy_pre"))
    print(f"\nstep cost, median tokens/s over logging intervals: plain step {plain:,.0f}; proxy with the reference "
          f"forward {live:,.0f}; proxy with precomputed reference losses {pre:,.0f}")
    print(harness.ratios("proxy step time vs a plain step", {"with reference forward": plain / live,
                                                             "precomputed reference losses": plain / pre}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
