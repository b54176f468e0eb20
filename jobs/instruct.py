"""Post-training data: instruction (SFT) and preference (DPO) examples in the lake, rendered with a chat
template, tokenized with a loss mask and written as MDS for the trainer.

    python jobs/instruct.py import --kind sft|preferences --input PATH [PATH ...] --lake LAKE \\
        [--source NAME] [--mode append|overwrite]
    python jobs/instruct.py build --kind sft|dpo --lake LAKE --out OUT --tokenizer SPEC [--template FILE] \\
        [--seq-len 1024] [--packing bfd|pad] [--mask assistant|last|all] [--eval-dir DIR] [--where SQL] [--seed 42]

**import** reads JSONL (``.jsonl``, ``.jsonl.gz``, ``.ndjson``, ``.json``: lines, or one JSON array) and
Parquet files, or folders of them, on the executors (one task per file) into ``LAKE/sft_examples`` or
``LAKE/preferences`` (schemas: ``jobs/common/lake.py``). The shape is detected per row:

* SFT: OpenAI ``messages`` ``[{role, content}]`` (content may be a list of ``{type: text, text}`` parts);
  ShareGPT ``conversations`` ``[{from, value}]`` (human/user → user, gpt/assistant/model/chatgpt/bot →
  assistant, system → system); Alpaca ``instruction`` (+ ``input``, joined with a blank line when not
  empty) / ``output`` (+ ``system``); ``prompt`` / ``completion`` (strings or message lists).
* preferences: ``prompt`` (a string = one user turn, or messages), ``chosen`` and ``rejected`` (alias
  ``reject``) as strings (= one assistant turn) or assistant messages (TRL's conversational shape);
  without a prompt, ``chosen`` / ``rejected`` as full conversations sharing their first turns (TRL's
  implicit prompt); ``chosen_score`` / ``rejected_score`` (or ``score_chosen`` / ``score_rejected``)
  and ``scorer`` (or ``judge``) when given.

A row's ``id`` is kept (as a string), else it is a stable sha1 of its normalised content; ``source`` is
``--source``, else the row's ``source``, else the file's name; ``round`` the row's ``round`` when it is an
integer; every other field goes to ``meta`` (JSON). Every row is accounted for: accepted + rejected =
rows read, each rejection in ``LAKE/instruct_rejects`` (file, 1-based row, reason, the raw row cut to 2000
characters). Reasons: ``bad_json``, ``bad_encoding`` (a line that is not UTF-8 is refused, not repaired;
a BOM is dropped), ``unknown_shape`` (the keys seen), ``bad_role``, ``empty_content``,
``no_assistant_turn`` / ``last_turn_not_assistant`` (SFT), ``missing_prompt``, ``missing_chosen`` /
``missing_rejected``, ``identical_pair``, ``duplicate_id`` (a second row with an id seen in this import,
or, with ``--mode append``, already in the table), and ``unreadable_file`` (a file that cannot be read
on, e.g. a corrupt gzip or Parquet file: one rejection for the file, after the rows read before the error).

**build** reads the table (pinned, ``--where`` applied), drops examples that share word n-grams with the
evaluation sets (``jobs/dataset/decontam.py``; reason ``contaminated``), and on the executors renders and
tokenizes each example with a pickled :class:`lakesift.chat.ChatTokenizer`, packs (SFT) and writes MDS
shard groups through :mod:`jobs.dataset.writers.instruct`; the driver merges them into ``OUT/index.json``
(``StreamingDataset(local=OUT)``) and writes ``OUT/manifest.json``. Examples go to ``groups`` packing
groups by a seeded hash of their id and follow their id inside one, so the same input and seed give the
same shards on any cluster. The layouts (the trainer's contract), L = seq_len + 1:

* ``kind: sft``: ``tokens`` uint32[L], ``loss_mask`` uint8[L] (1: token t is a target, predicted from
  ``tokens[:t]``; 0 at every example start and on the padding), ``starts`` int32[] (example starts, 0
  first), ``pad`` (pad_id tokens at the end), ``n_examples``. ``--packing bfd``: examples packed whole by
  best-fit decreasing within a group; ``pad``: one example per sequence. An example longer than L keeps its
  first L tokens (``truncated``); one with no target token left is refused (``no_target_tokens``).
* ``kind: dpo``: ``chosen`` / ``rejected`` uint32[] (prompt + completion), ``prompt_len`` (the shared
  prefix), ``pair_id``. Completions are cut to L tokens in all, keep-start; a prompt of seq_len tokens or
  more is refused (``prompt_too_long``), a pair equal after the cut too (``identical_after_truncation``).

Build rejections (kind ``build-sft`` / ``build-dpo``): ``template_error`` (the template raised, or the
assistant turns cannot be located; the message in ``raw``), ``no_target_tokens``, ``prompt_too_long``,
``identical_after_truncation``, ``contaminated``.

Pure Python (no Spark), for other code and fast tests: :func:`normalise_sft`, :func:`normalise_preference`,
:func:`read_file_rows`, :func:`encode_sft_example`, :func:`pack_examples`, :func:`encode_dpo_example`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

if __package__ in (None, ""):  # python jobs/instruct.py: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.common import runs  # noqa: E402
from jobs.common.job import Context, Job, UsageError  # noqa: E402
from jobs.dataset.config import Decontamination  # noqa: E402
from lakesift.config import ConfigError, StrictModel  # noqa: E402

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
RAW_CHARS = 2000
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "model": "assistant", "chatgpt": "assistant", "bot": "assistant", "system": "system"}
SFT_SHAPE_KEYS = {"messages", "conversations", "instruction", "input", "output", "system", "prompt", "completion"}
PREF_SHAPE_KEYS = {"prompt", "chosen", "rejected", "reject", "chosen_score", "rejected_score", "score_chosen",
                   "score_rejected", "scorer", "judge"}
COMMON_KEYS = {"id", "source", "round"}
MSG = "array<struct<role:string,content:string>>"


class Reject(Exception):
    """A row (or example) refused, with its reason (a short name) and a detail."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


