"""Post-training end to end: ``make sft`` / ``make dpo``'s command on a Hugging Face base from raw JSONL (import,
build, train, OUT/hf), and the iterative loop on the synthetic task (SFT beats the base, DPO beats SFT on the
held-out verifier and preference accuracy, every round recorded in the lake)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.spark


def metrics(out) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    from training.posttrain import tasks

    root = tmp_path_factory.mktemp("pt")
    tasks.make("reverse", root / "task", n_sft=300, n_prompts=20, n_heldout=20, seed=1)
    tasks.init_model("hf", root / "task" / "tokenizer", root / "base", seq_len=64, seed=1)
    return root


def test_sft_then_dpo_commands_on_a_hugging_face_base(task, spark, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lakesift.chat import ChatTokenizer
    from training.posttrain import cli

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sft_out = task / "sft"
    assert cli.main(["sft", "--base", str(task / "base"), "--data", str(task / "task" / "sft.jsonl"),
                     "--out", str(sft_out), "--steps", "12", "--batch", "8", "--lr", "3e-3", "--seq-len", "64",
                     "--log-every", "4"]) == 0
    lines = metrics(sft_out)
    assert len(lines) == 12 and lines[-1]["loss"] < lines[0]["loss"]
    rec = json.loads((sft_out / "posttrain.json").read_text())
    assert rec["counts"]["examples_read"] == 300 and rec["counts"]["examples_written"] == 300
    assert spark.read.format("delta").load(str(sft_out / "lake" / "sft_examples")).count() == 300
    # a Hugging Face base comes back as a Hugging Face folder, with the template the data was rendered with
    hf_dir = sft_out / "hf"
    assert (sft_out / "final").resolve() == hf_dir.resolve()
    model = AutoModelForCausalLM.from_pretrained(hf_dir)
    tok = AutoTokenizer.from_pretrained(hf_dir)
    msgs = [{"role": "user", "content": "reverse: abc"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == \
        ChatTokenizer.load(str(task / "task" / "tokenizer")).render(msgs, add_generation_prompt=True)
    assert model.config.vocab_size == len(tok)

    # preferences in TRL's conversational shape, one with the `reject` alias, one broken row
    prefs = task / "prefs.jsonl"
    rows = [json.loads(x) for x in (task / "task" / "prompts.jsonl").read_text().splitlines()]
    with open(prefs, "w") as fh:
        for i, r in enumerate(rows[:8]):
            wrong = {"rejected" if i % 2 else "reject": [{"role": "assistant", "content": r["answer"][::-1] + "x"}]}
            fh.write(json.dumps({"id": r["id"], "prompt": r["prompt"],
                                 "chosen": [{"role": "assistant", "content": r["answer"]}], **wrong}) + "\n")
        fh.write('{"prompt": "no pair here"}\n')
    dpo_out = task / "dpo"
    assert cli.main(["dpo", "--base", str(hf_dir), "--data", str(prefs), "--out", str(dpo_out), "--steps", "3",
                     "--batch", "4", "--lr", "1e-3", "--seq-len", "64", "--log-every", "1"]) == 0
    lines = metrics(dpo_out)
    assert len(lines) == 3 and lines[0]["loss"] == pytest.approx(0.693147, abs=1e-5)  # policy = reference
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"} <= set(lines[-1])
    assert lines[-1]["rewards/margins"] > 0
    rejects = spark.read.format("delta").load(str(dpo_out / "lake" / "instruct_rejects")).collect()
    assert [r.reason for r in rejects] == ["missing_chosen"]
    assert AutoModelForCausalLM.from_pretrained(dpo_out / "hf") is not None


def run_loop(out, rounds: int, *extra: str) -> dict:
    from training.posttrain import cli

    assert cli.main(["loop", "--out", str(out), "--rounds", str(rounds), *extra]) == 0
    return json.loads((out / "rounds.json").read_text())


def by_phase(history: dict) -> dict:
    return {(r["round"], r["phase"]): r["metrics"] for r in history["rounds"]}


@pytest.mark.slow
def test_one_round_sft_then_dpo_improves_on_held_out(tmp_path, spark, monkeypatch):
    """The loop's defaults on the synthetic task (2000 SFT rows, 500 prompts, 200 held out): SFT beats the base,
    DPO on pairs from the SFT model's own samples beats SFT on the held-out preference accuracy and on the
    verifier's accuracy of sampled answers."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "loop"
    h = by_phase(run_loop(out, 1))
    base, sft, dpo = h[(0, "base")], h[(1, "sft")], h[(1, "dpo")]
    assert sft["greedy_accuracy"] > base["greedy_accuracy"] + 0.2
    assert sft["preference_accuracy"] == 0.5  # the reference itself: every implicit reward is 0
    assert dpo["preference_accuracy"] > 0.6
    assert dpo["sampled_accuracy"] > sft["sampled_accuracy"]
    assert dpo["greedy_accuracy"] >= sft["greedy_accuracy"] - 0.02
    rounds = spark.read.format("delta").load(str(out / "lake" / "posttrain_rounds")).collect()
    assert sorted((r["round"], r["phase"]) for r in rounds) == [(0, "base"), (1, "dpo"), (1, "sft")]
    gens = spark.read.format("delta").load(str(out / "lake" / "posttrain_generations"))
    assert gens.where("split = 'train'").count() == 500 // 1 * 8
    prefs = spark.read.format("delta").load(str(out / "lake" / "preferences")).collect()
    assert prefs and all(p["round"] == 1 and p["chosen_score"] > p["rejected_score"] for p in prefs)
    assert dpo["pairs_trained"] == len(prefs)
    # every kept pair is either a preference row or a recorded rejection (an empty response: empty_content)
    rejects = spark.read.format("delta").load(str(out / "lake" / "instruct_rejects")).where("source = 'round-1'")
    assert dpo["pairs_kept"] == len(prefs) + rejects.where("kind = 'preferences'").count()


@pytest.mark.slow
def test_three_rounds_end_to_end(tmp_path, spark, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "loop3"
    h = by_phase(run_loop(out, 3))
    assert {k for k in h} >= {(0, "base"), (1, "sft"), (2, "sft"), (3, "sft")}
    assert h[(3, "sft")]["greedy_accuracy"] > h[(1, "sft")]["greedy_accuracy"]
    sft_rows = spark.read.format("delta").load(str(out / "lake" / "sft_examples"))
    assert sft_rows.where("round = 2").count() > 0  # round 1's verified responses joined round 2's SFT set
