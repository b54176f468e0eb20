"""Pluggable scorers of sampled responses, and best-vs-worst preference pairs from their scores.

    from training.posttrain import scorers
    scorer = scorers.build("verifier:reverse")           # or "verifier:reverse:partial"
    scorer = scorers.build("reward-model:models/rm")     # AutoModelForSequenceClassification, num_labels=1
    scorer = scorers.build("judge:my_pkg.judges:score")  # my_pkg.judges.score(rows, responses) -> floats
    s = scorer.score(rows, responses)                    # one float per (row, response), higher = better
    dpo_rows = scorers.pairs(rows, responses_per_row, scores_per_row, min_margin=0.0)

A row is a dict with ``"prompt"`` (the chat messages before the response) and ``"meta"`` (e.g.
``{"answer": "..."}``; the verifier also takes ``"answer"`` at the top level, as ``prompts.jsonl`` rows
have it); a response is the decoded assistant text without the template's closing EOS.

* ``verifier:<task>``: :func:`training.posttrain.tasks.verify`: 1.0 right, 0.0 wrong;
  ``verifier:<task>:partial``: the share of correct characters, so that best and worst differ more often.
* ``reward-model:<folder>``: a ``transformers`` sequence classifier with one label (its tokenizer in the
  same folder) scores the prompt and response rendered as one chat: the tokenizer's chat template, else
  the default template (:data:`DEFAULT_CHAT_TEMPLATE`, as ``lakesift.chat`` renders it).
* ``judge:<module>:<function>``: any Python hook ``function(rows, responses) -> list[float]`` (an LLM
  judge, a unit-test runner …), imported by module path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

DEFAULT_CHAT_TEMPLATE = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + eos_token + '\n' }}"
                         "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}")


class Scorer:
    """``score(rows, responses) -> list[float]``, one per pair, higher is better; ``name``: the spec."""

    name: str = "scorer"

    def score(self, rows: Sequence[dict], responses: Sequence[str]) -> list[float]:
        raise NotImplementedError

    def __call__(self, rows, responses) -> list[float]:
        return self.score(rows, responses)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _check(rows, responses) -> None:
    if len(rows) != len(responses):
        raise ValueError(f"{len(rows)} rows but {len(responses)} responses")


class VerifierScorer(Scorer):
    """A synthetic task's verifier (:mod:`training.posttrain.tasks`)."""

    def __init__(self, task: str, partial: bool = False):
        from training.posttrain import tasks

        tasks.get(task)  # ValueError for an unknown task
        self.task, self.partial = task, partial
        self.name = f"verifier:{task}" + (":partial" if partial else "")

    def score(self, rows, responses):
        from training.posttrain import tasks

        _check(rows, responses)
        return [tasks.verify(self.task, row, resp, partial=self.partial)
                for row, resp in zip(rows, responses, strict=True)]


class RewardModelScorer(Scorer):
    """The scalar output of ``AutoModelForSequenceClassification`` (one label) on prompt + response."""

    def __init__(self, folder: str | Path, *, device: str = "cpu", batch_size: int = 16, max_length: int | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = str(folder)
        if not (Path(folder) / "config.json").is_file():
            raise ValueError(f"reward-model: no config.json in {folder!r} (want a transformers model folder)")
        self.name = f"reward-model:{folder}"
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).to(device).eval()
        if self.model.config.num_labels != 1:
            raise ValueError(f"reward-model: {folder} has {self.model.config.num_labels} labels, want 1")
        tok = self.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        if tok.pad_token is None:
            raise ValueError(f"reward-model: the tokenizer of {folder} has no pad, eos or unk token to pad with")
        self.model.config.pad_token_id = tok.pad_token_id  # where the classifier finds each row's last token
        tok.padding_side, tok.truncation_side = "right", "left"  # a too-long text keeps its response
        self.device, self.batch_size = device, batch_size
        self.max_length = max_length or getattr(self.model.config, "max_position_embeddings", None)

    def render(self, row: dict, response: str) -> str:
        messages = list(row["prompt"]) + [{"role": "assistant", "content": response}]
        template = self.tokenizer.chat_template or DEFAULT_CHAT_TEMPLATE
        return self.tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)

    def score(self, rows, responses):
        import torch

        _check(rows, responses)
        texts = [self.render(r, s) for r, s in zip(rows, responses, strict=True)]
        out: list[float] = []
        with torch.no_grad():
            for lo in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(texts[lo:lo + self.batch_size], return_tensors="pt", padding=True,
                                     truncation=self.max_length is not None, max_length=self.max_length,
                                     add_special_tokens=False).to(self.device)
                out += self.model(**enc).logits[:, 0].float().cpu().tolist()
        return out


