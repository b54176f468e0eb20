"""CORE-style evaluation: prompts, scoring against hand-computed losses, an oracle scores 100%, a
model without preference scores chance, missing tasks never count as zero, examples longer than a
model's window are cut from the left or skipped with a reason, never a crash."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import REPO
from training import eval as E
from training.config import ModelConfig
from training.model import Transformer, init_parameters

CFG = ModelConfig(d_model=32, n_layers=1, n_heads=2, vocab_size=50432, seq_len=256)


@pytest.fixture(scope="module")
def tok(shared):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(shared / "data" / "tokenizers" / "gpt-neox-20b" / "20B_tokenizer.json"))


@pytest.fixture(scope="module")
def model():
    m = Transformer(CFG)
    init_parameters(m, 3)
    return m.eval()


def rows_of(shared, rel, n=None):
    lines = (shared / "data" / "eval" / rel).read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines[:n]]


def test_prompts_for_each_format():
    mc = E.TaskSpec(label="t", file="x", type="multiple_choice", shots=1, continuation_delimiter="\nAnswer: ")
    rows = [{"query": "Q0?", "choices": ["a", "b"], "gold": 1}, {"query": "Q1?", "choices": ["c", "d"], "gold": 0}]
    assert E.prompts(rows, 0, mc, 1) == [("Q1?\nAnswer: c\nQ0?\nAnswer: ", "a"), ("Q1?\nAnswer: c\nQ0?\nAnswer: ", "b")]
    schema = E.TaskSpec(label="s", file="x", type="schema")
    srow = [{"context_options": ["The cat", "The dog"], "continuation": "barked.", "gold": 1}]
    assert E.prompts(srow, 0, schema, 1) == [("The cat ", "barked."), ("The dog ", "barked.")]
    lm = E.TaskSpec(label="l", file="x", type="language_modeling", shots=1)
    lrows = [{"context": "one two", "continuation": "three"}, {"context": "a b", "continuation": "c"}]
    assert E.prompts(lrows, 1, lm, 1) == [("one two three\na b ", "c")]
    qa = E.TaskSpec(label="q", file="x", type="generation_task_with_answers", question_prelimiter="Q: ")
    assert E.prompts([{"context": "Who?", "answer": "Me"}], 0, qa, 1) == [("Q: Who? ", "Me")]
    assert 0 not in E.fewshot_indices(10, 9, 0, 1, "t") and len(E.fewshot_indices(10, 3, 0, 1, "t")) == 3
    assert E.fewshot_indices(10, 3, 4, 1, "t") == E.fewshot_indices(10, 3, 4, 1, "t")
    assert E.normalize_answer("The  Tower of London!") == "tower of london"


def test_scores_equal_hand_computed_losses_batched_or_not(model, tok):
    pairs = [("The capital of France is", " Paris"), ("Once upon a", " time there was"), ("x", " y z w v")]
    one = E.Scorer(model, tok, CFG.seq_len, batch_size=1)
    many = E.Scorer(model, tok, CFG.seq_len, batch_size=8)
    reqs = [one.request(c, x) for c, x in pairs]
    got1, got8 = one.score(reqs), many.score(reqs)
    for r, (s1, m1, g1), (s8, m8, g8) in zip(reqs, got1, got8, strict=True):
        ids = torch.tensor([r.context + r.continuation])
        with torch.no_grad():
            logp = F.log_softmax(model(ids[:, :-1]), dim=-1)[0]
        pos = range(len(r.context) - 1, len(r.context) - 1 + len(r.continuation))
        losses = [-float(logp[p, t]) for p, t in zip(pos, r.continuation, strict=True)]
        assert s1 == pytest.approx(sum(losses), rel=1e-5) and m1 == pytest.approx(sum(losses) / len(losses), rel=1e-5)
        assert (s8, m8, g8) == pytest.approx((s1, m1, g1), rel=1e-5)


class Oracle:
    """Gives the gold continuation (or gold context) loss 0 and everything else loss 1."""

    def __init__(self, rows, key):
        self.flags = [j == r["gold"] for r in rows for j in range(len(r[key]))]

    def request(self, c, x):
        return (c, x)

    def score(self, reqs):
        assert len(reqs) == len(self.flags)
        return [(0.0, 0.0, True) if f else (1.0, 1.0, False) for f in self.flags]


def test_oracle_scores_100_and_a_flat_model_scores_chance(shared, tok):
    piqa = rows_of(shared, "commonsense_reasoning/piqa.jsonl", 400)
    spec = E.TaskSpec(label="piqa", file="x", type="multiple_choice", shots=0)
    assert E.evaluate_task(spec, piqa, Oracle(piqa, "choices"), 1, None)["accuracy"] == 1.0
    wino = rows_of(shared, "language_understanding/winogrande.jsonl", 200)
    wspec = E.TaskSpec(label="w", file="x", type="schema")
    assert E.evaluate_task(wspec, wino, Oracle(wino, "context_options"), 1, None)["accuracy"] == 1.0

    def flat(x):  # no preference at all: every continuation gets the same mean loss
        return torch.zeros(*x.shape, CFG.vocab_size)

    arc = rows_of(shared, "world_knowledge/arc_easy.jsonl", 400)
    s = E.Scorer(flat, tok, 512, batch_size=4)
    acc_piqa = E.evaluate_task(spec, piqa, s, 1, None)["accuracy"]
    acc_arc = E.evaluate_task(E.TaskSpec(label="a", file="x", type="multiple_choice"), arc, s, 1, None)["accuracy"]
    assert abs(acc_piqa - 0.5) < 0.075 and abs(acc_arc - 0.25) < 0.065, (acc_piqa, acc_arc)


def test_cli_reports_missing_tasks_and_writes_json(shared, tmp_path, model):
    from training.config import ScaleConfig
    from training.export import export

    scale = ScaleConfig(name="t", model=CFG, global_batch=1, micro_batch=1, lr=1e-3, warmup=0, weight_decay=0,
                        z_loss=0, final_lr=0)
    export(model, scale, tmp_path / "ckpt")
    suite = tmp_path / "suite.yaml"
    suite.write_text("""name: core
