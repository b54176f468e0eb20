"""Suites and tasks: the task specs, the prompts of each task type, scoring a task's examples and the
CORE / EXTENDED aggregate."""

from __future__ import annotations

import random
import re
import string
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


def load_suite(path: str | Path) -> Suite:
    return load_model(Suite, path)


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


def _result(n: int, correct: int, skipped: list[dict]) -> dict:
    scored = n - len(skipped)
    return {"examples": n, "scored": scored, "accuracy": correct / scored if scored else None, "skipped": skipped}


def evaluate_task(spec: TaskSpec, rows: list[dict], scorer, seed: int, limit: int | None) -> dict:
    """Accuracy over the first ``limit`` examples (all by default). An example that cannot be scored
    (a continuation longer than the model's window, see ``Scorer.request``) is listed in ``skipped``
    with its reason and left out of the accuracy (``None`` when no example is scored)."""
    n = len(rows) if limit is None else min(limit, len(rows))
    correct = 0
    skipped: list[dict] = []
    tie_rng = random.Random(f"{seed}/{spec.label}/ties")
    if spec.type == "generation_task_with_answers":
        for i in range(n):
            (ctx, _), = prompts(rows, i, spec, seed)
            text = scorer.generate(ctx, spec.example_delimiter, spec.max_new_tokens)
            if text is None:
                skipped.append({"example": i, "reason": "empty context"})
                continue
            got = normalize_answer(text)
            answers = [rows[i]["answer"], *rows[i].get("aliases", [])]
            correct += any(got == normalize_answer(a) for a in answers)
        return _result(n, correct, skipped)
    reqs, spans = [], []
    for i in range(n):
        ps = prompts(rows, i, spec, seed)
        spans.append((len(reqs), len(ps)))
        reqs += [scorer.request(c, x) for c, x in ps]
    scores = scorer.score(reqs)
    for i, (start, k) in enumerate(spans):
        reasons = [r.skip for r in reqs[start:start + k] if getattr(r, "skip", None)]
        if reasons:  # one choice that cannot be scored makes the comparison meaningless
            skipped.append({"example": i, "reason": reasons[0]})
            continue
        s = scores[start:start + k]
        if spec.type == "language_modeling":
            correct += s[0][2]
            continue
        means = [m for _, m, _ in s]
        best = min(means)
        winners = [j for j, m in enumerate(means) if m == best]
        pred = winners[0] if len(winners) == 1 else tie_rng.choice(winners)
        correct += pred == rows[i]["gold"]
    return _result(n, correct, skipped)


def aggregate(suite: Suite, results: dict[str, dict], missing: list[str]) -> dict:
    """Centered accuracy per task and the suite's mean; null when a task is missing or unscored."""
    centered, unscored = {}, []
    for spec in suite.tasks:
        if spec.label in results:
            acc = results[spec.label]["accuracy"]
            if acc is None:
                unscored.append(spec.label)
                continue
            r = spec.random_baseline / 100.0
            results[spec.label]["centered"] = (acc - r) / (1.0 - r)
            centered[spec.label] = results[spec.label]["centered"]
    mean = sum(centered.values()) / len(centered) if centered else None
    key = suite.name.upper()
    absent = missing + unscored
    note = ""
    if absent:
        why = [f"{len(missing)} task files are missing"] if missing else []
        why += [f"{len(unscored)} tasks have no example that fits the model's window"] if unscored else []
        note = (f"{key} is null: {' and '.join(why)}; the mean over the present tasks is reported separately and "
                f"is not comparable to DCLM's {key}")
    return {key: None if absent else mean, f"{key}_over_present_tasks": mean,
            "tasks_scored": len(centered), "tasks_missing": missing, "tasks_unscored": unscored, "note": note}
