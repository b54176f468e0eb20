"""Packing efficiency of bucketed datasets: Lakesift's bucket packer against the plain packer and a
Colossal-style whole-document packer, on the shared Chinese text tokenized with GPT-NeoX.

    python bench/packing.py --shared ../shared [--seq-len 2048] [--buckets 4] [--groups 2]

Every packer gets the same documents (each file of ``data/zh/text`` a category), each document's tokens
plus EOS:
* **buckets** (``buckets`` in the dataset job; ``udfs.tokenizing.pack_bounded``): documents dealt over the
  buckets per category (as ``jobs.dataset.pack.deal_buckets`` deals them), concatenated per (category,
  bucket, packing group) and cut; each group's last sequence padded. Nothing is lost; the cost is padding;
* **plain** (the dataset job without buckets, ``remainder: drop``, ``packing.groups`` 64 per category, its
  default): concatenated and cut; each group's partial tail dropped. No padding; the cost is lost tokens;
* **whole-document** (Colossal-LLaMA-2's ``ClosedToConstantLengthSplicedDataset`` as we read it): documents
  sorted by (category, length), packed greedily whole into ``seq_len``-token sequences, each padded; a
  document longer than ``seq_len`` truncated (its tail lost). We leave out its drop of the partial pack at
  the end of each 8-sequence buffer, which would only add losses.

Prints, per packer, sequences, padding and lost tokens as shares of the input tokens, and the ratios.
Speed is not compared: the three differ in what they keep, not in how fast they cut arrays.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import harness


def documents(shared: Path, max_docs: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in sorted((shared / "data" / "zh" / "text").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            out[f.name.split(".")[0]] = [json.loads(line)["text"] for _, line in zip(range(max_docs), fh, strict=False)]
    return out


def h(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")


def deal(lengths: list[int], ids: list[str], count: int, seed: int) -> list[int]:
    """The dataset job's deal: runs of ``count`` documents of about the same length, one per bucket."""
    order = sorted(range(len(ids)), key=lambda i: (-lengths[i], h(seed, ids[i]), ids[i]))
    bucket = [0] * len(ids)
    for r in range(0, len(order), count):
        run = sorted(order[r:r + count], key=lambda i: (h(seed, ids[i]), ids[i]))
        for b, i in enumerate(run):
            bucket[i] = b
    return bucket


def main() -> int:
    args = harness.parse_args(__doc__, seq_len=2048, buckets=4, groups=2, plain_groups=64, max_docs=4000, seed=42)
    from tokenizers import Tokenizer

    from udfs.tokenizing import pack, pack_bounded

    tok = Tokenizer.from_file(str(Path(args.shared) / "data" / "tokenizers" / "gpt-neox-20b" / "20B_tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    length = args.seq_len + 1
    cats = documents(Path(args.shared), args.max_docs)
    toks = {c: [e.ids + [eos] for e in tok.encode_batch(ts, add_special_tokens=False)] for c, ts in cats.items()}
    total = sum(len(t) for ts in toks.values() for t in ts)
    n_docs = sum(len(ts) for ts in toks.values())
    print(f"{n_docs:,} documents in {len(toks)} categories, {total:,} tokens (GPT-NeoX + EOS); "
          f"sequences of {length} tokens")
    res = {}

    seqs = pad = 0  # buckets
    for c, ts in toks.items():
        ids = [f"{c}-{i}" for i in range(len(ts))]
        buckets = deal([len(t) for t in ts], ids, args.buckets, args.seed)
        groups = defaultdict(list)
        for i, t in enumerate(ts):
            groups[(buckets[i], h(0, ids[i]) % args.groups)].append((ids[i], t))
        for g in groups.values():
            for _, p, _ in pack_bounded([t for _, t in sorted(g)], length, eos):
                seqs, pad = seqs + 1, pad + p
    res["buckets"] = (seqs, pad, 0)

    seqs = lost = 0  # plain, remainder drop
    for c, ts in toks.items():
        groups = defaultdict(list)
        for i, t in enumerate(ts):
            groups[h(0, f"{c}-{i}") % args.plain_groups].append((f"{c}-{i}", t))
        for g in groups.values():
            for s, _, dropped in pack([t for _, t in sorted(g)], length, "drop", eos):
                seqs, lost = seqs + (s is not None), lost + dropped
    res["plain"] = (seqs, 0, lost)

    seqs = pad = lost = 0  # whole documents, greedy, padded
    for ts in toks.values():
        fill = None
        for t in sorted(ts, key=len):
            n = len(t)
            if n > length:
                lost += n - length
                n = length
            if fill is None or fill + n > length:
                if fill is not None:
                    pad += length - fill
                seqs, fill = seqs + 1, 0
            fill += n
        if fill:
            pad += length - fill
    res["whole-document"] = (seqs, pad, lost)

    print(f"{'packer':16s} {'sequences':>10s} {'padding':>9s} {'lost':>8s} {'kept of input':>14s}")
    for name, (s, p, lo) in res.items():
        print(f"{name:16s} {s:10,d} {100 * p / (s * length):8.2f}% {100 * lo / total:7.2f}% "
              f"{100 * (total - lo) / total:13.2f}%")
    b, pl, wd = res["buckets"], res["plain"], res["whole-document"]
    print(f"buckets vs whole-document: padding share {100 * b[1] / (b[0] * length):.2f}% vs "
          f"{100 * wd[1] / (wd[0] * length):.2f}% ({(wd[1] / (wd[0] * length)) / max(1e-12, b[1] / (b[0] * length)):.1f}x "
          f"less), tokens lost 0 vs {wd[2]:,}; vs plain: tokens lost 0 vs {pl[2]:,} ({100 * pl[2] / total:.2f}%), "
          f"padding {b[1]:,} tokens ({100 * b[1] / (b[0] * length):.2f}% of the bucket sequences)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