class JudgeScorer(Scorer):
    """A Python hook ``function(rows, responses) -> list[float]``."""

    def __init__(self, fn: Callable, name: str):
        self.fn, self.name = fn, name

    def score(self, rows, responses):
        _check(rows, responses)
        got = [float(x) for x in self.fn(list(rows), list(responses))]
        if len(got) != len(responses):
            raise ValueError(f"{self.name} returned {len(got)} scores for {len(responses)} responses")
        return got


KINDS = ("verifier:<task>[:partial]", "reward-model:<HF folder>", "judge:<module>:<function>")


def build(spec: str, **kw) -> Scorer:
    """The scorer a spec names (see the module docstring); ``kw`` go to the reward model
    (``device``, ``batch_size``, ``max_length``). ValueError for an unknown or malformed spec."""
    kind, _, rest = str(spec).partition(":")
    if kind == "verifier" and rest:
        task, _, mode = rest.partition(":")
        if mode not in ("", "partial", "exact"):
            raise ValueError(f"scorer {spec!r}: unknown verifier mode {mode!r} (want partial or nothing)")
        return VerifierScorer(task, partial=mode == "partial")
    if kind == "reward-model" and rest:
        return RewardModelScorer(rest, **kw)
    if kind == "judge" and ":" in rest:
        module, _, fn_name = rest.rpartition(":")
        try:
            fn = getattr(importlib.import_module(module), fn_name)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"scorer {spec!r}: cannot import {module}:{fn_name} ({e})") from e
        if not callable(fn):
            raise ValueError(f"scorer {spec!r}: {module}:{fn_name} is not callable")
        return JudgeScorer(fn, f"judge:{module}:{fn_name}")
    raise ValueError(f"unknown scorer spec {spec!r} (known: {', '.join(KINDS)})")


def pairs(rows: Sequence[dict], responses_per_row: Sequence[Sequence[str]], scores: Sequence[Sequence[float]],
          min_margin: float = 0.0) -> list[dict]:
    """One preference pair per prompt: its best response (chosen) against its worst (rejected), ties
    going to the first index; prompts whose best - worst <= ``min_margin`` (all equal, for one) give none.
    Each pair: ``prompt_id`` (the row's ``"prompt_id"``, else its ``"id"``, else its index), ``prompt``
    (messages), ``chosen``, ``rejected``, ``chosen_score``, ``rejected_score``, ``margin``."""
    if not len(rows) == len(responses_per_row) == len(scores):
        raise ValueError(f"{len(rows)} rows, {len(responses_per_row)} response lists, {len(scores)} score lists")
    out = []
    for i, (row, resps, sc) in enumerate(zip(rows, responses_per_row, scores, strict=True)):
        if len(resps) != len(sc):
            raise ValueError(f"row {i}: {len(resps)} responses but {len(sc)} scores")
        if len(resps) < 2:
            continue
        best = max(range(len(sc)), key=lambda j: (sc[j], -j))
        worst = min(range(len(sc)), key=lambda j: (sc[j], j))
        margin = float(sc[best]) - float(sc[worst])
        if best == worst or margin <= min_margin:
            continue
        out.append({"prompt_id": row.get("prompt_id", row.get("id", i)), "prompt": row["prompt"],
                    "chosen": resps[best], "rejected": resps[worst], "chosen_score": float(sc[best]),
                    "rejected_score": float(sc[worst]), "margin": margin})
    return out