# ============================================================================ import: rows → examples

def _content(value: Any, where: str) -> str:
    if isinstance(value, list):  # OpenAI content parts
        parts = [p.get("text", "") if isinstance(p, dict) else p for p in value]
        if not all(isinstance(p, str) for p in parts):
            raise Reject("empty_content", f"{where}: content parts without text")
        value = "".join(parts)
    if value is None:
        raise Reject("empty_content", f"{where}: no content")
    if not isinstance(value, str):
        value = str(value)
    if not value.strip():
        raise Reject("empty_content", where)
    return value


def _messages(value: Any, where: str, role_key: str = "role", content_key: str = "content",
              roles: dict[str, str] | None = None) -> list[dict]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise Reject("empty_content", f"{where}: no messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise Reject("unknown_shape", f"{where}[{i}] is not an object")
        role = m.get(role_key)
        role = (roles.get(str(role).lower()) if roles is not None else (role if role in ROLES else None)) \
            if isinstance(role, str) else None
        if role is None:
            raise Reject("bad_role", f"{where}[{i}].{role_key} = {m.get(role_key)!r}")
        out.append({"role": role, "content": _content(m.get(content_key), f"{where}[{i}]")})
    return out


def _text_or_messages(value: Any, where: str, role: str) -> list[dict]:
    if isinstance(value, str) or value is None:
        return [{"role": role, "content": _content(value, where)}]
    return _messages(value, where)


def _meta(row: dict, used: set[str]) -> str | None:
    rest = {k: v for k, v in row.items() if k not in used and k not in COMMON_KEYS}
    return json.dumps(rest, ensure_ascii=False, sort_keys=True, default=str) if rest else None


def _round(row: dict) -> int | None:
    v = row.get("round")
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if f == int(f) else None


def _digest(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def _row_id(row: dict, *content: Any) -> str:
    v = row.get("id")
    if v is not None and str(v).strip():
        return str(v)
    return _digest(*content)


def normalise_sft(row: dict) -> dict:
    """An SFT row of any supported shape as ``{id, messages, meta, round}``; :class:`Reject` otherwise."""
    if not isinstance(row, dict):
        raise Reject("bad_json", "not a JSON object")
    if row.get("messages") is not None:
        msgs, used = _messages(row["messages"], "messages"), {"messages"}
    elif row.get("conversations") is not None:
        msgs = _messages(row["conversations"], "conversations", "from", "value", SHAREGPT_ROLES)
        used = {"conversations"}
    elif "instruction" in row and "output" in row:
        inst = _content(row["instruction"], "instruction")
        extra = row.get("input")
        if isinstance(extra, str) and extra.strip():
            inst = f"{inst}\n\n{extra}"
        msgs = [{"role": "user", "content": inst}, {"role": "assistant", "content": _content(row["output"], "output")}]
        if isinstance(row.get("system"), str) and row["system"].strip():
            msgs.insert(0, {"role": "system", "content": row["system"]})
        used = {"instruction", "input", "output", "system"}
    elif "prompt" in row and "completion" in row:
        msgs = _text_or_messages(row["prompt"], "prompt", "user") + \
            _text_or_messages(row["completion"], "completion", "assistant")
        used = {"prompt", "completion"}
    else:
        raise Reject("unknown_shape", "keys: " + ", ".join(sorted(map(str, row))))
    if not any(m["role"] == "assistant" for m in msgs):
        raise Reject("no_assistant_turn")
    if msgs[-1]["role"] != "assistant":
        raise Reject("last_turn_not_assistant", f"last turn: {msgs[-1]['role']}")
    return {"id": _row_id(row, "sft", msgs), "messages": msgs, "meta": _meta(row, used), "round": _round(row)}


def _score(row: dict, *keys: str) -> float | None:
    for k in keys:
        v = row.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def normalise_preference(row: dict) -> dict:
    """A preference row as ``{id, prompt, chosen, rejected, meta, round, chosen_score, rejected_score,
    scorer}``; :class:`Reject` otherwise."""
    if not isinstance(row, dict):
        raise Reject("bad_json", "not a JSON object")
    rej_key = "rejected" if row.get("rejected") is not None else "reject"
    has = {k: row.get(k) is not None for k in ("prompt", "chosen")} | {"rejected": row.get(rej_key) is not None}
    if not any(has.values()):
        raise Reject("unknown_shape", "keys: " + ", ".join(sorted(map(str, row))))
    if not has["chosen"]:
        raise Reject("missing_chosen")
    if not has["rejected"]:
        raise Reject("missing_rejected")
    if has["prompt"]:
        prompt = _text_or_messages(row["prompt"], "prompt", "user")
        chosen = _text_or_messages(row["chosen"], "chosen", "assistant")
        rejected = _text_or_messages(row[rej_key], rej_key, "assistant")
    else:  # TRL's implicit prompt: two conversations sharing their first turns
        if isinstance(row["chosen"], str) or isinstance(row[rej_key], str):
            raise Reject("missing_prompt", "chosen / rejected are strings and there is no prompt")
        c, r = _messages(row["chosen"], "chosen"), _messages(row[rej_key], rej_key)
        n = 0
        while n < min(len(c), len(r)) - 1 and c[n] == r[n]:
            n += 1
        if n == 0:
            raise Reject("missing_prompt", "no prompt, and chosen / rejected share no first turns")
        prompt, chosen, rejected = c[:n], c[n:], r[n:]
    if prompt[-1]["role"] == "assistant":
        raise Reject("bad_role", "the prompt ends with an assistant turn")
    for name, comp in (("chosen", chosen), (rej_key, rejected)):
        bad = [m["role"] for m in comp if m["role"] != "assistant"]
        if bad:
            raise Reject("bad_role", f"{name}: a completion turn with role {bad[0]!r}")
    if [m["content"].strip() for m in chosen] == [m["content"].strip() for m in rejected]:
        raise Reject("identical_pair")
    used = {"prompt", "chosen", rej_key, "chosen_score", "rejected_score", "score_chosen", "score_rejected",
            "scorer", "judge"}
    scorer = row.get("scorer", row.get("judge"))
    return {"id": _row_id(row, "pref", prompt, chosen, rejected), "prompt": prompt, "chosen": chosen,
            "rejected": rejected, "meta": _meta(row, used), "round": _round(row),
            "chosen_score": _score(row, "chosen_score", "score_chosen"),
            "rejected_score": _score(row, "rejected_score", "score_rejected"),
            "scorer": None if scorer is None else str(scorer)}


def _raw(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        value = bytes(value[:RAW_CHARS * 4]).decode("utf-8", errors="replace")
    elif not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return value[:RAW_CHARS]


def file_source(path: str) -> str:
    """``data/alpaca_gpt4.jsonl.gz`` → ``alpaca_gpt4``."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for suffix in sorted(JSON_SUFFIXES + PARQUET_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def read_file_rows(path: str) -> Iterator[tuple[int, Any, Any]]:
    """``(row number, parsed row or Reject, raw)`` of a JSONL / JSON / Parquet file. Row numbers are
    1-based lines (blank lines are skipped, not rows) or Parquet rows; an unreadable file (or the rest of
    one, after a read error) is one ``Reject("unreadable_file")``."""
    from lakesift.io import open_binary

    low = path.lower()
    n = 0
    if low.endswith(PARQUET_SUFFIXES):
        try:
            import pyarrow.parquet as pq

            with open_binary(path) as fh:
                pf = pq.ParquetFile(fh)
                for batch in pf.iter_batches(batch_size=1024):
                    for row in batch.to_pylist():
                        n += 1
                        yield n, row, row
        except Exception as exc:
            yield n + 1, Reject("unreadable_file", f"{type(exc).__name__}: {exc}"), f"{type(exc).__name__}: {exc}"
        return
    try:
        with open_binary(path) as raw_fh:
            fh = gzip.GzipFile(fileobj=raw_fh) if low.endswith(".gz") else raw_fh
            first = fh.peek(64)[:64] if hasattr(fh, "peek") else b""
            if first.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):  # one JSON array
                data = fh.read()
                try:
                    rows = json.loads(data.decode("utf-8-sig"))
                except UnicodeDecodeError as exc:
                    yield 1, Reject("bad_encoding", str(exc)), data
                    return
                except ValueError as exc:
                    yield 1, Reject("bad_json", str(exc)), data
                    return
                for row in rows:
                    n += 1
                    yield n, row, row
                return
            for line in fh:
                n += 1
                if not line.strip():
                    continue
                line = line.rstrip(b"\r\n")
                try:
                    text = line.decode("utf-8-sig" if n == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    yield n, Reject("bad_encoding", str(exc)), line
                    continue
                try:
                    yield n, json.loads(text), text
                except ValueError as exc:
                    yield n, Reject("bad_json", str(exc)), text
    except Exception as exc:  # a corrupt gzip, a file that vanished: the file is refused from here on
        yield n + 1, Reject("unreadable_file", f"{type(exc).__name__}: {exc}"), f"{type(exc).__name__}: {exc}"


def import_rows(path: str, kind: str, source: str | None) -> Iterator[dict]:
    """One output record per row of ``path`` (accepted: ``reason`` None)."""
    normalise = normalise_sft if kind == "sft" else normalise_preference
    default_source = source or file_source(path)
    for n, parsed, raw in read_file_rows(path):
        rec = {"file": path, "row": n, "reason": None, "raw": None, "id": None, "source": default_source}
        if isinstance(parsed, dict) and not source and isinstance(parsed.get("source"), str) and parsed["source"]:
            rec["source"] = parsed["source"]
        try:
            if isinstance(parsed, Reject):
                raise parsed
            rec.update(normalise(parsed))
        except Reject as exc:
            rec.update(reason=exc.reason, raw=_raw(raw) if exc.reason != "unreadable_file" else _raw(exc.detail))
            if isinstance(parsed, dict) and parsed.get("id") is not None:
                rec["id"] = str(parsed["id"])
        yield rec


IMPORT_SCHEMA = (f"file string, row long, id string, source string, reason string, raw string, messages {MSG}, "
                 f"prompt {MSG}, chosen {MSG}, rejected {MSG}, meta string, round int, chosen_score double, "
                 "rejected_score double, scorer string")


def import_task(kind: str, source: str | None):
    """``mapInArrow``: file paths in, one record per row read out (:data:`IMPORT_SCHEMA`)."""

    def task(batches):
        import pyarrow as pa

        msg = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        schema = pa.schema([("file", pa.string()), ("row", pa.int64()), ("id", pa.string()), ("source", pa.string()),
                            ("reason", pa.string()), ("raw", pa.string()), ("messages", msg), ("prompt", msg),
                            ("chosen", msg), ("rejected", msg), ("meta", pa.string()), ("round", pa.int32()),
                            ("chosen_score", pa.float64()), ("rejected_score", pa.float64()),
                            ("scorer", pa.string())])
        for b in batches:
            for path in b.column("file").to_pylist():
                buf = []
                for rec in import_rows(path, kind, source):
                    buf.append(rec)
                    if len(buf) >= 512:
                        yield pa.RecordBatch.from_pylist(buf, schema=schema)
                        buf = []
                if buf:
                    yield pa.RecordBatch.from_pylist(buf, schema=schema)

    return task


def list_inputs(paths: list[str]) -> list[str]:
    """The JSON / Parquet files of ``paths`` (files as given; folders walked, other files skipped)."""
    from lakesift.io import is_local, local_path

    out = []
    for src in paths:
        if is_local(src):
            p = local_path(src)
            if os.path.isfile(p):
                out.append(p)
                continue
            if not os.path.isdir(p):
                raise ConfigError(f"--input {src}: no such file or folder")
            files = sorted(os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs if not f.startswith((".", "_")))
        else:
            import fsspec

            fs, root = fsspec.core.url_to_fs(src)
            proto = src.split("://", 1)[0]
            files = [f"{proto}://{f}" for f in sorted(fs.find(root))] if fs.isdir(root) else [src]
            if not fs.isdir(root):
                out += files
                continue
        found = [f for f in files if f.lower().endswith(JSON_SUFFIXES + PARQUET_SUFFIXES)]
        if not found:
            raise ConfigError(f"--input {src}: no JSONL / JSON / Parquet files in it")
        out += found
    return list(dict.fromkeys(out))


# ============================================================================ build: examples → samples

def encode_sft_example(tok, messages: list[dict], length: int, mask: str = "assistant"
                       ) -> tuple[list[int], list[int], bool]:
    """``(ids, loss_mask, truncated)`` of one conversation, cut to ``length`` tokens keep-start;
    :class:`Reject` (``template_error``, ``no_target_tokens``)."""
    from jinja2.exceptions import TemplateError

    try:
        ids, m = tok.encode_sft(messages, mask=mask)
    except (ValueError, TemplateError) as exc:
        raise Reject("template_error", f"{type(exc).__name__}: {exc}") from None
    truncated = len(ids) > length
    ids, m = ids[:length], m[:length]
    if m:
        m[0] = 0
    if not any(m):
        raise Reject("no_target_tokens", "truncated" if truncated else "no target token")
    return ids, m, truncated


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins (lists of item indices) of total length <= ``capacity``: items longest first (ties by index),
    each into the bin it fills most tightly, else a new bin. Bins in order of creation."""
    import bisect

    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"item {i} of {n} tokens is longer than the sequence ({capacity})")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, b = free.pop(k)
            bins[b].append(i)
            room -= n
        else:
            bins.append([i])
            b, room = len(bins) - 1, capacity - n
        bisect.insort(free, (room, b))
    return bins


def pack_examples(encoded: list[tuple[list[int], list[int]]], length: int, pad_id: int, mode: str = "bfd",
                  seed: int | None = None) -> list[dict]:
    """The SFT samples of ``encoded`` (``(ids, loss_mask)`` pairs, each at most ``length`` tokens):
    ``{"tokens": uint32[length], "loss_mask": uint8[length], "starts": int32[], "pad": int, "n_examples":
    int}``. ``mode`` ``bfd``: examples packed whole by best-fit decreasing (inside a sequence in the order
    they were placed), ``pad``: one per sequence. The mask is 0 at every example start and on the padding.
    With ``seed``, the sequences come in a seeded order (else in packing order)."""
    if mode not in ("bfd", "pad"):
        raise ValueError(f"packing {mode!r}: expected bfd or pad")
    lengths = [len(ids) for ids, _ in encoded]
    bins = best_fit_decreasing(lengths, length) if mode == "bfd" else [[i] for i in range(len(encoded))]
    if seed is not None and len(bins) > 1:
        perm = np.random.default_rng(seed).permutation(len(bins))
        bins = [bins[i] for i in perm]
    out = []
    for members in bins:
        tokens = np.full(length, pad_id, dtype=np.uint32)
        mask = np.zeros(length, dtype=np.uint8)
        starts, at = [], 0
        for i in members:
            ids, m = encoded[i]
            if len(ids) > length or len(m) != len(ids):
                raise ValueError(f"example {i}: {len(ids)} ids, {len(m)} mask values, sequence {length}")
            tokens[at:at + len(ids)] = ids
            mask[at:at + len(ids)] = m
            mask[at] = 0
            starts.append(at)
            at += len(ids)
        out.append({"tokens": tokens, "loss_mask": mask, "starts": np.asarray(starts, dtype=np.int32),
                    "pad": int(length - at), "n_examples": len(members)})
    return out


def encode_dpo_example(tok, prompt: list[dict], chosen: list[dict], rejected: list[dict], seq_len: int,
                       pair_id: str) -> tuple[dict, bool]:
    """``(sample, truncated)``: ``{"chosen": uint32[], "rejected": uint32[], "prompt_len": int, "pair_id":
    str}``, each side at most ``seq_len + 1`` tokens (completions cut keep-start); :class:`Reject`
    (``template_error``, ``prompt_too_long``, ``identical_after_truncation``)."""
    from jinja2.exceptions import TemplateError

    try:
        c, r, n = tok.encode_pair(prompt, chosen, rejected)
    except (ValueError, TemplateError) as exc:
        raise Reject("template_error", f"{type(exc).__name__}: {exc}") from None
    if n >= seq_len:
        raise Reject("prompt_too_long", f"{n} prompt tokens, seq_len {seq_len}")
    length = seq_len + 1
    truncated = len(c) > length or len(r) > length
    c, r = c[:length], r[:length]
    if c == r:
        raise Reject("identical_after_truncation")
    return {"chosen": np.asarray(c, dtype=np.uint32), "rejected": np.asarray(r, dtype=np.uint32),
            "prompt_len": int(n), "pair_id": str(pair_id)}, truncated


BUILD_SCHEMA = "group long, id string, reason string, detail string, samples long, stats string"


def _messages_of(value) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in (value or [])]


def build_group(tok, kind: str, rows: list[dict], cfg, group: int) -> tuple[list[dict], list[tuple], Counter]:
    """``(samples, rejects (id, reason, detail), stats)`` of one packing group's rows (sorted by id)."""
    length = cfg.seq_len + 1
    stats: Counter = Counter()
    rejects: list[tuple] = []
    stats["read"] = len(rows)
    if kind == "sft":
        encoded = []
        for row in rows:
            try:
                ids, m, truncated = encode_sft_example(tok, _messages_of(row["messages"]), length, cfg.mask)
            except Reject as exc:
                rejects.append((row["id"], exc.reason, exc.detail))
                continue
            stats["truncated"] += truncated
            encoded.append((ids, m))
        samples = pack_examples(encoded, length, tok.pad_id, cfg.packing, seed=[cfg.seed, group])
        stats["written"] = len(encoded)
        for s in samples:
            stats["tokens"] += length - s["pad"]
            stats["pad_tokens"] += s["pad"]
            stats["target_tokens"] += int(s["loss_mask"].sum())
        stats["sequences"] = len(samples)
        return samples, rejects, stats
    samples = []
    for row in rows:
        try:
            s, truncated = encode_dpo_example(tok, _messages_of(row["prompt"]), _messages_of(row["chosen"]),
                                              _messages_of(row["rejected"]), cfg.seq_len, row["id"])
        except Reject as exc:
            rejects.append((row["id"], exc.reason, exc.detail))
            continue
        stats["truncated"] += truncated
        stats["tokens"] += len(s["chosen"]) + len(s["rejected"])
        stats["target_tokens"] += len(s["chosen"]) + len(s["rejected"]) - 2 * s["prompt_len"]
        samples.append(s)
    stats["written"] = stats["sequences"] = len(samples)
    return samples, rejects, stats


def build_task(tok, kind: str, cfg, writer):
    """``mapInArrow``: examples sorted by (``_group``, id) in; per group its samples written (one MDS shard
    group) and one stats row out, plus one row per refused example (:data:`BUILD_SCHEMA`)."""

    def task(batches):
        import pyarrow as pa

        out: list[dict] = []

        def flush(group, rows):
            samples, rejects, stats = build_group(tok, kind, rows, cfg, group)
            n = 0
            if samples:
                writer.open(group)
                for s in samples:
                    writer.write(s)
                n = writer.close()
            for pid, reason, detail in rejects:
                out.append({"group": group, "id": pid, "reason": reason, "detail": detail[:RAW_CHARS],
                            "samples": None, "stats": None})
            out.append({"group": group, "id": None, "reason": None, "detail": None, "samples": n,
                        "stats": json.dumps(dict(stats))})

        current, rows = None, []
        for b in batches:
            for row in b.to_pylist():
                if row["_group"] != current:
                    if current is not None:
                        flush(current, rows)
                    current, rows = row["_group"], []
                rows.append(row)
        if current is not None:
            flush(current, rows)
        if out:
            yield pa.RecordBatch.from_pylist(out, schema=pa.schema([
                ("group", pa.int64()), ("id", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
                ("samples", pa.int64()), ("stats", pa.string())]))

    return task


# ============================================================================ the jobs

def spark_errors() -> tuple[type, ...]:
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JJavaError)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)[:400]


