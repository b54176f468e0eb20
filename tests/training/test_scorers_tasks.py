"""training.posttrain.tasks (synthetic checkable tasks, their character tokenizer and tiny initial models) and
training.posttrain.scorers (verifier, reward model, judge hook; best-vs-worst pairs)."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from training.posttrain import scorers, tasks

N_SFT, N_PROMPTS, N_HELDOUT = 60, 20, 10


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("task")
    tasks.make("reverse", out, n_sft=N_SFT, n_prompts=N_PROMPTS, n_heldout=N_HELDOUT, seed=0)
    return out


def _read(folder):
    return {name: (folder / f"{name}.jsonl").read_text() for name in ("sft", "prompts", "heldout")}


def test_task_files(data):
    sft, prompts, heldout = (tasks.read_jsonl(data / f"{n}.jsonl") for n in ("sft", "prompts", "heldout"))
    assert (len(sft), len(prompts), len(heldout)) == (N_SFT, N_PROMPTS, N_HELDOUT)
    lo, hi = tasks.TASKS["reverse"].difficulty
    for r in sft:
        assert set(r) == {"id", "messages", "answer", "difficulty"}
        user, assistant = r["messages"]
        assert user["role"] == "user" and assistant == {"role": "assistant", "content": r["answer"]}
        assert user["content"] == "reverse: " + r["answer"][::-1] and len(r["answer"]) == r["difficulty"]
        assert lo <= r["difficulty"] <= hi
    for r in prompts + heldout:
        assert set(r) == {"id", "prompt", "answer", "difficulty"}
        assert [m["role"] for m in r["prompt"]] == ["user"]
        assert tasks.verify("reverse", r, r["answer"]) == 1.0
    questions = [r["messages"][0]["content"] for r in sft] + [r["prompt"][0]["content"] for r in prompts + heldout]
    assert len(set(questions)) == len(questions)  # disjoint splits, no duplicates
    ids = [r["id"] for r in sft + prompts + heldout]
    assert len(set(ids)) == len(ids)
    assert len({r["difficulty"] for r in sft}) > 1
    info = json.loads((data / "task.json").read_text())
    assert info["task"] == "reverse" and info["n_sft"] == N_SFT


def test_task_files_are_deterministic(data, tmp_path):
    tasks.make("reverse", tmp_path / "same", n_sft=N_SFT, n_prompts=N_PROMPTS, n_heldout=N_HELDOUT, seed=0)
    tasks.make("reverse", tmp_path / "other", n_sft=N_SFT, n_prompts=N_PROMPTS, n_heldout=N_HELDOUT, seed=1)
    assert _read(tmp_path / "same") == _read(data)
    assert _read(tmp_path / "other")["sft"] != _read(data)["sft"]
    assert (tmp_path / "same" / "tokenizer" / "tokenizer.json").read_text() == \
        (data / "tokenizer" / "tokenizer.json").read_text()


def test_difficulty_and_other_tasks(tmp_path):
    hard = tasks.problems("reverse", 30, difficulty=(8, 9), seed=0)
    assert {len(p["answer"]) for p in hard} <= {8, 9}
    easy = tasks.problems("reverse", 30, difficulty=3, seed=0)
    again = tasks.problems("reverse", 30, difficulty=3, seed=1, exclude={p["question"] for p in easy})
    assert not {p["question"] for p in easy} & {p["question"] for p in again}
    with pytest.raises(ValueError, match="too few distinct"):
        tasks.problems("reverse", 30, difficulty=1)  # 26 strings of one letter
    with pytest.raises(ValueError, match="unknown task"):
        tasks.make("nope", tmp_path)
    for p in tasks.problems("add", 50, difficulty=(1, 3), seed=0):
        a, b = p["question"].split("+")
        assert int(a) + int(b) == int(p["answer"]) and max(len(a), len(b)) == p["difficulty"]
        assert tasks.verify("add", {"prompt": [{"role": "user", "content": p["question"]}]}, p["answer"]) == 1.0


def _render(tok, messages, add_generation_prompt=False):
    return tok.apply_chat_template(messages, chat_template=scorers.DEFAULT_CHAT_TEMPLATE, tokenize=False,
                                   add_generation_prompt=add_generation_prompt)


def test_tokenizer_round_trip(data):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(data / "tokenizer"))
    assert tok.eos_token == "<eos>" and tok.pad_token == "<pad>" and tok.chat_template is None
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 1)
    rows = tasks.read_jsonl(data / "sft.jsonl")[:10]
    chats = [r["messages"] for r in rows] + [
        [{"role": "system", "content": "Be brief, exact & kind: {ok}? ~`|\\\"' [x] 0-9."},
         {"role": "user", "content": "Hello World!\n  spaces, (x) + y = 3%"}]]
    for messages in chats:
        for gen in (False, True):
            text = _render(tok, messages, gen)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id not in ids
            assert tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) == text
            assert ids.count(tok.eos_token_id) == text.count("<eos>")
    assert tok("a\tb", add_special_tokens=False)["input_ids"][1] == tok.unk_token_id  # outside the charset
    text = _render(tok, rows[0]["messages"])
    assert text == f"<|user|>\n{rows[0]['messages'][0]['content']}<eos>\n<|assistant|>\n{rows[0]['answer']}<eos>\n"
    assert len(tok(text, add_special_tokens=False)["input_ids"]) == len(text) - 2 * (len("<eos>") - 1)


@pytest.mark.parametrize("kind", ["hf", "ours"])
def test_init_model(data, tmp_path, kind):
    from transformers import AutoTokenizer

    out = tasks.init_model(kind, data / "tokenizer", tmp_path / kind, d_model=32, n_layers=2, n_heads=4, seq_len=64)
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.eos_token == "<eos>" and tok.pad_token == "<pad>"
    x = torch.tensor([tok("<|user|>\nreverse: abc<eos>\n", add_special_tokens=False)["input_ids"]])
    if kind == "hf":
        from transformers import AutoModelForCausalLM

        from training import hf

        m = AutoModelForCausalLM.from_pretrained(str(out)).eval()
        assert m.config.vocab_size == len(tok) and m.config.eos_token_id == tok.eos_token_id
        assert hf.is_hf_checkpoint(out)
        with torch.no_grad():
            assert torch.allclose(hf.load(str(out))(x), m(x).logits)
    else:
        from training.export import load

        conf = json.loads((out / "config.json").read_text())
        assert conf["format"] == "lakesift-open_lm" and conf["scale"] == "posttrain-tiny"
        assert conf["model"]["vocab_size"] == len(tok) and conf["model"]["d_model"] == 32
        m = load(out)
        with torch.no_grad():
            assert m(x).shape == (1, x.shape[1], len(tok))
        from training.model import Transformer, init_parameters

        fresh = Transformer(m.cfg)
        init_parameters(fresh, 0)
        assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), m.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="unknown model kind"):
        tasks.init_model("jax", data / "tokenizer", tmp_path / "x")


def test_cli(tmp_path, capsys):
    assert tasks.main(["make", "--task", "add", "--out", str(tmp_path / "d"), "--n-sft", "5", "--n-prompts", "3",
                       "--n-heldout", "2", "--difficulty", "2-3", "--seed", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["difficulty"] == [2, 3]
    assert len(tasks.read_jsonl(tmp_path / "d" / "prompts.jsonl")) == 3
    assert tasks.main(["init-model", "--kind", "ours", "--tokenizer", str(tmp_path / "d" / "tokenizer"),
                       "--out", str(tmp_path / "m"), "--d-model", "16", "--n-heads", "2"]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()
    for argv in (["--help"], ["make", "--help"], ["init-model", "--help"]):
        with pytest.raises(SystemExit) as e:
            tasks.main(argv)
        assert e.value.code == 0
    assert "reverse" in capsys.readouterr().out


def test_verify():
    row = {"prompt": [{"role": "user", "content": "reverse: abcd"}], "meta": {"answer": "dcba"}}
    assert tasks.verify("reverse", row, "dcba") == 1.0
    assert tasks.verify("reverse", row, " dcba\n") == 1.0
    assert tasks.verify("reverse", row, "dcbb") == 0.0
    assert tasks.verify("reverse", {"answer": "dcba"}, "dcba") == 1.0
    assert tasks.verify("reverse", {"prompt": row["prompt"]}, "dcba") == 1.0  # answer recomputed
    assert tasks.verify("reverse", row, "dcbb", partial=True) == 0.75
    assert tasks.verify("reverse", row, "dcbaxx", partial=True) == pytest.approx(4 / 6)
    assert tasks.verify("reverse", row, "", partial=True) == 0.0
    assert tasks.verify("add", {"answer": "105"}, "95", partial=True) == pytest.approx(1 / 3)  # place values
    with pytest.raises(ValueError, match="no answer"):
        tasks.verify("reverse", {"meta": {}}, "x")


def test_verifier_scorer():
    rows = [{"prompt": [{"role": "user", "content": "reverse: abc"}], "meta": {"answer": "cba"}}] * 3
    s = scorers.build("verifier:reverse")
    assert s.name == "verifier:reverse" and isinstance(s, scorers.Scorer)
    assert s.score(rows, ["cba", "cbx", "abc"]) == [1.0, 0.0, 0.0]
    p = scorers.build("verifier:reverse:partial")
    assert p.score(rows, ["cba", "cbx", "abc"]) == pytest.approx([1.0, 2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="responses"):
        s.score(rows, ["cba"])


@pytest.fixture(scope="module")
def reward_model(data, tmp_path_factory):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from training.hf import write_tokenizer

    out = tmp_path_factory.mktemp("rm")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tasks.vocab_size(data / "tokenizer"), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      num_labels=1, pad_token_id=0, initializer_range=0.2)
    LlamaForSequenceClassification(cfg).save_pretrained(str(out))
    write_tokenizer(data / "tokenizer", out)
    return out


def test_reward_model_scorer(reward_model):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = [{"prompt": [{"role": "user", "content": "reverse: abc"}], "meta": {}},
            {"prompt": [{"role": "system", "content": "be exact"}, {"role": "user", "content": "reverse: hello"}],
             "meta": {}}] * 2
    responses = ["cba", "olleh", "a much longer wrong answer", ""]
    s = scorers.build(f"reward-model:{reward_model}", batch_size=3)
    assert s.name == f"reward-model:{reward_model}"
    got = s.score(rows, responses)
    tok = AutoTokenizer.from_pretrained(str(reward_model))
    m = AutoModelForSequenceClassification.from_pretrained(str(reward_model)).eval()
    want = []
    with torch.no_grad():
        for r, resp in zip(rows, responses, strict=True):
            text = _render(tok, r["prompt"] + [{"role": "assistant", "content": resp}])
            assert text.endswith(f"<|assistant|>\n{resp}<eos>\n")
            want.append(float(m(torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])).logits[0, 0]))
    assert got == pytest.approx(want, abs=1e-4)  # batched with padding = each alone
    assert len(set(round(g, 4) for g in got)) == 4
    assert scorers.build(f"reward-model:{reward_model}", batch_size=1).score(rows, responses) == \
        pytest.approx(got, abs=1e-4)


def test_judge_scorer(tmp_path, monkeypatch):
    (tmp_path / "my_judge_mod.py").write_text(
        "def score(rows, responses):\n    return [len(r) + (10 if row['meta'].get('bonus') else 0)"
        " for row, r in zip(rows, responses)]\n"
        "def bad(rows, responses):\n    return [1.0]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [{"prompt": [], "meta": {}}, {"prompt": [], "meta": {"bonus": True}}]
    s = scorers.build("judge:my_judge_mod:score")
    assert s.name == "judge:my_judge_mod:score" and s.score(rows, ["ab", "c"]) == [2.0, 11.0]
    with pytest.raises(ValueError, match="returned 1 scores"):
        scorers.build("judge:my_judge_mod:bad").score(rows, ["a", "b"])
    with pytest.raises(ValueError, match="cannot import"):
        scorers.build("judge:my_judge_mod:missing")
    with pytest.raises(ValueError, match="cannot import"):
        scorers.build("judge:no_such_module_xyz:score")
    sys.modules.pop("my_judge_mod", None)


@pytest.mark.parametrize("spec", ["", "verifier", "verifier:", "bleu:x", "judge:onlymodule", "reward-model:",
                                  "verifier:reverse:fuzzy"])
def test_unknown_specs(spec):
    with pytest.raises(ValueError, match="scorer|unknown"):
        scorers.build(spec)


def test_unknown_task_and_missing_reward_model(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        scorers.build("verifier:nope")
    with pytest.raises(ValueError, match="no config.json"):
        scorers.build(f"reward-model:{tmp_path}")


def test_pairs():
    rows = [{"id": "a", "prompt": [{"role": "user", "content": "q0"}]},
            {"id": "b", "prompt": [{"role": "user", "content": "q1"}]},
            {"prompt": [{"role": "user", "content": "q2"}]},
            {"id": "d", "prompt": [{"role": "user", "content": "q3"}]}]
    responses = [["r0", "r1", "r2", "r3"], ["s0", "s1"], ["t0", "t1", "t2"], ["u0"]]
    scores = [[0.0, 1.0, 1.0, 0.0], [0.5, 0.5], [0.2, 0.9, 0.6], [1.0]]
    got = scorers.pairs(rows, responses, scores)
    assert got == [
        {"prompt_id": "a", "prompt": rows[0]["prompt"], "chosen": "r1", "rejected": "r0", "chosen_score": 1.0,
         "rejected_score": 0.0, "margin": 1.0},
        {"prompt_id": 2, "prompt": rows[2]["prompt"], "chosen": "t1", "rejected": "t0", "chosen_score": 0.9,
         "rejected_score": 0.2, "margin": pytest.approx(0.7)}]
    assert [p["prompt_id"] for p in scorers.pairs(rows, responses, scores, min_margin=0.7)] == ["a"]
    assert scorers.pairs(rows, responses, scores, min_margin=1.0) == []
    assert [p["prompt_id"] for p in scorers.pairs(rows[:2], responses[:2], scores[:2], min_margin=-1)] == ["a"]
    named = [{"prompt_id": "p7", "id": 7, "prompt": []}]
    assert scorers.pairs(named, [["x", "y"]], [[0.0, 1.0]])[0]["prompt_id"] == "p7"
    with pytest.raises(ValueError, match="scores"):
        scorers.pairs(rows[:1], [["x", "y"]], [[1.0]])
