#!/usr/bin/env python
"""GPT-NeoX expanded for Chinese: jobs/expand_vocab.py against the plain script a user would write.

    python bench/vocab_expand.py [--shared ../shared] [--runs 1] [--chars 3000000] [--vocab-size 40000] [--quick]

Text: every document of ../shared/data/zh/text (17 files of real Chinese: poetry, sayings, product
reviews, Debian / LibreOffice / KiCad documentation, man pages, game campaigns; simplified and
traditional), split by a SHA-1 of the text: one document in 20 held out, the rest shuffled by the same
hash and cut to ``--chars`` characters (written once under ``--out``/data as JSONL). English: WikiText-2
(``data/text/wikitext2/valid.txt``), one document per paragraph line.

Both sides start from ``data/tokenizers/gpt-neox-20b/20B_tokenizer.json`` and train a ``tokenizers``
BPE with NeoX's normaliser and pre-tokenizer, ``--vocab-size`` pieces, on the same characters:

* ours: ``python jobs/expand_vocab.py --base NEOX --text train.jsonl --eval-text zh=heldout.jsonl
  --eval-text en=valid.txt`` in a fresh process (Spark start-up and the ``_runs`` record included):
  merges appended below NeoX's, the reachability fixpoint, the report;
* the peer, a fresh Python process running :data:`PEER`: train, append every trained merge whose
  result NeoX lacks (ids from ``get_vocab_size()``, parts checked to be tokens), save. No reachability,
  no report.

Runs alternate (ours, peer, ours, ...) ``--runs`` times; times are medians. Then both tokenizers are
measured here the same way: tokens per Chinese character on the held-out documents (the goal: at least
1.8x fewer than NeoX), the English token change (the goal: at most 1% more), tokens added, dead tokens
(a token that the BPE model does not produce from its own bytes, or that is never formed when the
training text is encoded, not even inside a longer new token: ours removes them, the count it dropped
is printed), and whether ids 0..50280 still mean what they meant in NeoX.
``--quick``: 300,000 characters, 8,000 pieces, one run.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import harness

REPO = harness.REPO
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
NEOX = Path("data") / "tokenizers" / "gpt-neox-20b" / "20B_tokenizer.json"

# the closest thing a user would write: tokenizers' own trainer, its merges appended to NeoX's
PEER = """
import json, sys, time
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
t0 = time.perf_counter()
base_path, train_path, vocab_size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
texts = [json.loads(line)["text"] for line in open(train_path, encoding="utf-8")]
base = Tokenizer.from_file(base_path)
new = Tokenizer(models.BPE())
new.normalizer, new.pre_tokenizer = base.normalizer, base.pre_tokenizer
new.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                                   initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
data = json.load(open(base_path, encoding="utf-8"))
vocab, merges = data["model"]["vocab"], data["model"]["merges"]
next_id = base.get_vocab_size()
for m in json.loads(new.to_str())["model"]["merges"]:
    a, b = m.split(" ", 1) if isinstance(m, str) else m
    if a + b not in vocab and a in vocab and b in vocab:
        vocab[a + b] = next_id
        next_id += 1
        merges.append(f"{a} {b}" if isinstance(merges[0], str) else [a, b])
with open(out, "w", encoding="utf-8") as fh:
    json.dump(data, fh, ensure_ascii=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "added": next_id - base.get_vocab_size()}))
