"""What the expansion measured: compression per language, slow / fast parity, the output files.

Compression is counted per held-out document, without special tokens: ``tokens_per_char`` = tokens /
characters (Colossal-LLaMA-2's table: 1.205 for LLaMA-2 on Chinese, 0.659 after its expansion), and
``tokens_per_char_ratio`` = after / before (below 1: fewer tokens). ``docs_with_more_tokens`` counts the
documents the expanded tokenizer cuts into more tokens than the base; the merge rule makes it 0.
"""

from __future__ import annotations

import json
import os
import shutil

from lakesift.vocab.common import REASONS, padded_size, write_tsv


def is_english(lang: str) -> bool:
    return lang.lower().replace("_", "-").split("-")[0] in ("en", "eng")


def compression(texts_by_lang: dict[str, list[str]], before, after) -> dict[str, dict]:
    """Per language: documents, characters, UTF-8 bytes, tokens before / after and the ratios."""
    out = {}
    for lang, texts in sorted(texts_by_lang.items()):
        b = [len(x) for x in before.encode(texts)]
        a = [len(x) for x in after.encode(texts)]
        chars = sum(len(t) for t in texts)
        nbytes = sum(len(t.encode("utf-8")) for t in texts)
        tb, ta = sum(b), sum(a)
        out[lang] = {
            "docs": len(texts), "chars": chars, "bytes": nbytes, "tokens_before": tb, "tokens_after": ta,
            "chars_per_token_before": _div(chars, tb), "chars_per_token_after": _div(chars, ta),
            "bytes_per_token_before": _div(nbytes, tb), "bytes_per_token_after": _div(nbytes, ta),
            "tokens_per_char_before": _div(tb, chars), "tokens_per_char_after": _div(ta, chars),
            "tokens_per_char_ratio": _div(ta, tb),
            "docs_with_more_tokens": sum(x > y for x, y in zip(a, b, strict=True)),
        }
    return out


def english_not_worse(stats: dict[str, dict]) -> bool | None:
    """No English held-out text got more tokens (None when there is no English text)."""
    en = [s for lang, s in stats.items() if is_english(lang)]
    return all(s["tokens_after"] <= s["tokens_before"] for s in en) if en else None


def parity(slow, fast_json: str, texts: list[str], examples: int = 3) -> dict:
    """SentencePiece (slow) against ``tokenizers`` on the same model (fast): documents whose ids differ,
    with the first ``examples`` differences (document, first differing position, pieces around it)."""
    from tokenizers import Tokenizer

    fast = Tokenizer.from_str(fast_json)
    s_ids = slow.encode(texts)
    f_ids = [e.ids for e in fast.encode_batch(texts, add_special_tokens=False)] if texts else []
    bad = [i for i, (a, b) in enumerate(zip(s_ids, f_ids, strict=True)) if a != b]
    shown = []
    for i in bad[:examples]:
        a, b = s_ids[i], f_ids[i]
        k = next((j for j, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        shown.append({"doc": i, "position": k, "text": texts[i][:200],
                      "slow": [slow.processor.id_to_piece(x) for x in a[max(0, k - 2):k + 4]],
                      "fast": [fast.id_to_token(x) for x in b[max(0, k - 2):k + 4]]})
    return {"docs": len(texts), "tokens": sum(len(x) for x in s_ids), "mismatched_docs": len(bad),
            "examples": shown}


def write_outputs(out_dir: str, base, expansion, report: dict) -> None:
    """``tokenizer.json`` (and ``tokenizer.model`` for a SentencePiece base), ``base/`` (the base as it
    was, and its ``tokenizer.json``), ``added_pieces.tsv``, ``dropped_pieces.tsv``, ``report.json``."""
    tok = expansion.tokenizer
    os.makedirs(os.path.join(out_dir, "base"), exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as fh:
        fh.write(tok.hf_json())
    if base.kind == "sentencepiece":
        with open(os.path.join(out_dir, "tokenizer.model"), "wb") as fh:
            fh.write(tok.serialized())
        shutil.copyfile(base.path, os.path.join(out_dir, "base", "tokenizer.model"))
        with open(os.path.join(out_dir, "base", "tokenizer.json"), "w", encoding="utf-8") as fh:
            fh.write(base.base.hf_json())
    else:
        shutil.copyfile(base.path, os.path.join(out_dir, "base", "tokenizer.json"))
    write_tsv(os.path.join(out_dir, "added_pieces.tsv"), ["id", "piece", "text", "freq", "origin", "formed"],
              ((a.id, a.piece, a.text, a.freq, a.origin, a.formed) for a in expansion.added))
    write_tsv(os.path.join(out_dir, "dropped_pieces.tsv"), ["piece", "text", "reason", "origin", "detail"],
              ((d.piece, d.text, d.reason, d.origin, d.detail) for d in expansion.dropped))
    with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh, ensure_ascii=False, indent=2)
        fh.write("\n")


def summary(base, expansion, pad_multiple: int) -> dict:
    """The vocabulary part of ``report.json``."""
    from collections import Counter

    tok = expansion.tokenizer
    by_origin = Counter(a.origin for a in expansion.added)
    return {
        "base": base.path, "base_kind": base.kind, "base_vocab_size": base.vocab_size,
        "vocab_size": tok.vocab_size, "padded_vocab_size": padded_size(tok.vocab_size, pad_multiple),
        "pad_multiple": pad_multiple, "added": len(expansion.added), "added_by_origin": dict(by_origin),
        "dropped": dict(Counter(d.reason for d in expansion.dropped)),
        "dropped_reasons": {r: REASONS[r] for r in sorted({d.reason for d in expansion.dropped})},
        "intermediates": sum(1 for a in expansion.added if a.freq == 0 and a.formed > 0),
        "resplit": expansion.resplit, "reachability_rounds": expansion.rounds,
    }


def _div(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None
