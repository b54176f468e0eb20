"""In-context evaluation of checkpoints, CORE / EXTENDED style (DCLM), on llm-foundry task files.

    python -m training.eval --checkpoint runs/x/final --suite conf/eval/core.yaml [--out results.json]
    make eval CKPT=runs/x/final

Task types (the ``type`` of each suite entry):
* ``multiple_choice`` (``query``, ``choices``, ``gold``): the prompt is the few-shot examples then
  ``query + continuation_delimiter``; the prediction is the choice with the lowest mean per-token loss;
* ``schema`` (``context_options``, ``continuation``, ``gold``): the context varies, the continuation is
  fixed; the prediction is the context under which the continuation has the lowest mean loss;
* ``language_modeling`` (``context``, ``continuation``): correct when the greedy prediction of every
  continuation token is that token;
* ``generation_task_with_answers`` (``context``, ``answer``, ``aliases``): greedy generation until the
  example delimiter, correct on an exact match with the answer or an alias after normalisation
  (lower case, no punctuation, no articles, single spaces).
Few-shot examples come from the same file, chosen by a seeded generator per (task, example), never the
example itself; examples are joined by ``example_delimiter`` (default newline). Ties between
choices are broken by a seeded draw, so a model without preference scores chance.

Score: accuracy per task, centered accuracy ``(acc - r) / (1 - r)`` with the task's random baseline
``r`` (DCLM's v2 table), CORE / EXTENDED = mean centered accuracy. A task whose file is absent is
listed as missing, never counted as zero; the aggregate over the present tasks is reported beside a
null CORE that says which tasks are missing. The JSON has the checkpoint, the suite and a hash of
each task file.

Checkpoints: a folder written by training.export (``final/``), a training checkpoint ``step-N``
(torch distributed checkpoint + meta.json), or a Hugging Face causal-LM folder (``transformers``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from lakesift.config import StrictModel, load_model


class TaskSpec(StrictModel):
    label: str
    file: str
    type: Literal["multiple_choice", "schema", "language_modeling", "generation_task_with_answers"]
    shots: int = Field(0, ge=0)
    continuation_delimiter: str = " "
    example_delimiter: str = "\n"
    question_prelimiter: str = ""
    cot_delimiter: str = ""
    prompt_string: str = ""
    random_baseline: float = 0.0  # percent
    category: str = "unknown"
    max_new_tokens: int = 32


class Suite(StrictModel):
    name: str
    tasks: list[TaskSpec]


# ------------------------------------------------------------------------------------------ prompts

@dataclass
class Request:
    """One scoring unit: a context and a continuation (token ids)."""

    context: list[int]
    continuation: list[int]


def fewshot_indices(n: int, k: int, idx: int, seed: int, label: str) -> list[int]:
    if k == 0 or n <= 1:
        return []
    rng = random.Random(f"{seed}/{label}/{idx}")
    pool = [i for i in range(n) if i != idx]
    return rng.sample(pool, min(k, len(pool)))


def _qa_context(row: dict, spec: TaskSpec) -> str:
    return spec.question_prelimiter + row["context"]


def example_text(row: dict, spec: TaskSpec) -> str:
    """A solved example for the few-shot prefix."""
    d = spec.continuation_delimiter
    if spec.type == "multiple_choice":
        return row["query"] + d + row["choices"][row["gold"]]
    if spec.type == "schema":
        return row["context_options"][row["gold"]] + d + row["continuation"]
    if spec.type == "language_modeling":
        return row["context"] + d + row["continuation"]
    return _qa_context(row, spec) + d + (row.get("chain_of_thought", "") + spec.cot_delimiter if spec.cot_delimiter
                                         else "") + row["answer"]


def prompts(rows: list[dict], idx: int, spec: TaskSpec, seed: int) -> list[tuple[str, str]]:
    """(context, continuation) strings to score for example ``idx``: one per choice / context
    option, one for language modeling and generation (the continuation is the reference)."""
    row = rows[idx]
    shots = [example_text(rows[i], spec) for i in fewshot_indices(len(rows), spec.shots, idx, seed, spec.label)]
    prefix = spec.prompt_string + "".join(s + spec.example_delimiter for s in shots)
    d = spec.continuation_delimiter
    if spec.type == "multiple_choice":
        return [(prefix + row["query"] + d, c) for c in row["choices"]]
    if spec.type == "schema":
        return [(prefix + opt + d, row["continuation"]) for opt in row["context_options"]]
    if spec.type == "language_modeling":
        return [(prefix + row["context"] + d, row["continuation"])]
    return [(prefix + _qa_context(row, spec) + d, row["answer"])]


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


# ------------------------------------------------------------------------------------------ model side

class Scorer:
    """Batched continuation scoring and greedy generation for a model returning logits."""

    def __init__(self, model, tokenizer, max_len: int, batch_size: int = 16, device: str = "cpu"):
        self.model, self.tok, self.max_len, self.batch_size, self.device = model, tokenizer, max_len, batch_size, device

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def request(self, context: str, continuation: str) -> Request:
        ctx = self.encode(context)
        cont = self.encode(continuation)
        # tokenise the continuation on its own, as llm-foundry does; keep it whole, cut the context's left
        room = self.max_len - len(cont)
        return Request(ctx[-room:] if room > 0 else [], cont[: self.max_len - 1] if room <= 0 else cont)

    def score(self, reqs: list[Request]) -> list[tuple[float, float, bool]]:
        """(sum of losses, mean loss, greedy match) of each continuation given its context.

        Requests are batched by length (longest first, so padding stays small) and, for our own
        model, the output head runs only at the continuation positions: the vocabulary projection
        of every context position is the largest cost and is not needed."""
        import torch
        import torch.nn.functional as F

        out: list[tuple[float, float, bool] | None] = [None] * len(reqs)
        order = sorted(range(len(reqs)), key=lambda i: -(len(reqs[i].context) + len(reqs[i].continuation)))
        partial = hasattr(self.model, "hidden") and hasattr(self.model, "head")
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            chunk = [reqs[i] for i in idx]
            seqs = [r.context + r.continuation for r in chunk]
            width = max(len(s) for s in seqs) - 1
            inp = torch.zeros((len(chunk), max(width, 1)), dtype=torch.long)
            for j, s in enumerate(seqs):
                inp[j, : len(s) - 1] = torch.tensor(s[:-1], dtype=torch.long)
            with torch.no_grad():
                if partial:
                    h = self.model.hidden(inp.to(self.device))
                else:
                    logits_all = self.model(inp.to(self.device))
                for j, r in enumerate(chunk):
                    start = len(r.context) - 1  # position predicting the first continuation token
                    sl = slice(start, start + len(r.continuation))
                    logits = self.model.head(h[j, sl]) if partial else logits_all[j, sl]
                    logp = F.log_softmax(logits.float(), dim=-1).cpu()
                    tgt = torch.tensor(r.continuation, dtype=torch.long)
                    losses = -logp.gather(1, tgt.view(-1, 1)).squeeze(1)
                    greedy = bool((logp.argmax(dim=-1) == tgt).all())
                    out[idx[j]] = (float(losses.sum()), float(losses.mean()), greedy)
        return out  # type: ignore[return-value]

    def generate(self, context: str, stop: str, max_new_tokens: int) -> str:
        import torch

        ids = self.encode(context)[-(self.max_len - max_new_tokens):]
        new: list[int] = []
        for _ in range(max_new_tokens):
            x = torch.tensor([ids + new], dtype=torch.long, device=self.device)
            with torch.no_grad():
                if hasattr(self.model, "hidden") and hasattr(self.model, "head"):
                    last = self.model.head(self.model.hidden(x)[0, -1])
                else:
                    last = self.model(x)[0, -1]
            new.append(int(last.argmax()))
            text = self.tok.decode(new)
            if stop and stop in text:
                return text.split(stop)[0]
        return self.tok.decode(new)


def evaluate_task(spec: TaskSpec, rows: list[dict], scorer, seed: int, limit: int | None) -> dict:
    n = len(rows) if limit is None else min(limit, len(rows))
    correct = 0
    tie_rng = random.Random(f"{seed}/{spec.label}/ties")
    if spec.type == "generation_task_with_answers":
        for i in range(n):
            (ctx, _), = prompts(rows, i, spec, seed)
            got = normalize_answer(scorer.generate(ctx, spec.example_delimiter, spec.max_new_tokens))
            answers = [rows[i]["answer"], *rows[i].get("aliases", [])]
            correct += any(got == normalize_answer(a) for a in answers)
        return {"examples": n, "accuracy": correct / n if n else 0.0}
    reqs, spans = [], []
    for i in range(n):
        ps = prompts(rows, i, spec, seed)
        spans.append((len(reqs), len(ps)))
        reqs += [scorer.request(c, x) for c, x in ps]
    scores = scorer.score(reqs)
    for i, (start, k) in enumerate(spans):
        s = scores[start:start + k]
        if spec.type == "language_modeling":
            correct += s[0][2]
            continue
        means = [m for _, m, _ in s]
        best = min(means)
        winners = [j for j, m in enumerate(means) if m == best]
        pred = winners[0] if len(winners) == 1 else tie_rng.choice(winners)
        correct += pred == rows[i]["gold"]
    return {"examples": n, "accuracy": correct / n if n else 0.0}


def aggregate(suite: Suite, results: dict[str, dict], missing: list[str]) -> dict:
    centered = {}
    for spec in suite.tasks:
        if spec.label in results:
            r = spec.random_baseline / 100.0
            acc = results[spec.label]["accuracy"]
            results[spec.label]["centered"] = (acc - r) / (1.0 - r)
            centered[spec.label] = results[spec.label]["centered"]
    mean = sum(centered.values()) / len(centered) if centered else None
    key = suite.name.upper()
    return {key: None if missing else mean, f"{key}_over_present_tasks": mean,
            "tasks_scored": len(centered), "tasks_missing": missing,
            "note": (f"{key} is null: {len(missing)} task files are missing; the mean over the present tasks is "
                     f"reported separately and is not comparable to DCLM's {key}") if missing else ""}


# ------------------------------------------------------------------------------------------ loading

def load_checkpoint(path: str, device: str = "cpu"):
    """(model returning logits, max sequence length, what was loaded)."""
    p = Path(path)
    if (p / "config.json").exists() and json.loads((p / "config.json").read_text()).get("format") == "lakesift-open_lm":
        from training.export import load

        model = load(p, device)
        return model, model.cfg.seq_len, "lakesift export"
    if (p / "meta.json").exists():  # a training checkpoint written with torch distributed checkpointing
        import torch.distributed.checkpoint as dcp

        from training.config import ModelConfig
        from training.model import Transformer

        cfg = ModelConfig.model_validate(json.loads((p / "meta.json").read_text())["scale"]["model"])
        model = Transformer(cfg)
        state = {"model": model.state_dict()}
        dcp.load(state, checkpoint_id=str(p))
        model.load_state_dict(state["model"])
        return model.to(device).eval(), cfg.seq_len, "lakesift training checkpoint"
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(p)).to(device).eval()

    def fn(x):
        return hf(x).logits

    return fn, int(getattr(hf.config, "max_position_embeddings", 2048)), "transformers"


def load_tokenizer(path: str | None, checkpoint: str):
    from tokenizers import Tokenizer

    if path is None and (Path(checkpoint) / "tokenizer.json").exists():
        path = str(Path(checkpoint) / "tokenizer.json")
    if path is None:
        path = os.path.join(os.environ.get("LAKESIFT_SHARED", "../shared"), "data", "tokenizers", "gpt-neox-20b",
                            "20B_tokenizer.json")
    return Tokenizer.from_file(path)


def perplexity(model, tok, text: str, window: int, device: str = "cpu", max_tokens: int | None = None) -> float:
    """Token perplexity of ``text`` in non-overlapping windows of ``window`` tokens."""
    import torch
    import torch.nn.functional as F

    ids = tok.encode(text, add_special_tokens=False).ids
    if max_tokens:
        ids = ids[:max_tokens]
    nll, count = 0.0, 0
    for i in range(0, len(ids) - 1, window):
        chunk = torch.tensor([ids[i:i + window + 1]], dtype=torch.long, device=device)
        if chunk.shape[1] < 2:
            break
        with torch.no_grad():
            logits = model(chunk[:, :-1]).float()
        nll += float(F.cross_entropy(logits[0], chunk[0, 1:], reduction="sum"))
        count += chunk.shape[1] - 1
    return float(torch.exp(torch.tensor(nll / max(count, 1))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.eval", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="final/ export, step-N checkpoint or a HF model folder")
    ap.add_argument("--suite", default="conf/eval/core.yaml")
    ap.add_argument("--eval-dir", help="task files (default $LAKESIFT_SHARED/data/eval)")
    ap.add_argument("--tokenizer", help="tokenizer.json (default: the checkpoint's, else GPT-NeoX from ../shared)")
    ap.add_argument("--out", help="results JSON (default: print only)")
    ap.add_argument("--limit", type=int, help="examples per task (default all)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--ppl-text", help="held-out text for perplexity, e.g. ../shared/data/text/wikitext2/valid.txt")
    ap.add_argument("--ppl-tokens", type=int, default=50_000)
    args = ap.parse_args(argv)
    from lakesift.config import ConfigError

    try:
        suite = load_model(Suite, args.suite)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, max_len, kind = load_checkpoint(args.checkpoint, device)
    tok = load_tokenizer(args.tokenizer, args.checkpoint)
    scorer = Scorer(model, tok, max_len, args.batch_size, device)
    root = Path(args.eval_dir or os.path.join(os.environ.get("LAKESIFT_SHARED", "../shared"), "data", "eval"))
    results, missing, hashes = {}, [], {}
    t0 = time.perf_counter()
    for spec in suite.tasks:
        f = root / spec.file
        if not f.is_file():
            missing.append(spec.label)
            print(f"{spec.label:36s} missing ({f})", flush=True)
            continue
        raw = f.read_bytes()
        hashes[spec.file] = hashlib.sha1(raw).hexdigest()[:12]
        rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
        t = time.perf_counter()
        results[spec.label] = evaluate_task(spec, rows, scorer, args.seed, args.limit)
        results[spec.label].update({"shots": spec.shots, "type": spec.type, "random_baseline": spec.random_baseline,
                                    "seconds": round(time.perf_counter() - t, 2)})
        print(f"{spec.label:36s} {spec.shots:2d}-shot acc {results[spec.label]['accuracy']:.3f} "
              f"({results[spec.label]['examples']} examples)", flush=True)
    agg = aggregate(suite, results, missing)
    out = {"checkpoint": str(args.checkpoint), "loaded_as": kind, "suite": args.suite, "suite_name": suite.name,
           "limit": args.limit, "seed": args.seed, "data_sha1": hashes, "tasks": results, **agg,
           "seconds": round(time.perf_counter() - t0, 1)}
    if args.ppl_text:
        out["perplexity"] = {"text": args.ppl_text, "tokens": args.ppl_tokens,
                             "value": perplexity(model, tok, Path(args.ppl_text).read_text(encoding="utf-8"),
                                                 max_len, device, args.ppl_tokens)}
    key = suite.name.upper()
    print(f"{key}: " + (f"{agg[key]:.4f}" if agg[key] is not None else f"n/a ({agg['note']})")
          + (f"; over the {agg['tasks_scored']} present tasks {agg[key + '_over_present_tasks']:.4f}"
             if agg[key + "_over_present_tasks"] is not None else ""))
    if "perplexity" in out:
        print(f"perplexity on {args.ppl_text}: {out['perplexity']['value']:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