"""


def prepare(shared: Path, out: Path, chars: int) -> tuple[Path, Path, Path, int]:
    """train.jsonl (``chars`` characters), heldout.jsonl (1 in 20 documents), the English file."""
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    train, held = data / f"train-{chars}.jsonl", data / "heldout.jsonl"
    if not train.exists():
        docs = []
        for f in sorted((shared / "data" / "zh" / "text").glob("*.jsonl.gz")):
            with gzip.open(f, "rt", encoding="utf-8") as fh:
                docs += [json.loads(line)["text"] for line in fh]
        keyed = sorted((hashlib.sha1(d.encode()).hexdigest(), d) for d in docs if d.strip())
        held_docs = [d for k, d in keyed if int(k[:8], 16) % 20 == 0]
        rows, n = [], 0
        for _, d in (x for x in keyed if int(x[0][:8], 16) % 20 != 0):
            if n >= chars:
                break
            rows.append(d[:chars - n])
            n += len(rows[-1])
        for path, texts in ((train, rows), (held, held_docs)):
            with open(path, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    n = sum(len(json.loads(line)["text"]) for line in open(train, encoding="utf-8"))
    return train, held, shared / "data" / "text" / "wikitext2" / "valid.txt", n


def run_ours(base: Path, train: Path, held: Path, english: Path, out: Path, chars: int, vocab_size: int) -> float:
    cmd = [sys.executable, str(REPO / "jobs" / "expand_vocab.py"), "--base", str(base), "--text", str(train),
           "--out", str(out / "ours"), "--lake", str(out / "lake"), "--eval-text", f"zh={held}",
           "--eval-text", f"en={english}", "--set", f"sample.max_chars={chars}", "--set", "sample.heldout_fraction=0",
           "--set", "sample.heldout_max_chars=0", "--set", f"candidates.vocab_size={vocab_size}",
           "--set", "eval.max_chars=100000000"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + (os.pathsep + os.environ["PYTHONPATH"]
                                                    if os.environ.get("PYTHONPATH") else ""))
    seconds, _ = harness.run_job(cmd, "jobs/expand_vocab.py", env=env)
    return seconds


def run_peer(base: Path, train: Path, out: Path, vocab_size: int) -> float:
    out.mkdir(parents=True, exist_ok=True)
    seconds, _ = harness.run_job([sys.executable, "-c", PEER, str(base), str(train), str(vocab_size),
                                  str(out / "peer.json")], "peer")
    return seconds


def measure(path: Path, base_tok, train: list[str], held: list[str], english: list[str]) -> dict:
    """Tokens per character, English tokens, added and dead tokens, old ids: the same way for both."""
    import numpy as np
    from tokenizers import Tokenizer

    from lakesift.vocab.bpe import token_bytes

    tok = Tokenizer.from_file(str(path))
    n_old = base_tok.get_vocab_size()
    data = json.loads(path.read_text(encoding="utf-8"))
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    n_base_merges = len(json.loads(base_tok.to_str())["model"]["merges"])
    parts = {a + b: (a, b) for a, b in merges[n_base_merges:]}
    added = list(parts)
    ids = {t: tok.token_to_id(t) for t in added}

    def count(t, texts):
        return sum(len(e.ids) for e in t.encode_batch(texts, add_special_tokens=False))

    flat = np.concatenate([np.asarray(e.ids) for e in tok.encode_batch(train, add_special_tokens=False)])
    final = np.bincount(flat, minlength=max(ids.values(), default=0) + 1)
    formed = Counter({t: int(final[ids[t]]) for t in added})
    for t in reversed(added):  # a merge's parts come before it: push each token's count down its chain
        for part in parts[t]:
            if part in parts:
                formed[part] += formed[t]
    dead = 0
    for t in added:
        alone = [x.id for x in tok.model.tokenize(t)] == [ids[t]]
        try:
            alone = alone and tok.encode(token_bytes(t).decode("utf-8"), add_special_tokens=False).ids == [ids[t]]
        except UnicodeDecodeError:
            pass
        dead += not alone or formed[t] == 0
    return {"added": len(added), "dead": dead,
            "zh_tokens": count(tok, held), "en_tokens": count(tok, english),
            "old_ids_unchanged": all(base_tok.id_to_token(i) == tok.id_to_token(i) for i in range(n_old))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "vocab_expand"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--chars", type=int, default=3_000_000)
    ap.add_argument("--vocab-size", type=int, default=40_000)
    ap.add_argument("--quick", action="store_true", help="300,000 characters, 8,000 pieces, one run")
    args = ap.parse_args()
    if args.quick:
        args.chars, args.vocab_size, args.runs = 300_000, 8_000, 1
    shared, out = Path(args.shared), Path(args.out)
    base = shared / NEOX
    train, held, english, n_chars = prepare(shared, out, args.chars)
    print(f"GPT-NeoX + a BPE of {args.vocab_size:,} pieces trained on {n_chars:,} characters of "
          f"{shared / 'data/zh/text'}; {os.cpu_count()} cores, {args.runs} run(s) each, alternating")
    ours_s, peer_s = [], []
    for _ in range(args.runs):
        ours_s.append(run_ours(base, train, held, english, out, n_chars, args.vocab_size))
        peer_s.append(run_peer(base, train, out / "peer", args.vocab_size))

    from tokenizers import Tokenizer

    t0 = time.perf_counter()
    base_tok = Tokenizer.from_file(str(base))
    train_texts = [json.loads(line)["text"] for line in open(train, encoding="utf-8")]
    held_texts = [json.loads(line)["text"] for line in open(held, encoding="utf-8")]
    en_texts = [line for line in english.read_text(encoding="utf-8").splitlines() if line.strip()]
    zh_chars = sum(len(t) for t in held_texts)
    neox = {"zh_tokens": sum(len(e.ids) for e in base_tok.encode_batch(held_texts, add_special_tokens=False)),
            "en_tokens": sum(len(e.ids) for e in base_tok.encode_batch(en_texts, add_special_tokens=False))}
    rows = {"ours (expand_vocab)": measure(out / "ours" / "tokenizer.json", base_tok, train_texts, held_texts,
                                           en_texts),
            "peer (plain script)": measure(out / "peer" / "peer.json", base_tok, train_texts, held_texts, en_texts)}
    report = json.loads((out / "ours" / "report.json").read_text(encoding="utf-8"))
    print(f"(measured in {time.perf_counter() - t0:.0f} s: {len(held_texts):,} held-out Chinese documents, "
          f"{zh_chars:,} characters; {len(en_texts):,} English paragraphs)\n")
    print(f"{'':22s} {'added':>7s} {'dead':>6s} {'removed':>8s} {'zh tok/char':>12s} {'zh fewer':>9s} "
          f"{'en tokens':>10s} {'en change':>10s} {'old ids':>8s} {'seconds':>8s}")
    print(f"{'NeoX':22s} {'-':>7s} {'-':>6s} {'-':>8s} {neox['zh_tokens'] / zh_chars:12.4f} {'-':>9s} "
          f"{neox['en_tokens']:10,d} {'-':>10s} {'-':>8s} {'-':>8s}")
    for (name, r), secs in zip(rows.items(), (ours_s, peer_s), strict=True):
        removed = sum(report["dropped"].values()) if name.startswith("ours") else 0
        r["zh_fewer"] = neox["zh_tokens"] / r["zh_tokens"]
        r["en_change"] = r["en_tokens"] / neox["en_tokens"] - 1
        r["seconds"] = statistics.median(secs)
        print(f"{name:22s} {r['added']:7,d} {r['dead']:6,d} {removed:8,d} {r['zh_tokens'] / zh_chars:12.4f} "
              f"{r['zh_fewer']:8.2f}x {r['en_tokens']:10,d} {100 * r['en_change']:+9.2f}% "
              f"{'same' if r['old_ids_unchanged'] else 'CHANGED':>8s} {r['seconds']:8.1f}")
    ours = rows["ours (expand_vocab)"]
    met = ours["zh_fewer"] >= 1.8 and ours["en_change"] <= 0.01
    print(f"\ngoal (>= 1.8x fewer tokens per Chinese character, <= 1% more English tokens): "
          f"{'met' if met else 'NOT met'} ({ours['zh_fewer']:.2f}x, {100 * ours['en_change']:+.2f}%)")
    print(f"ours dropped {sum(report['dropped'].values()):,}: "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(report["dropped"].items()))
          + f"; {report['intermediates']:,} kept only as intermediates; stages "
          + ", ".join(f"{k} {v:.1f} s" for k, v in report["seconds"].items()))
    print(harness.ratios("time", {"ours / peer": ours["seconds"] / rows["peer (plain script)"]["seconds"]}))
    (out / "results.json").write_text(json.dumps({"chars": n_chars, "vocab_size": args.vocab_size, "neox": neox,
                                                  "zh_chars": zh_chars, "rows": rows}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
