"""The iterative SFT -> DPO loop (``make posttrain ROUNDS=3``): rounds of SFT, sampling, scoring, pairing and
DPO, every round recorded in the lake.

    python -m training.posttrain loop --out OUT [--rounds 3] [--base BASE] [--task reverse]
        [--sft-data FILE --prompts FILE --heldout FILE --scorer verifier:reverse | reward-model:DIR | judge:mod:fn]

Without data the loop makes the bundled synthetic task (``training.posttrain.tasks``: checkable answers, a
character tokenizer) in ``OUT/task`` and, without ``--base``, a tiny Hugging Face model in ``OUT/base``.

Round r (``OUT/round-<r>/``):

1. **SFT** from the previous round's DPO model (round 1: BASE) on ``sft_examples`` rows of round <= r (rows
   without a round belong to every round): the SFT set plus the verified responses earlier rounds added;
2. **sample** ``--samples`` responses per prompt from the SFT model (temperature / top-p, batched;
   ``training.generate``) for the round's prompts: the prompts sorted by difficulty and cut into ``--rounds``
   slices, round r taking slice r (later rounds get harder prompts);
3. **score** them (``--scorer``, ``training.posttrain.scorers``) and **pair** best against worst per prompt
   (pairs with no score gap are dropped); **keep the pairs the policy still gets wrong** (``--keep wrong``,
   the default: prompts whose samples score below ``--hard-below`` on average, so prompts the policy has
   mastered drop out round by round); the pairs go into ``preferences`` with their round, scores and scorer,
   every sample into ``posttrain_generations``, and each prompt's best response that scored ``--accept`` or
   more into ``sft_examples`` as a new example of round r + 1;
4. **DPO** from the SFT model, the reference frozen at the SFT model (``--reference round``) or at BASE
   (``--reference base``), on the round's pairs (at most ``--dpo-epochs`` passes; RPO's NLL term with
   ``--rpo-alpha``, 1 by default: plain DPO lowered the right answers' likelihood on the synthetic task);
5. **evaluate** base, SFT and DPO models on the held-out prompts: the verifier's accuracy of greedy answers
   and of samples, and the preference accuracy on held-out pairs (pairs built the same way from the SFT
   model's samples of the held-out prompts): the share where the model gives the chosen response the higher
   log-probability. A row per model and round goes into ``posttrain_rounds`` and ``OUT/rounds.json``.

Everything is in ``OUT/lake`` (or ``--lake``): the tables above plus the import / build runs in ``_runs``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

ROUNDS_DDL = ("run_id string, round int, model string, phase string, checkpoint string, metrics_json string, "
              "created_at timestamp")
GENERATIONS_DDL = ("run_id string, round int, split string, prompt_id string, sample int, response string, "
                   "score double, mean_logp double, scorer string")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="the loop's folder (rounds, task, lake)")
    p.add_argument("--rounds", type=int, default=3, help="SFT -> DPO rounds (3)")
    p.add_argument("--base", help="the starting model (default: a tiny Hugging Face model for the task)")
    p.add_argument("--base-kind", choices=("hf", "ours"), default="hf",
                   help="the tiny starting model to make when --base is not given (hf)")
    p.add_argument("--task", default="reverse", help="the synthetic task made when no data is given (reverse)")
    p.add_argument("--task-size", type=int, nargs=3, default=(2000, 500, 200), metavar=("SFT", "PROMPTS", "HELDOUT"),
                   help="rows of the synthetic task made (2000 500 200)")
    p.add_argument("--harder", type=int, default=2,
                   help="the task's prompts reach this much past the SFT set's difficulty (2: reverse strings of "
                        "3-8 letters against 3-6), so the later rounds' prompts are harder")
    p.add_argument("--sft-data", help="SFT rows (JSONL / Parquet; default: the task's sft.jsonl)")
    p.add_argument("--prompts", help="prompt rows {id, prompt, answer?, difficulty?} (default: the task's)")
    p.add_argument("--heldout", help="held-out prompt rows (default: the task's)")
    p.add_argument("--scorer", help="verifier:<task>[:partial] | reward-model:<folder> | judge:<module>:<fn> "
                                    "(default verifier:<task>: right or wrong; :partial scores the share of right "
                                    "characters; accuracy is always the exact verifier's)")
    p.add_argument("--tokenizer", help="tokenizer (default: the base's own)")
    p.add_argument("--lake", help="the lake (default OUT/lake)")
    p.add_argument("--samples", type=int, default=8, help="responses sampled per prompt (8)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1.0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1.0: off)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="response length limit (32)")
    p.add_argument("--keep", choices=("wrong", "misranked", "all"), default="wrong",
                   help="which pairs train DPO: wrong (default): prompts the policy still gets wrong, its samples' "
                        "mean score below --hard-below; misranked: the policy gives the rejected response at least "
                        "the chosen one's mean log-probability; all")
    p.add_argument("--hard-below", type=float, default=0.5,
                   help="--keep wrong: keep a prompt's pair while its samples' mean score is below this (0.5)")
    p.add_argument("--min-margin", type=float, default=0.0, help="drop pairs whose score gap is not above this (0)")
    p.add_argument("--accept", type=float, default=1.0,
                   help="a best response scoring at least this becomes a new SFT example of the next round (1.0)")
    p.add_argument("--reference", choices=("round", "base"), default="round",
                   help="DPO's frozen reference: the round's SFT model (default) or BASE")
    p.add_argument("--sft-steps", type=int, default=150, help="SFT steps per round (150)")
    p.add_argument("--dpo-steps", type=int, default=30, help="DPO steps per round, at most (30)")
    p.add_argument("--dpo-epochs", type=float, default=3.0,
                   help="at most this many passes over a round's pairs (3): fewer pairs, fewer steps")
    p.add_argument("--sft-lr", type=float, default=3e-3, help="SFT learning rate (3e-3: tiny models)")
    p.add_argument("--dpo-lr", type=float, default=2e-4, help="DPO learning rate (2e-4: tiny models)")
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta (0.1)")
    p.add_argument("--rpo-alpha", type=float, default=1.0,
                   help="weight of the chosen responses' NLL added to the DPO loss (RPO; 1.0; 0: plain DPO)")
    p.add_argument("--batch", type=int, default=16, help="global batch of SFT sequences and of DPO pairs (16)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (128)")
    p.add_argument("--nproc", type=int, default=1, help="training processes (1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the task, sampling and training (0)")


def read_rows(path: str) -> list[dict]:
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def prompt_messages(row: dict) -> list[dict]:
    p = row.get("prompt", row.get("messages"))
    if isinstance(p, str):
        return [{"role": "user", "content": p}]
    return [m for m in p if m.get("role") != "assistant"] if row.get("messages") and "prompt" not in row else p


def meta_of(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("id", "prompt", "messages")}


class Policy:
    """A model and its chat tokenizer, for sampling, greedy answers and log-probabilities."""

    def __init__(self, path: str, tokenizer: str, args):
        from lakesift.chat import ChatTokenizer
        from training.start import load_full

        self.path, self.args = path, args
        self.model = load_full(path)
        self.tok = ChatTokenizer.load(tokenizer)

    def _prompts(self, rows):
        return [self.tok.encode_prompt(prompt_messages(r)) for r in rows]

    def _text(self, ids: list[int]) -> str:
        if ids and ids[-1] == self.tok.eos_id:
            ids = ids[:-1]
        return self.tok.decode(ids)

    def sample(self, rows, n: int, seed: int) -> list[list[str]]:
        from training.generate import sample

        out = sample(self.model, self._prompts(rows), n, max_new_tokens=self.args.max_new_tokens,
                     temperature=self.args.temperature, top_p=self.args.top_p, stop_ids=[self.tok.eos_id],
                     pad_id=self.tok.pad_id, seed=seed)
        return [[self._text(c) for c in per] for per in out]

    def greedy(self, rows) -> list[str]:
        from training.generate import generate

        out = generate(self.model, self._prompts(rows), max_new_tokens=self.args.max_new_tokens, temperature=0.0,
                       stop_ids=[self.tok.eos_id], pad_id=self.tok.pad_id)
        return [self._text(c) for c in out]

    def logps(self, rows, responses: list[str]) -> tuple[list[float], list[float]]:
        """(sum, mean per token) log-probability of each response (rendered as the template's assistant turn)."""
        from training.generate import sequence_logprobs

        prompts, completions = [], []
        for r, resp in zip(rows, responses, strict=True):
            msgs = prompt_messages(r)
            full, _, plen = self.tok.encode_pair(msgs, [{"role": "assistant", "content": resp}],
                                                 [{"role": "assistant", "content": resp}])
            prompts.append(full[:plen])
            completions.append(full[plen:])
        sums = sequence_logprobs(self.model, prompts, completions)
        if isinstance(sums, tuple):
            sums = sums[0]
        return list(sums), [s / max(1, len(c)) for s, c in zip(sums, completions, strict=True)]


def score_and_pair(policy: Policy, scorer, rows, n: int, seed: int, args, split: str, rnd: int, run_id: str):
    """Sample, score and pair; (kept pairs, all pairs, generation records, best-response SFT rows)."""
    from training.posttrain.scorers import pairs as make_pairs

    samples = policy.sample(rows, n, seed)
    flat_rows = [r for r, per in zip(rows, samples, strict=True) for _ in per]
    flat = [s for per in samples for s in per]
    scored = scorer.score([{"prompt": prompt_messages(r), "meta": meta_of(r)} for r in flat_rows], flat)
    _, means = policy.logps(flat_rows, flat)
    scores, gens, k = [], [], 0
    for r, per in zip(rows, samples, strict=True):
        scores.append([float(x) for x in scored[k:k + len(per)]])
        for j, resp in enumerate(per):
            gens.append({"run_id": run_id, "round": rnd, "split": split, "prompt_id": str(r["id"]), "sample": j,
                         "response": resp, "score": float(scored[k + j]), "mean_logp": float(means[k + j]),
                         "scorer": scorer.name})
        k += len(per)
    prs = make_pairs([{"prompt_id": str(r["id"]), "prompt": prompt_messages(r), "meta": meta_of(r), **r}
                      for r in rows], samples, scores, args.min_margin)
    mean_of = {(g["prompt_id"], g["response"]): g["mean_logp"] for g in gens}
    success = {str(r["id"]): sum(sc) / len(sc) for r, sc in zip(rows, scores, strict=True) if sc}
    kept = []
    for p in prs:
        c, w = mean_of[(p["prompt_id"], p["chosen"])], mean_of[(p["prompt_id"], p["rejected"])]
        p["policy_misranks"] = bool(w >= c)  # the policy gives the worse response the higher mean log-prob
        p["policy_success"] = success[p["prompt_id"]]  # the mean score of its samples for the prompt
        p["policy_wrong"] = p["policy_success"] < args.hard_below
        if (args.keep == "all" or (args.keep == "wrong" and p["policy_wrong"])
                or (args.keep == "misranked" and p["policy_misranks"])):
            kept.append(p)
    accepted = []
    for r, per, sc in zip(rows, samples, scores, strict=True):
        best = max(range(len(per)), key=lambda j: (sc[j], -j))
        if sc[best] >= args.accept:
            accepted.append({"id": f"r{rnd + 1}-{r['id']}", "round": rnd + 1,
                             "messages": [*prompt_messages(r), {"role": "assistant", "content": per[best]}],
                             **{k2: v for k2, v in meta_of(r).items() if k2 != "round"}})
    return kept, prs, gens, accepted


def evaluate(policy: Policy, scorer, rows, pairs: list[dict], args, seed: int, reference: Policy | None = None) -> dict:
    """Held-out verifier accuracy (greedy and sampled: ``scorer`` is the exact verifier) and, on held-out pairs,
    the preference accuracy: the share of pairs whose chosen response gets the higher implicit DPO reward
    log pi(y|x) - log pi_ref(y|x) against ``reference`` (ties count half, so the reference itself scores 0.5:
    TRL's rewards/accuracies on an evaluation set) and the ranking accuracy (the higher log pi alone)."""
    answers = policy.greedy(rows)
    items = [{"prompt": prompt_messages(r), "meta": meta_of(r)} for r in rows]
    greedy = scorer.score(items, answers)
    sampled = policy.sample(rows, args.samples, seed)
    flat_items = [it for it, per in zip(items, sampled, strict=True) for _ in per]
    s_scores = scorer.score(flat_items, [s for per in sampled for s in per])
    pref = ranking = None
    if pairs:
        by_id = {str(r["id"]): r for r in rows}
        prow = [by_id[p["prompt_id"]] for p in pairs]
        c, _ = policy.logps(prow, [p["chosen"] for p in pairs])
        w, _ = policy.logps(prow, [p["rejected"] for p in pairs])
        ranking = sum(a > b for a, b in zip(c, w, strict=True)) / len(pairs)
        rc, rw = (c, w) if reference is None else (reference.logps(prow, [p["chosen"] for p in pairs])[0],
                                                   reference.logps(prow, [p["rejected"] for p in pairs])[0])
        margins = [(a - ra) - (b - rb) for a, ra, b, rb in zip(c, rc, w, rw, strict=True)]
        pref = sum(1.0 if m > 1e-6 else 0.5 if abs(m) <= 1e-6 else 0.0 for m in margins) / len(pairs)
    return {"greedy_accuracy": sum(greedy) / max(1, len(greedy)),
            "sampled_accuracy": sum(s_scores) / max(1, len(s_scores)),
            "preference_accuracy": pref, "ranking_accuracy": ranking, "heldout_prompts": len(rows),
            "heldout_pairs": len(pairs)}


def round_slices(rows: list[dict], rounds: int) -> list[list[dict]]:
    """The prompts sorted by difficulty (then id) in ``rounds`` slices: later rounds get harder prompts."""
    rows = sorted(rows, key=lambda r: (float(r.get("difficulty") or 0), str(r["id"])))
    size = -(-len(rows) // rounds)
    return [rows[i * size:(i + 1) * size] for i in range(rounds)]


def prepare(args, out: Path) -> tuple[str, str, str, str, str, str]:
    """(base, sft data, prompts, heldout, scorer spec, tokenizer), making the task and base when not given."""
    task = out / "task"
    if not (args.sft_data and args.prompts and args.heldout):
        from training.posttrain import tasks

        if not (task / "sft.jsonl").is_file():
            n_sft, n_prompts, n_heldout = args.task_size
            t = tasks.get(args.task)
            lo, hi = t.difficulty
            tasks.make(args.task, task, n_sft=n_sft, n_prompts=n_prompts, n_heldout=n_heldout, seed=args.seed,
                       prompt_difficulty=(lo, hi + args.harder))
    base = args.base
    if base is None:
        from training.posttrain import tasks

        base = str(out / "base")
        if not Path(base, "config.json").is_file():
            tasks.init_model(args.base_kind, task / "tokenizer", base, seq_len=args.seq_len, seed=args.seed)
    from training.posttrain.cli import base_tokenizer

    tokenizer = args.tokenizer or base_tokenizer(base) or str(task / "tokenizer")
    return (base, args.sft_data or str(task / "sft.jsonl"), args.prompts or str(task / "prompts.jsonl"),
            args.heldout or str(task / "heldout.jsonl"), args.scorer or f"verifier:{args.task}", tokenizer)


def train_args(kind: str, args, base: str, data: str, out: Path, lake: str, tokenizer: str, where: str | None,
               steps: int, lr: float, reference: str | None = None) -> argparse.Namespace:
    """The namespace ``training.posttrain.cli.run`` takes, as the sft / dpo subcommands would parse it."""
    from training.posttrain.cli import REPO

    ns = argparse.Namespace(base=base, data=data, out=str(out), steps=steps, epochs=1.0, lr=lr, batch=args.batch,
                            micro_batch=None, scale=str(REPO / "conf" / "scales" / f"{kind}.yaml"),
                            tokenizer=tokenizer, template=None, seq_len=args.seq_len, lake=lake, where=where,
                            eval_dir=None, nproc=args.nproc, seed=args.seed, log_every=10, ckpt_every=10_000)
    if kind == "sft":
        ns.packing, ns.mask = "bfd", "assistant"
    else:
        ns.beta, ns.dpo_loss, ns.reference, ns.rpo_alpha = args.beta, "sigmoid", reference, args.rpo_alpha
    return ns


def record(spark, lake: str, table: str, ddl: str, rows: list[dict]) -> None:
    """Append rows to a lake table (created on first use)."""
    if not rows:
        return
    from jobs.common.lake import Lake

    names = [c.split()[0] for c in ddl.split(", ")]
    df = spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], ddl)
    df.write.format("delta").mode("append").option("mergeSchema", "true").save(Lake(lake).path(table))


