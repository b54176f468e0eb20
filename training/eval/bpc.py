"""``python -m training.eval.bpc``: bits per character of several checkpoints, each with its own tokenizer,
on held-out text per language: the measure that compares models across a vocabulary expansion (token
perplexity would favour the tokenizer with more tokens per character).

    python -m training.eval.bpc --model before=runs/base/final@gpt-neox.json \\
        --model after=runs/cpt/stage-3-replay/final@vocab/tokenizer.json \\
        --text zh=../shared/data/zh/text/debian-faq-zh-cn.jsonl.gz --text en=sample/text/hq/wikipedia.txt \\
        --out report.json

A model is ``NAME=CHECKPOINT[@TOKENIZER]`` (an export folder, a ``step-N`` checkpoint or a Hugging Face
folder; the tokenizer defaults to the checkpoint's own ``tokenizer.json``, then GPT-NeoX's). A text is
``LANG=PATH``: a ``.txt`` file (one document per blank-line-separated block), a ``.jsonl`` / ``.jsonl.gz``
file with a ``text`` field, or a folder of them; ``--max-chars`` caps each language (default 200,000).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path


def read_texts(path: str, max_chars: int) -> list[str]:
    """Documents of a text / JSONL(.gz) file or a folder of them (sorted), up to ``max_chars`` in all."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    out, total = [], 0
    for f in files:
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rt", encoding="utf-8") as fh:
            if ".jsonl" in f.name or f.suffix == ".json":
                docs = (json.loads(line).get("text") or "" for line in fh if line.strip())
            else:
                docs = (b for b in fh.read().split("\n\n"))
            for d in docs:
                d = d.strip()
                if not d:
                    continue
                d = d[: max_chars - total]
                out.append(d)
                total += len(d)
                if total >= max_chars:
                    return out
    if not out:
        raise SystemExit(f"--text {path}: no text found")
    return out


def pair(spec: str, what: str) -> tuple[str, str]:
    name, sep, value = spec.partition("=")
    if not sep or not name or not value:
        raise SystemExit(f"--{what} {spec}: expected NAME=VALUE")
    return name, value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.eval.bpc", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__[__doc__.index("A model"):])
    ap.add_argument("--model", action="append", required=True, metavar="NAME=CKPT[@TOKENIZER]")
    ap.add_argument("--text", action="append", required=True, metavar="LANG=PATH")
    ap.add_argument("--max-chars", type=int, default=200_000, help="characters per language (default 200000)")
    ap.add_argument("--window", type=int, help="tokens per scored window (default: the model's context)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    from training.eval.load import load_checkpoint, load_tokenizer
    from training.eval.scorer import bits_per_char

    texts = {lang: read_texts(path, args.max_chars) for lang, path in map(lambda s: pair(s, "text"), args.text)}
    results: dict[str, dict] = {}
    for name, spec in map(lambda s: pair(s, "model"), args.model):
        ckpt, _, tok_path = spec.partition("@")
        model, ctx, kind = load_checkpoint(ckpt)
        tok = load_tokenizer(tok_path or None, ckpt)
        eos = next((i for i in map(tok.token_to_id, ("<|endoftext|>", "</s>", "<eos>")) if i is not None), None)
        results[name] = {"checkpoint": ckpt, "kind": kind, "tokenizer": tok_path or "(the checkpoint's)",
                         "vocab_size": tok.get_vocab_size(with_added_tokens=True)}
        for lang, docs in texts.items():
            r = bits_per_char(model, tok, docs, args.window or ctx, eos)
            results[name][lang] = r
            print(f"{name:12s} {lang:4s} bits/char {r['bits_per_char']:.4f}  tokens/char {r['tokens_per_char']:.3f}  "
                  f"({r['chars']:,} chars, {r['tokens']:,} tokens)", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
