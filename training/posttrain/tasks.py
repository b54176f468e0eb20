"""Synthetic tasks with checkable answers, a character-level tokenizer and tiny models for them: the CPU
testbed of post-training (SFT, then DPO on pairs a verifier scored).

    python -m training.posttrain.tasks make --task reverse --out runs/pt/data --n-sft 2000 --seed 0
    python -m training.posttrain.tasks init-model --kind hf --tokenizer runs/pt/data/tokenizer --out runs/pt/init

Tasks (:data:`TASKS`; ``difficulty`` is an integer, each problem's drawn uniformly from a ``(lo, hi)``
range, so a later round can ask for harder prompts):

* ``reverse``: ``"reverse: abcde"`` -> ``"edcba"``; difficulty: the string's length (lowercase letters).
* ``add``: ``"37+485"`` -> ``"522"``; difficulty: the larger operand's number of digits.

:func:`make` writes ``sft.jsonl`` (chat rows with the answer as the assistant turn), ``prompts.jsonl`` and
``heldout.jsonl`` (user turn only, answer beside it), disjoint, and ``tokenizer/``: one token per
character (a ``tokenizers`` BPE with no merges) over letters, digits, ASCII punctuation, space and
newline, so every chat rendered with the default template (``<|user|>`` … tags) encodes without unknowns;
special tokens ``<pad>`` (0), ``<eos>`` (1), ``<unk>`` (2); ``tokenizer_config.json`` for
``AutoTokenizer`` with no chat template (the default template applies). :func:`init_model` writes a tiny
initial model for it: a ``transformers`` LlamaForCausalLM (``kind="hf"``) or our Transformer in the
export format of :mod:`training.export` (``kind="ours"``). :func:`verify` checks a response.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)  # ids 0, 1, 2
CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n"


# ---------------------------------------------------------------------------------------------- tasks

@dataclass(frozen=True)
class Task:
    """A generator of problems with a unique answer. ``problem(rng, difficulty) -> (user message,
    answer)``; ``answer_of(user message) -> answer`` (the answer recomputed from the prompt, for rows
    without one); ``alphabet``: the characters its messages and answers use."""

    name: str
    problem: Callable[[random.Random, int], tuple[str, str]]
    answer_of: Callable[[str], str]
    difficulty: tuple[int, int]
    min_difficulty: int
    alphabet: str
    description: str


def _reverse_problem(rng: random.Random, d: int) -> tuple[str, str]:
    s = "".join(rng.choice(string.ascii_lowercase) for _ in range(d))
    return f"reverse: {s}", s[::-1]


def _reverse_answer(content: str) -> str:
    return content.split(":", 1)[1].strip()[::-1]


def _add_problem(rng: random.Random, d: int) -> tuple[str, str]:
    a = rng.randrange(10 ** (d - 1) if d > 1 else 0, 10 ** d)
    b = rng.randrange(0, 10 ** d)
    if rng.random() < 0.5:
        a, b = b, a
    return f"{a}+{b}", str(a + b)


def _add_answer(content: str) -> str:
    a, b = content.split("+")
    return str(int(a) + int(b))


TASKS: dict[str, Task] = {
    "reverse": Task("reverse", _reverse_problem, _reverse_answer, (3, 6), 1, string.ascii_lowercase + "reverse: ",
                    "reverse a lowercase string; difficulty = its length"),
    "add": Task("add", _add_problem, _add_answer, (1, 3), 1, string.digits + "+",
                "add two non-negative integers; difficulty = digits of the larger operand"),
}


def get(task: str) -> Task:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[task]


def _difficulty(t: Task, difficulty) -> tuple[int, int]:
    if difficulty is None:
        return t.difficulty
    lo, hi = (difficulty, difficulty) if isinstance(difficulty, int) else tuple(difficulty)
    if not t.min_difficulty <= lo <= hi:
        raise ValueError(f"{t.name}: difficulty range ({lo}, {hi}) must have {t.min_difficulty} <= lo <= hi")
    return int(lo), int(hi)


def problems(task: str, n: int, *, difficulty=None, seed: int = 0, exclude=()) -> list[dict]:
    """``n`` distinct problems (rows ``{"question", "answer", "difficulty"}``), none of whose question is in
    ``exclude``; ``difficulty``: an int or an inclusive ``(lo, hi)`` range (default: the task's).
    Deterministic in ``seed``. ValueError when the range does not hold that many distinct problems."""
    t = get(task)
    lo, hi = _difficulty(t, difficulty)
    rng = random.Random(f"{task}:{seed}:{lo}:{hi}")
    seen, rows = set(exclude), []
    misses = 0
    while len(rows) < n:
        d = rng.randint(lo, hi)
        q, a = t.problem(rng, d)
        if q in seen:
            misses += 1
            if misses > 1000 + 20 * n:
                raise ValueError(f"{task}: difficulty ({lo}, {hi}) has too few distinct problems for {n}")
            continue
        seen.add(q)
        rows.append({"question": q, "answer": a, "difficulty": d})
    return rows


def _user(content: str) -> list[dict]:
    return [{"role": "user", "content": content}]


def prompt_row(task: str, split: str, i: int, p: dict) -> dict:
    return {"id": f"{task}-{split}-{i:06d}", "prompt": _user(p["question"]), "answer": p["answer"],
            "difficulty": p["difficulty"]}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def make(task: str, out_dir: str | Path, *, n_sft: int = 2000, n_prompts: int = 500, n_heldout: int = 200,
         seed: int = 0, difficulty=None, prompt_difficulty=None) -> dict:
    """Write the task's data to ``out_dir`` (see the module docstring): ``sft.jsonl``, ``prompts.jsonl``,
    ``heldout.jsonl`` (disjoint by question), ``tokenizer/`` and ``task.json`` (what was made).
    Returns the ``task.json`` dict."""
    t = get(task)
    lo, hi = _difficulty(t, difficulty)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = problems(task, n_sft + n_prompts + n_heldout, difficulty=(lo, hi), seed=seed)
    sft = [{"id": f"{task}-sft-{i:06d}",
            "messages": _user(p["question"]) + [{"role": "assistant", "content": p["answer"]}],
            "answer": p["answer"], "difficulty": p["difficulty"]} for i, p in enumerate(rows[:n_sft])]
    heldout = [prompt_row(task, "heldout", i, p) for i, p in enumerate(rows[n_sft + n_prompts:])]
    plo, phi = (lo, hi) if prompt_difficulty is None else _difficulty(t, prompt_difficulty)
    if (plo, phi) == (lo, hi):
        picked = rows[n_sft:n_sft + n_prompts]
    else:  # the loop's prompts may reach past the SFT set's range: later rounds get harder prompts
        taken = [p["question"] for p in rows[:n_sft]] + [p["question"] for p in rows[n_sft + n_prompts:]]
        picked = problems(task, n_prompts, difficulty=(plo, phi), seed=seed + 1, exclude=taken)
    prompts = [prompt_row(task, "prompt", i, p) for i, p in enumerate(picked)]
    _write_jsonl(out / "sft.jsonl", sft)
    _write_jsonl(out / "prompts.jsonl", prompts)
    _write_jsonl(out / "heldout.jsonl", heldout)
    build_tokenizer(out / "tokenizer", extra=t.alphabet)
    info = {"task": task, "seed": seed, "difficulty": [lo, hi], "prompt_difficulty": [plo, phi], "n_sft": n_sft, "n_prompts": n_prompts,
            "n_heldout": n_heldout, "description": t.description}
    (out / "task.json").write_text(json.dumps(info, indent=1))
    return info


# ------------------------------------------------------------------------------------------- verifier

def answer_of(task: str, row: dict) -> str:
    """The expected answer for ``row``: a meta dict or a row (``{"answer"}``, ``{"meta": {"answer"}}``),
    else recomputed from its prompt's last user message (``"prompt"`` or ``"messages"``)."""
    if "answer" in row:
        return str(row["answer"])
    if isinstance(row.get("meta"), dict) and "answer" in row["meta"]:
        return str(row["meta"]["answer"])
    messages = row.get("prompt") or row.get("messages")
    if messages:
        user = [m for m in messages if m.get("role") == "user"]
        if user:
            return get(task).answer_of(user[-1]["content"])
    raise ValueError(f"{task}: no answer in {sorted(row)} (want 'answer', 'meta.answer' or a 'prompt')")


def char_credit(answer: str, response: str) -> float:
    """The share of character positions where ``response`` matches ``answer``, over the longer of the two
    (1.0 exactly when equal; extra or missing characters count as wrong)."""
    n = max(len(answer), len(response))
    if n == 0:
        return 1.0
    return sum(a == b for a, b in zip(answer, response, strict=False)) / n


def verify(task: str, prompt_row_or_meta: dict, response: str, *, partial: bool = False) -> float:
    """1.0 when ``response`` (surrounding whitespace ignored) is the answer, else 0.0; with ``partial``,
    the share of correct characters (:func:`char_credit`; right-aligned for ``add``, where digits line up
    by place value)."""
    answer = answer_of(task, prompt_row_or_meta)
    got = response.strip()
    if not partial:
        return 1.0 if got == answer else 0.0
    if task == "add":
        return char_credit(answer[::-1], got[::-1])
    return char_credit(answer, got)


# ------------------------------------------------------------------------------------------ tokenizer

def build_tokenizer(out_dir: str | Path, extra: str = "") -> Path:
    """A character-level tokenizer folder: ``tokenizer.json`` (BPE with no merges over :data:`CHARSET`
    plus ``extra``; specials ``<pad>`` 0, ``<eos>`` 1, ``<unk>`` 2), ``tokenizer_config.json`` and
    ``special_tokens_map.json`` (``AutoTokenizer`` loads it as a ``PreTrainedTokenizerFast``)."""
    from tokenizers import Tokenizer, decoders, models

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {s: i for i, s in enumerate(SPECIAL_TOKENS)}
    for c in sorted(set(CHARSET + extra)):
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.save(str(out / "tokenizer.json"))
    special = {"eos_token": EOS, "pad_token": PAD, "unk_token": UNK}
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", **special, "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000}, indent=1))
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=1))
    return out