def main(args) -> int:
    import datetime as dt
    import uuid

    from jobs.common.session import get_spark
    from training.posttrain import cli, scorers

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    lake = args.lake or str(out / "lake")
    base, sft_data, prompts_file, heldout_file, scorer_spec, tokenizer = prepare(args, out)
    scorer = scorers.build(scorer_spec)
    # accuracy is exact correctness: the task's verifier when the pairing scorer is a (partial) verifier
    exact = scorers.build(":".join(scorer_spec.split(":")[:2])) if scorer_spec.startswith("verifier:") else scorer
    run_id = f"posttrain-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    cli.say(f"loop {run_id}: {args.rounds} round(s) from {base}; scorer {scorer.name}; lake {lake}")
    cli.spark_job(["import", "--kind", "sft", "--input", sft_data, "--lake", lake, "--source", "sft",
                   "--mode", "overwrite"], "import the SFT set")
    spark = get_spark("lakesift-posttrain")
    slices = round_slices(read_rows(prompts_file), args.rounds)
    heldout = read_rows(heldout_file)
    history: list[dict] = []
    start = base

    def note(rnd: int, model: str, phase: str, path: str, metrics: dict) -> None:
        row = {"run_id": run_id, "round": rnd, "model": model, "phase": phase, "checkpoint": path,
               "metrics_json": json.dumps(metrics), "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None)}
        record(spark, lake, "posttrain_rounds", ROUNDS_DDL, [row])
        history.append({**{k: v for k, v in row.items() if k != "metrics_json"}, "metrics": metrics,
                        "created_at": row["created_at"].isoformat()})
        (out / "rounds.json").write_text(json.dumps({"run_id": run_id, "rounds": history}, indent=1))
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}
        cli.say(f"round {rnd} {phase}: {shown}")

    base_policy = Policy(base, tokenizer, args)
    note(0, base, "base", base, evaluate(base_policy, exact, heldout, [], args, args.seed))
    del base_policy
    for rnd in range(1, args.rounds + 1):
        t0 = time.perf_counter()
        rdir = out / f"round-{rnd}"
        sft = cli.run("sft", train_args("sft", args, start, "sft_examples", rdir / "sft", lake, tokenizer,
                                        f"round IS NULL OR round <= {rnd}", args.sft_steps, args.sft_lr))
        policy = Policy(sft["model"], tokenizer, args)
        kept, pairs, gens, accepted = score_and_pair(policy, scorer, slices[rnd - 1], args.samples,
                                                     args.seed + rnd, args, "train", rnd, run_id)
        _, h_pairs, h_gens, _ = score_and_pair(policy, scorer, heldout, args.samples, args.seed + 1000 + rnd,
                                               args, "heldout", rnd, run_id)
        record(spark, lake, "posttrain_generations", GENERATIONS_DDL, gens + h_gens)
        write_rows(rdir / "heldout_pairs.jsonl", h_pairs)
        sft_metrics = {**evaluate(policy, exact, heldout, h_pairs, args, args.seed + 2000 + rnd),
                       "round_prompts": len(slices[rnd - 1]), "pairs": len(pairs), "pairs_kept": len(kept),
                       "new_sft_examples": len(accepted), "train_loss": (sft["last"] or {}).get("loss")}
        note(rnd, sft["model"], "sft", sft["model"], sft_metrics)
        if accepted:
            write_rows(rdir / "new_sft.jsonl", accepted)
            cli.spark_job(["import", "--kind", "sft", "--input", str(rdir / "new_sft.jsonl"), "--lake", lake,
                           "--source", f"round-{rnd}", "--mode", "append"], f"round {rnd}: new SFT examples")
        if not kept:
            cli.say(f"round {rnd}: no pair left to train DPO on (pairs {len(pairs)}, kept 0); the SFT model "
                    "goes on")
            del policy
            start = sft["model"]
            continue
        pref_rows = [{"id": f"r{rnd}-{p['prompt_id']}", "prompt": p["prompt"], "chosen": p["chosen"],
                      "rejected": p["rejected"], "round": rnd, "chosen_score": p["chosen_score"],
                      "rejected_score": p["rejected_score"], "scorer": scorer.name, "margin": p.get("margin"),
                      "policy_wrong": p["policy_wrong"], "policy_success": p["policy_success"],
                      "policy_misranks": p["policy_misranks"]} for p in kept]
        write_rows(rdir / "pairs.jsonl", pref_rows)
        cli.spark_job(["import", "--kind", "preferences", "--input", str(rdir / "pairs.jsonl"), "--lake", lake,
                       "--source", f"round-{rnd}", "--mode", "append"], f"round {rnd}: preference pairs")
        reference = sft["model"] if args.reference == "round" else base
        steps = max(1, min(args.dpo_steps, math.ceil(args.dpo_epochs * len(kept) / args.batch)))
        dpo = cli.run("dpo", train_args("dpo", args, sft["model"], "preferences", rdir / "dpo", lake, tokenizer,
                                        f"round = {rnd}", steps, args.dpo_lr, reference))
        ref_policy = policy if args.reference == "round" else Policy(base, tokenizer, args)
        policy = Policy(dpo["model"], tokenizer, args)
        last = dpo["last"] or {}
        note(rnd, dpo["model"], "dpo", dpo["model"],
             {**evaluate(policy, exact, heldout, h_pairs, args, args.seed + 2000 + rnd, ref_policy),
              "pairs_kept": len(kept), "pairs_trained": int(dpo["counts"].get("sequences", 0)),
              "train_loss": last.get("loss"), "rewards/accuracies": last.get("rewards/accuracies"),
              "rewards/margins": last.get("rewards/margins"), "seconds": round(time.perf_counter() - t0, 1)})
        del policy, ref_policy
        start = dpo["model"]
    summary(history)
    cli.say(f"rounds: {out / 'rounds.json'}; lake tables posttrain_rounds, posttrain_generations, preferences, "
            f"sft_examples in {lake}")
    return 0


def summary(history: list[dict]) -> None:
    print(f"\n{'round':>5} {'phase':<5} {'greedy acc':>10} {'sampled acc':>11} {'pref acc':>8} {'pairs kept':>10}")
    for h in history:
        m = h["metrics"]
        pref = "-" if m.get("preference_accuracy") is None else f"{m['preference_accuracy']:.3f}"
        kept = m.get("pairs_kept", m.get("pairs_trained", "-"))
        print(f"{h['round']:>5} {h['phase']:<5} {m['greedy_accuracy']:>10.3f} {m['sampled_accuracy']:>11.3f} "
              f"{pref:>8} {kept!s:>10}")