def write_rejects(ctx: Context, rows_df, run_id: str) -> None:
    from jobs.common.lake import TABLES

    cols = [c for c, _, _ in TABLES["instruct_rejects"]]
    from pyspark.sql import functions as F

    rows_df = rows_df.select(*[F.col(c).cast(t) for c, t, _ in TABLES["instruct_rejects"]])
    ctx.output("instruct_rejects")
    ctx.lake.replace_run_rows(ctx.spark, rows_df.select(*cols), "instruct_rejects", run_id)


def _reasons_line(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"


class ImportJob(Job):
    name, prog = "instruct_import", "jobs/instruct.py import"
    description = ("Import instruction (SFT) or preference rows from JSONL(.gz) / JSON / Parquet files into the\n"
                   "lake's sft_examples or preferences table; every refused row goes to instruct_rejects with its\n"
                   "reason (shapes and reasons: python -c 'import jobs.instruct; help(jobs.instruct)').")
    epilog = ("Shapes: SFT messages [{role, content}], ShareGPT conversations [{from, value}], Alpaca\n"
              "instruction/input/output, prompt/completion; preferences prompt + chosen + rejected (or reject),\n"
              "strings or messages (TRL's shape).\n"
              "Examples:\n"
              "  python jobs/instruct.py import --kind sft --input data/sft/ --lake ./lake\n"
              "  python jobs/instruct.py import --kind preferences --input prefs.jsonl.gz --source ultrafeedback "
              "--mode overwrite")
    has_config = False
    raw_help = True

    def add_arguments(self, p) -> None:
        p.add_argument("--kind", required=True, choices=["sft", "preferences"],
                       help="sft → table sft_examples; preferences → table preferences")
        p.add_argument("--input", required=True, nargs="+", metavar="PATH",
                       help="JSONL / JSONL.gz / JSON / Parquet files or folders of them (walked)")
        p.add_argument("--source", help="the source name of every row (default: the row's source field, else the "
                                        "file's name)")
        p.add_argument("--mode", choices=["append", "overwrite"], default="append",
                       help="append to the table (ids already there are refused as duplicate_id) or replace it "
                            "(default append)")

    def configure(self, args):
        args.files = list_inputs(args.input)
        return None

    def run_config(self, ctx):
        a = ctx.args
        return {"kind": a.kind, "input": a.input, "files": a.files, "source": a.source, "mode": a.mode}

    def run(self, ctx: Context) -> None:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        from jobs.common.lake import TABLES

        args, spark = ctx.args, ctx.spark
        table = "sft_examples" if args.kind == "sft" else "preferences"
        for f in args.files:
            ctx.input("file", f)
        ctx.output(table)
        stat = []
        for f in args.files:
            try:
                st = os.stat(f)
                stat.append((f, st.st_size, int(st.st_mtime)))
            except OSError:
                stat.append((f, None, None))
        ctx.start(runs.run_id("instruct_import", args.kind, runs.fingerprint(stat, args.source, args.mode)),
                  files=len(args.files), mode=args.mode)
        files = spark.createDataFrame([(f,) for f in args.files], "file string").repartition(
            max(1, min(len(args.files), 64)))
        recs = files.mapInArrow(import_task(args.kind, args.source), IMPORT_SCHEMA).persist()
        try:
            first = Window.partitionBy("id").orderBy("file", "row")
            ok = recs.filter(F.col("reason").isNull())
            dup = F.row_number().over(first) > 1
            if args.mode == "append" and ctx.lake.exists(spark, table):
                old, version = ctx.lake.read(spark, table)
                ctx.input(table, ctx.lake.path(table), version)
                seen = old.select(F.col("id").alias("_old_id")).distinct()
                ok = ok.join(seen, ok.id == seen._old_id, "left").withColumn(
                    "_seen", F.col("_old_id").isNotNull()).drop("_old_id")
            else:
                ok = ok.withColumn("_seen", F.lit(False))
            marked = ok.withColumn("reason", F.when(dup | F.col("_seen"), F.lit("duplicate_id")))
            marked = marked.withColumn("raw", F.when(F.col("reason").isNotNull(), F.concat(
                F.lit("duplicate of id "), F.col("id"))))
            accepted = marked.filter(F.col("reason").isNull()).withColumn("run_id", F.lit(ctx.run.id))
            cols = [c for c, _, _ in TABLES[table]]
            accepted = accepted.select(*[F.col(c).cast(t) for c, t, _ in TABLES[table]]).select(*cols) \
                .orderBy("id").persist()
            rejected = recs.filter(F.col("reason").isNotNull()).unionByName(
                marked.filter(F.col("reason").isNotNull()).drop("_seen"))
            rejected = rejected.select(F.lit(ctx.run.id).alias("run_id"), F.lit(args.kind).alias("kind"), "source",
                                       "file", "row", "id", "reason", "raw").persist()
            n_read = recs.count()
            n_ok = accepted.count()
            reasons = {r.reason: int(r["count"]) for r in rejected.groupBy("reason").count().collect()}
            if n_ok + sum(reasons.values()) != n_read:
                raise RuntimeError(f"rows read {n_read} != accepted {n_ok} + rejected {sum(reasons.values())}")
            writer = accepted.write.format("delta")
            if args.mode == "overwrite":
                writer.mode("overwrite").option("overwriteSchema", "true").save(ctx.lake.path(table))
            else:
                writer.mode("append").save(ctx.lake.path(table))
            write_rejects(ctx, rejected, ctx.run.id)
            per_source = {r.source: int(r["count"]) for r in accepted.groupBy("source").count().collect()}
        finally:
            recs.unpersist()
        unreadable = reasons.get("unreadable_file", 0)
        print(f"\n=== instruct import {args.kind} -> {ctx.lake.path(table)} ({args.mode}) ===")
        print(f"files {len(args.files)} (unreadable {unreadable}); rows read {n_read}: accepted {n_ok}, rejected "
              f"{sum(reasons.values())} ({_reasons_line(reasons)})")
        print("accepted by source: " + (", ".join(f"{k} {v}" for k, v in sorted(per_source.items())) or "none"))
        ctx.done(files=len(args.files), rows_read=n_read, accepted=n_ok, rejected=sum(reasons.values()),
                 reasons=reasons, per_source=per_source, table=table)


class OutputConfig(StrictModel):
    size_limit: int | str = "64mb"  # per MDS shard
    compression: str | None = None  # e.g. zstd
    write_ids: bool = False  # not used: pair_id is always written for DPO


class BuildConfig(StrictModel):
    name: str = "default"
    seq_len: int = Field(1024, ge=8)  # sequences of seq_len + 1 tokens
    packing: Literal["bfd", "pad"] = "bfd"
    mask: Literal["assistant", "last", "all"] = "assistant"
    seed: int = 42
    groups: int = Field(4, ge=1)  # packing groups (one MDS shard group each), by a seeded hash of the id
    decontamination: Decontamination = Decontamination(if_missing="skip")
    output: OutputConfig = OutputConfig()


class BuildJob(Job):
    name, prog = "instruct_build", "jobs/instruct.py build"
    description = ("Render, tokenize and write the lake's SFT examples or preference pairs as MDS for the trainer:\n"
                   "SFT sequences of seq_len + 1 tokens with a loss mask (packed best-fit decreasing, or padded),\n"
                   "DPO pairs with their shared prompt length; OUT/manifest.json records the template and counts.")
    epilog = ("Examples:\n"
              "  python jobs/instruct.py build --kind sft --lake ./lake --out ./lake/sft-ds "
              "--tokenizer ../shared/data/tokenizers/gpt-neox-20b\n"
              "  python jobs/instruct.py build --kind dpo --lake ./lake --out ./lake/dpo-r2 --tokenizer TOK "
              "--where 'round <= 2' --seq-len 2048\n"
              "The MDS layouts and the rejection reasons: the docstring of jobs/instruct.py.")
    config_model, default_config = BuildConfig, "conf/instruct/default.yaml"
    config_help = "build config"

    raw_help = True

    def add_arguments(self, p) -> None:
        p.add_argument("--kind", required=True, choices=["sft", "dpo"], help="what to build")
        p.add_argument("--table", help="input table (default: sft_examples for sft, preferences for dpo)")
        p.add_argument("--out", required=True, help="output folder (MDS shards, index.json, manifest.json)")
        p.add_argument("--tokenizer", required=True,
                       help="a folder with tokenizer.json (+ tokenizer_config.json), a tokenizer.json or a hub id")
        p.add_argument("--template", help="chat template: a .jinja file (or a Jinja string) overriding the "
                                          "tokenizer's; default: the tokenizer's, else Lakesift's default")
        p.add_argument("--seq-len", type=int, help="tokens per sequence, + 1 (default from the config: 1024)")
        p.add_argument("--packing", choices=["bfd", "pad"], help="sft: bfd = best-fit decreasing packing, pad = "
                                                                 "one example per sequence (default bfd)")
        p.add_argument("--mask", choices=["assistant", "last", "all"],
                       help="sft loss targets: every assistant turn, the last one, or every token (default assistant)")
        p.add_argument("--eval-dir", help="evaluation task folder for decontamination (default "
                                          "$LAKESIFT_SHARED/data/eval; skipped when missing)")
        p.add_argument("--where", help="SQL filter on the input table, e.g. \"round <= 2\"")
        p.add_argument("--seed", type=int, help="packing groups and sequence order (default 42)")

    def overrides(self, args):
        return {"seq_len": args.seq_len, "packing": args.packing, "mask": args.mask, "seed": args.seed,
                "decontamination.eval_dir": args.eval_dir}

    def configure(self, args):
        from jobs.dataset.decontam import eval_files
        from jobs.dataset.write import check_out
        from lakesift.chat import ChatTokenizer

        cfg = super().configure(args)
        try:
            args.chat = ChatTokenizer.load(args.tokenizer, args.template)
        except ValueError as exc:
            raise ConfigError(f"--tokenizer {args.tokenizer}: {exc}") from None
        check_out(args.out)
        args.eval, args.eval_note = eval_files(cfg.decontamination)
        args.table = args.table or ("sft_examples" if args.kind == "sft" else "preferences")
        return cfg

    def run_config(self, ctx):
        return {"config": ctx.args.config, "resolved": ctx.cfg.model_dump(mode="json"), "kind": ctx.args.kind,
                "table": ctx.args.table, "tokenizer": ctx.args.tokenizer, "tokenizer_sha1": ctx.args.chat.sha1,
                "chat_template": ctx.args.chat.template, "where": ctx.args.where}

    def run(self, ctx: Context) -> None:
        import tempfile

        from pyspark.sql import functions as F

        from jobs.dataset.write import clear_out
        from jobs.dataset.writers.instruct import DPOMDSWriter, SFTMDSWriter
        from lakesift.io import write_text

        args, cfg, spark, log = ctx.args, ctx.cfg, ctx.spark, ctx.log
        tok = args.chat
        kind = args.kind
        want = {"sft": "sft_examples", "dpo": "preferences"}[kind]
        df, version = ctx.read(args.table, hint=f"run: jobs/instruct.py import --kind "
                                                f"{'sft' if kind == 'sft' else 'preferences'}")
        need = {"messages"} if kind == "sft" else {"prompt", "chosen", "rejected"}
        if not need <= set(df.columns):
            raise UsageError(f"table {args.table}: no column(s) {', '.join(sorted(need - set(df.columns)))} "
                             f"(--kind {kind} reads a {want} table)")
        if args.where:
            try:
                df = df.filter(args.where)
            except spark_errors() as exc:
                raise UsageError(f"--where {args.where!r}: {first_line(exc)}") from None
        ctx.output("dataset", args.out)
        fp = runs.fingerprint(cfg, kind, tok.sha1, tok.template, args.where, [str(p) for _, p in args.eval])
        ctx.start(runs.run_id(f"instruct_build_{kind}", cfg.name, fp, {args.table: version}),
                  tokenizer=args.tokenizer, template_source=tok.template_source)
        if args.eval_note:
            log.info(args.eval_note)

        cols = ["id", "source", "messages"] if kind == "sft" else ["id", "source", "prompt", "chosen", "rejected"]
        df = df.select(*cols)
        sources = df.select("id", "source").dropDuplicates(["id"])  # for the rejects' source column
        contaminated: list[tuple[str, str | None, str]] = []
        persisted: list = []
        rejects_kind = f"build-{kind}"
        n_read = df.count()
        if args.eval:
            from jobs.dataset.decontam import build_index, decontaminate

            d = cfg.decontamination
            parts = [F.col("messages")] if kind == "sft" else [F.col("prompt"), F.col("chosen"), F.col("rejected")]
            text = F.concat_ws("\n", *[F.transform(p, lambda m: m["content"]) for p in parts])
            docs = df.select(F.col("id").alias("doc_id"), text.alias("text"),
                             F.coalesce("source", F.lit("")).alias("source"), F.lit(kind).alias("domain"))
            work = tempfile.mkdtemp(prefix="lakesift-instruct-")
            index, index_path = build_index(args.eval, d, work)
            kept, n_bad, _ = decontaminate(spark, docs, d, index, index_path, persisted)
            if n_bad:
                checked = persisted[-1]
                contaminated = [(r.doc_id, r.source, f"{r._matched} evaluation n-grams")
                                for r in checked.filter(F.col("_matched") >= d.min_matches)
                                .select("doc_id", "source", "_matched").collect()]
                if d.action == "drop":
                    df = df.join(kept.select(F.col("doc_id").alias("id")).distinct(), "id", "left_semi")

        length = cfg.seq_len + 1
        writer = (SFTMDSWriter if kind == "sft" else DPOMDSWriter)(args.out, cfg.output, "uint32", length)
        grouped = (df.withColumn("_group", F.pmod(F.xxhash64(F.lit(cfg.seed), F.col("id")), F.lit(cfg.groups)))
                   .repartition(cfg.groups, "_group").sortWithinPartitions("_group", "id", "source"))
        clear_out(args.out)
        t0 = time.perf_counter()
        try:
            rows = grouped.mapInArrow(build_task(tok, kind, cfg, writer), BUILD_SCHEMA).collect()
        finally:
            for p in persisted:
                p.unpersist()
        stats: Counter = Counter()
        groups, reject_rows = [], []
        for r in rows:
            if r.stats is not None:
                stats.update(json.loads(r.stats))
                if r.samples:
                    groups.append(int(r.group))
            else:
                reject_rows.append((r.id, r.reason, r.detail))
        facts = writer.finalize(sorted(groups)) if groups else {"shards": 0}
        seconds = time.perf_counter() - t0
        reasons = Counter(reason for _, reason, _ in reject_rows)
        if contaminated and cfg.decontamination.action == "drop":
            reasons["contaminated"] = len(contaminated)
        if stats["read"] + reasons["contaminated"] != n_read or stats["written"] + sum(reasons.values()) != n_read:
            raise RuntimeError(f"examples read {n_read} != written {stats['written']} + rejected {sum(reasons.values())}")
        all_rejects = list(reject_rows)
        if cfg.decontamination.action == "drop":
            all_rejects += [(pid, "contaminated", detail) for pid, _, detail in contaminated]
        rej_df = spark.createDataFrame(all_rejects, "id string, reason string, raw string")
        rej_df = (rej_df.join(sources, "id", "left")
                  .select(F.lit(ctx.run.id).alias("run_id"), F.lit(rejects_kind).alias("kind"), "source",
                          F.lit(ctx.lake.path(args.table)).alias("file"), F.lit(None).cast("long").alias("row"),
                          "id", "reason", "raw"))
        write_rejects(ctx, rej_df, ctx.run.id)
        counts = {"examples_read": n_read, "examples_written": int(stats["written"]),
                  "rejected": dict(sorted(reasons.items())), "truncated": int(stats["truncated"]),
                  "sequences": int(stats["sequences"]), "tokens": int(stats["tokens"]),
                  "target_tokens": int(stats["target_tokens"]), "pad_tokens": int(stats["pad_tokens"])}
        manifest = {"kind": kind, "tokenizer": args.tokenizer, "tokenizer_sha1": tok.sha1,
                    "vocab_size": tok.vocab_size, "eos_id": tok.eos_id, "bos_id": tok.bos_id, "pad_id": tok.pad_id,
                    "chat_template": tok.template, "template_source": tok.template_source, "seq_len": cfg.seq_len,
                    "sequence_length": length, "packing": cfg.packing if kind == "sft" else None,
                    "mask": cfg.mask if kind == "sft" else None, "seed": cfg.seed, "groups": cfg.groups,
                    "table": ctx.lake.path(args.table), "table_version": version, "where": args.where,
                    "decontamination": {"enabled": bool(args.eval), "tasks": [n for n, _ in args.eval],
                                        "note": args.eval_note, "contaminated": len(contaminated),
                                        "action": cfg.decontamination.action},
                    "columns": writer.columns("uint32", length), "shards": facts.get("shards"),
                    "counts": counts, "run_id": ctx.run.id, "created_at": ctx.run.started_at.isoformat()}
        write_text(f"{args.out.rstrip('/')}/manifest.json", json.dumps(manifest, indent=2))
        print(f"\n=== instruct build {kind} {args.table}@v{version} -> {args.out} ===")
        print(f"examples read {n_read}: written {counts['examples_written']}, rejected {sum(reasons.values())} "
              f"({_reasons_line(dict(reasons))}), truncated {counts['truncated']}; {counts['sequences']} "
              f"{'sequences' if kind == 'sft' else 'pairs'} of <= {length} tokens, tokens {counts['tokens']}, "
              f"target tokens {counts['target_tokens']}, pad {counts['pad_tokens']}; template "
              f"{tok.template_source}; {facts.get('shards')} shards in {seconds:.1f}s")
        ctx.done(examples_read=n_read, examples_written=counts["examples_written"], rejected=sum(reasons.values()),
                 reasons=counts["rejected"], sequences=counts["sequences"], tokens=counts["tokens"],
                 target_tokens=counts["target_tokens"], pad_tokens=counts["pad_tokens"],
                 truncated=counts["truncated"], out=args.out)


JOBS = {"import": ImportJob, "build": BuildJob}
USAGE = """usage: jobs/instruct.py {import,build} [--help] ...

Post-training data for SFT and DPO.
  import   JSONL / Parquet rows (messages, ShareGPT, Alpaca, prompt/completion; preference pairs)
           into the lake's sft_examples / preferences tables, refused rows in instruct_rejects
  build    render with a chat template, tokenize with a loss mask, pack, and write MDS for the trainer

Run 'jobs/instruct.py import --help' or 'jobs/instruct.py build --help' for their flags."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] not in JOBS:
        print(f"error: unknown subcommand {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return JOBS[argv[0]]().main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