def vocab_size(tokenizer_dir: str | Path) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json")).get_vocab_size(with_added_tokens=True)


# ---------------------------------------------------------------------------------------------- models

def init_model(kind: str, tokenizer_dir: str | Path, out_dir: str | Path, *, d_model: int = 64, n_layers: int = 2,
               n_heads: int = 4, seq_len: int = 128, seed: int = 0, init_std: float = 0.06) -> Path:
    """Write a freshly initialised tiny model for the tokenizer in ``tokenizer_dir`` to ``out_dir``, with
    the tokenizer files beside it. ``kind="hf"``: LlamaForCausalLM (untied embeddings, MLP width of
    ``training.config.ModelConfig.ffn_hidden``, weights normal with std ``init_std``: 0.06 rather than
    transformers' 0.02, with which a d_model 64 model sat on a loss plateau for 300 steps of ``reverse``;
    ``AutoModelForCausalLM`` loads it, ``training.hf.load`` too). ``kind="ours"``:
    ``training.model.Transformer`` initialised by ``init_parameters(seed)`` in the export format
    (``training.export.load``; ``init_std`` does not apply)."""
    import torch

    from training.config import ModelConfig
    from training.hf import write_tokenizer

    tokenizer_dir, out = Path(tokenizer_dir), Path(out_dir)
    v = vocab_size(tokenizer_dir)
    cfg = ModelConfig(d_model=d_model, n_layers=n_layers, n_heads=n_heads, vocab_size=v, seq_len=seq_len)
    out.mkdir(parents=True, exist_ok=True)
    if kind == "hf":
        from transformers import LlamaConfig, LlamaForCausalLM

        ids = _special_ids(tokenizer_dir)
        config = LlamaConfig(vocab_size=v, hidden_size=d_model, intermediate_size=cfg.ffn_hidden,
                             num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_heads,
                             max_position_embeddings=seq_len, tie_word_embeddings=False,
                             pad_token_id=ids[PAD], eos_token_id=ids[EOS], bos_token_id=None,
                             initializer_range=init_std)
        torch.manual_seed(seed)
        LlamaForCausalLM(config).save_pretrained(str(out))
    elif kind == "ours":
        from safetensors.torch import save_file

        from training.model import Transformer, init_parameters

        model = Transformer(cfg)
        init_parameters(model, seed)
        save_file({k: t.contiguous() for k, t in model.state_dict().items()}, str(out / "model.safetensors"))
        (out / "config.json").write_text(json.dumps(
            {"format": "lakesift-open_lm", "scale": "posttrain-tiny", "model": cfg.model_dump()}, indent=1))
    else:
        raise ValueError(f"unknown model kind {kind!r} (known: hf, ours)")
    write_tokenizer(tokenizer_dir, out)
    return out