tasks:
  - {label: copa, file: commonsense_reasoning/copa.jsonl, type: multiple_choice, shots: 0, random_baseline: 50}
  - {label: lambada_openai, file: language_understanding/lambada_openai.jsonl, type: language_modeling, shots: 0}
  - {label: hellaswag, file: language_understanding/hellaswag.jsonl, type: multiple_choice, shots: 10, random_baseline: 25}
""")
    out = tmp_path / "r.json"
    assert E.main(["--checkpoint", str(tmp_path / "ckpt"), "--suite", str(suite), "--out", str(out), "--limit", "12",
                   "--eval-dir", str(shared / "data" / "eval"), "--ppl-text",
                   str(shared / "data" / "text" / "wikitext2" / "valid.txt"), "--ppl-tokens", "2000"]) == 0
    r = json.loads(out.read_text())
    assert r["CORE"] is None and r["tasks_missing"] == ["hellaswag"] and r["tasks_scored"] == 2
    assert set(r["tasks"]) == {"copa", "lambada_openai"} and r["tasks"]["copa"]["examples"] == 12
    c = r["tasks"]["copa"]
    assert c["centered"] == pytest.approx((c["accuracy"] - 0.5) / 0.5)
    assert r["CORE_over_present_tasks"] == pytest.approx((c["centered"] + r["tasks"]["lambada_openai"]["centered"]) / 2)
    assert "commonsense_reasoning/copa.jsonl" in r["data_sha1"] and r["perplexity"]["value"] > 1000  # untrained
    assert len(E.load_suite(REPO / "conf" / "eval" / "core.yaml").tasks) == 22
    assert len(E.load_suite(REPO / "conf" / "eval" / "extended.yaml").tasks) == 53


def test_hugging_face_causal_lm_folder(shared, tmp_path, tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=50432, n_positions=512, n_embd=32, n_layer=1, n_head=2))
    hf.eval().save_pretrained(tmp_path / "hf")
    model, max_len, kind = E.load_checkpoint(str(tmp_path / "hf"))
    assert kind == "transformers" and max_len == 512
    scorer = E.Scorer(model, tok, max_len, batch_size=4)
    req = scorer.request("The capital of France is", " Paris")
    (s, m, _), = scorer.score([req])
    ids = torch.tensor([req.context + req.continuation])
    with torch.no_grad():
        logp = F.log_softmax(hf(ids[:, :-1]).logits, dim=-1)[0]
    expected = -sum(float(logp[len(req.context) - 1 + k, t]) for k, t in enumerate(req.continuation))
    assert s == pytest.approx(expected, rel=1e-5)
    copa = rows_of(shared, "commonsense_reasoning/copa.jsonl", 10)
    r = E.evaluate_task(E.TaskSpec(label="copa", file="x", type="multiple_choice"), copa, scorer, 1, None)
    assert r["examples"] == 10


TINY = ModelConfig(d_model=16, n_layers=1, n_heads=2, vocab_size=256, seq_len=32)


def byte_tokenizer():
    """One token per byte (vocabulary 256), so lengths below are plain byte counts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def test_examples_longer_than_the_window_are_cut_from_the_left_or_skipped(tmp_path):
    tok = byte_tokenizer()
    tiny = Transformer(TINY)
    init_parameters(tiny, 5)
    tiny.eval()
    scorer = E.Scorer(tiny, tok, TINY.seq_len, batch_size=4)
    ctx, cont = "Question: which of these is the right answer, really? " * 3, " the last one"
    req = scorer.request(ctx, cont)
    assert req.skip is None and len(req.context) + len(req.continuation) == TINY.seq_len
    assert req.continuation == scorer.encode(cont) and req.context == scorer.encode(ctx)[-(32 - len(cont)):]
    too_long = scorer.request("Q? ", "x" * 32)  # no room left for a token of context
    assert too_long.skip and "32 tokens" in too_long.skip and "32-token window" in too_long.skip
    assert scorer.request("", " y").skip == "empty context"
    (s, m, _), none = scorer.score([req, too_long])
    assert none is None
    ids = torch.tensor([req.context + req.continuation])
    with torch.no_grad():
        logp = F.log_softmax(tiny(ids[:, :-1]), dim=-1)[0]
    expected = -sum(float(logp[len(req.context) - 1 + k, t]) for k, t in enumerate(req.continuation))
    assert s == pytest.approx(expected, rel=1e-5)

    seen = []

    def fixed_window(x):  # a model that would fail past its window, as position embeddings do
        seen.append(x.shape[1])
        return torch.zeros(*x.shape, TINY.vocab_size)

    assert E.Scorer(fixed_window, tok, 32).generate(ctx, "\n", max_new_tokens=64) is not None
    assert max(seen) <= 32

    # the CLI on a 32-token model: 10-shot prompts far longer than the window, one choice that cannot fit
    from training.config import ScaleConfig
    from training.export import export

    scale = ScaleConfig(name="t", model=TINY, global_batch=1, micro_batch=1, lr=1e-3, warmup=0, weight_decay=0,
                        z_loss=0, final_lr=0)
    export(tiny, scale, tmp_path / "ckpt")
    tok.save(str(tmp_path / "ckpt" / "tokenizer.json"))
    rows = [{"query": f"Question {i}: is this one long enough to need cutting?", "choices": [" yes", " no"],
             "gold": i % 2} for i in range(6)]
    rows[4]["choices"][1] = " no, because " * 4  # 52 tokens
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eval" / "far.jsonl").write_text(json.dumps({"context": "a", "continuation": "b" * 40}) + "\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text("""name: core
tasks:
  - {label: mc, file: mc.jsonl, type: multiple_choice, shots: 5, random_baseline: 50}
  - {label: far, file: far.jsonl, type: language_modeling}
""")
    out = tmp_path / "r.json"
    assert E.main(["--checkpoint", str(tmp_path / "ckpt"), "--suite", str(suite), "--eval-dir",
                   str(tmp_path / "eval"), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    mc, far = r["tasks"]["mc"], r["tasks"]["far"]
    assert mc["examples"] == 6 and mc["scored"] == 5 and mc["accuracy"] is not None
    assert mc["skipped"] == [{"example": 4, "reason": "continuation of 52 tokens does not fit the model's "
                                                      "32-token window with any context"}]
    assert far["scored"] == 0 and far["accuracy"] is None and len(far["skipped"]) == 1
    assert r["CORE"] is None and r["tasks_unscored"] == ["far"] and r["tasks_missing"] == []
    assert r["CORE_over_present_tasks"] == pytest.approx(mc["centered"]) and "window" in r["note"]


def test_missing_eval_folder_is_an_error(tmp_path, model, capsys):
    from training.config import ScaleConfig
    from training.export import export

    scale = ScaleConfig(name="t", model=CFG, global_batch=1, micro_batch=1, lr=1e-3, warmup=0, weight_decay=0,
                        z_loss=0, final_lr=0)
    export(model, scale, tmp_path / "ckpt")
    assert E.main(["--checkpoint", str(tmp_path / "ckpt"), "--eval-dir", str(tmp_path / "nowhere")]) == 2
    assert "evaluation task folder not found" in capsys.readouterr().err