def _special_ids(tokenizer_dir: Path) -> dict[str, int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    return {s: tok.token_to_id(s) for s in SPECIAL_TOKENS}


# ------------------------------------------------------------------------------------------------- CLI

def main(argv=None) -> int:
    tasks_help = "; ".join(f"{t.name}: {t.description} (default {t.difficulty[0]}-{t.difficulty[1]})"
                           for t in TASKS.values())
    ap = argparse.ArgumentParser(prog="python -m training.posttrain.tasks", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=f"tasks: {tasks_help}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write sft.jsonl, prompts.jsonl, heldout.jsonl and tokenizer/ of a task",
                        description="Write a task's SFT rows, DPO prompts and held-out prompts (disjoint) and its "
                                    f"character-level tokenizer. Tasks: {tasks_help}.")
    mk.add_argument("--task", required=True, choices=sorted(TASKS))
    mk.add_argument("--out", required=True, help="output folder")
    mk.add_argument("--n-sft", type=int, default=2000, help="SFT rows (default 2000)")
    mk.add_argument("--n-prompts", type=int, default=500, help="prompts to sample and pair (default 500)")
    mk.add_argument("--n-heldout", type=int, default=200, help="held-out prompts for accuracy (default 200)")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--difficulty", type=str, default=None,
                    help="N or LO-HI (inclusive), e.g. 3-6 (default: the task's range)")
    im = sub.add_parser("init-model", help="write a freshly initialised tiny model for a tokenizer",
                        description="Write a tiny initial model (with the tokenizer files beside it): --kind hf, "
                                    "a transformers LlamaForCausalLM; --kind ours, training.model.Transformer in "
                                    "training.export's format.")
    im.add_argument("--kind", required=True, choices=["hf", "ours"])
    im.add_argument("--tokenizer", required=True, help="tokenizer folder (make's OUT/tokenizer)")
    im.add_argument("--out", required=True, help="output model folder")
    im.add_argument("--d-model", type=int, default=64)
    im.add_argument("--n-layers", type=int, default=2)
    im.add_argument("--n-heads", type=int, default=4)
    im.add_argument("--seq-len", type=int, default=128)
    im.add_argument("--seed", type=int, default=0)
    im.add_argument("--init-std", type=float, default=0.06, help="hf only: initializer_range (default 0.06)")
    a = ap.parse_args(argv)
    if a.cmd == "make":
        diff = None
        if a.difficulty:
            lo, _, hi = a.difficulty.partition("-")
            diff = (int(lo), int(hi or lo))
        info = make(a.task, a.out, n_sft=a.n_sft, n_prompts=a.n_prompts, n_heldout=a.n_heldout, seed=a.seed,
                    difficulty=diff)
        print(json.dumps(info))
    else:
        out = init_model(a.kind, a.tokenizer, a.out, d_model=a.d_model, n_layers=a.n_layers, n_heads=a.n_heads,
                         seq_len=a.seq_len, seed=a.seed, init_std=a.init_std)
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
