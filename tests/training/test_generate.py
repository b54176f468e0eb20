"""training.generate: batched greedy / temperature / nucleus sampling with left padding as its own document,
and the log-probabilities of given completions; for our Transformer and an HF LLaMA behind HFCausalLM."""

from __future__ import annotations

import pytest
import torch

from training.generate import (
    generate,
    sample,
    sequence_logprobs,
    sequence_logprobs_and_counts,
    token_logprobs,
)

VOCAB = 40
PROMPTS = [[3, 4, 5, 6, 7, 8, 9], [10], [11, 12, 13], [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 2], [7, 1]]


def _ours():
    from training.config import ModelConfig
    from training.model import Transformer, init_parameters

    model = Transformer(ModelConfig(d_model=32, n_layers=2, n_heads=4, vocab_size=VOCAB, seq_len=64))
    init_parameters(model, 0)
    return model.eval()


def _hf():
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.hf import HFCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      initializer_range=0.2, attn_implementation="sdpa")
    return HFCausalLM(LlamaForCausalLM(cfg)).eval()


@pytest.fixture(scope="module", params=["ours", "hf"])
def model(request):
    return _ours() if request.param == "ours" else _hf()


def reference_greedy(model, prompt, max_new_tokens, stop_ids=()):
    """One prompt, no padding, no doc_ids: argmax of the last position, token after token."""
    seq, out = list(prompt), []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            t = int(model(torch.tensor([seq]))[0, -1].argmax())
            out.append(t)
            seq.append(t)
            if t in stop_ids:
                break
    return out


def test_greedy_equals_unbatched_reference(model):
    got = generate(model, PROMPTS, max_new_tokens=8, temperature=0, batch_size=3)
    assert got == [reference_greedy(model, p, 8) for p in PROMPTS]
    assert all(len(g) == 8 for g in got)


def test_left_padding_and_batch_mates_do_not_change_results(model):
    alone = [generate(model, [p], max_new_tokens=6, temperature=0)[0] for p in PROMPTS]
    together = generate(model, PROMPTS, max_new_tokens=6, temperature=0, batch_size=len(PROMPTS))
    other_pad = generate(model, PROMPTS[::-1], max_new_tokens=6, temperature=0, pad_id=VOCAB - 1)[::-1]
    assert together == alone == other_pad
    # sampling too: one generator per prompt, so the batch size does not matter
    kw = dict(max_new_tokens=6, temperature=1.0, seed=5)
    assert generate(model, PROMPTS, batch_size=1, **kw) == generate(model, PROMPTS, batch_size=4, **kw)


def test_tiny_top_p_is_greedy(model):
    greedy = generate(model, PROMPTS, max_new_tokens=6, temperature=0)
    assert generate(model, PROMPTS, max_new_tokens=6, temperature=1.0, top_p=1e-6, seed=3) == greedy


def test_sampling_is_seeded(model):
    kw = dict(max_new_tokens=10, temperature=1.5)
    a = generate(model, PROMPTS, seed=1, **kw)
    assert a == generate(model, PROMPTS, seed=1, **kw)
    assert a != generate(model, PROMPTS, seed=2, **kw)
    assert all(0 <= t < VOCAB for row in a for t in row)
    groups = sample(model, PROMPTS[:2], 4, seed=1, **kw)
    assert [len(g) for g in groups] == [4, 4]
    assert len({tuple(c) for c in groups[0]}) > 1  # each copy draws from its own generator
    assert groups == sample(model, PROMPTS[:2], 4, seed=1, batch_size=3, **kw)


def test_stops(model):
    free = generate(model, PROMPTS, max_new_tokens=8, temperature=0)
    stop = free[0][2]  # prompt 0 stops at its third token (or earlier, if that token came before)
    got = generate(model, PROMPTS, max_new_tokens=8, temperature=0, stop_ids=[stop], batch_size=2)
    for row, full in zip(got, free, strict=True):
        cut = full.index(stop) + 1 if stop in full else len(full)
        assert row == full[:cut]
        assert row == reference_greedy(model, PROMPTS[free.index(full)], 8, {stop})
    assert len(got[0]) <= 3 and got[0][-1] == stop
    assert generate(model, PROMPTS, max_new_tokens=0) == [[] for _ in PROMPTS]


def test_batch_stops_when_all_rows_stopped():
    calls = []

    class Fixed(torch.nn.Module):  # always token 2 at every position
        def forward(self, tokens, doc_ids=None):
            calls.append(tokens.shape)
            logits = torch.zeros(tokens.shape[0], tokens.shape[1], 5)
            logits[..., 2] = 10.0
            return logits

    assert generate(Fixed(), [[1], [1, 3]], max_new_tokens=50, temperature=0, stop_ids=[2]) == [[2], [2]]
    assert len(calls) == 1


def test_training_mode_is_restored(model):
    model.train()
    try:
        got = generate(model, PROMPTS[:2], max_new_tokens=3, temperature=0)
        assert model.training
        lp = sequence_logprobs(model, PROMPTS[:2], got)
        assert model.training
    finally:
        model.eval()
    assert got == generate(model, PROMPTS[:2], max_new_tokens=3, temperature=0)
    assert lp == pytest.approx(sequence_logprobs(model, PROMPTS[:2], got), abs=1e-5)


def test_nucleus_and_temperature_distribution():
    """A model with fixed next-token probabilities: the draws follow the temperature-scaled nucleus."""
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])

    class Fixed(torch.nn.Module):
        def forward(self, tokens, doc_ids=None):
            return probs.log().expand(tokens.shape[0], tokens.shape[1], 4)

    n = 4000
    draws = [r[0] for r in generate(Fixed(), [[0]] * n, max_new_tokens=1, temperature=1.0, top_p=0.75,
                                    batch_size=n, seed=0)]
    freq = torch.bincount(torch.tensor(draws), minlength=4).float() / n
    assert freq[2] == 0 and freq[3] == 0  # outside the nucleus {0, 1} (0.5 + 0.3 reaches 0.75)
    assert abs(float(freq[0]) - 0.5 / 0.8) < 0.03
    draws = [r[0] for r in generate(Fixed(), [[0]] * n, max_new_tokens=1, temperature=0.5, batch_size=n, seed=1)]
    freq = torch.bincount(torch.tensor(draws), minlength=4).float() / n
    want = torch.softmax(probs.log() / 0.5, -1)
    assert torch.allclose(freq, want, atol=0.03)


def test_sequence_logprobs_equal_direct_log_softmax(model):
    completions = [[1, 2, 3], [4], [5, 6, 7, 8, 9, 10], [], [11, 12]]
    direct = []
    with torch.no_grad():
        for p, c in zip(PROMPTS, completions, strict=True):
            lp = torch.log_softmax(model(torch.tensor([p + c]))[0].float(), -1)
            direct.append([float(lp[len(p) - 1 + i, t]) for i, t in enumerate(c)])
    got = sequence_logprobs(model, PROMPTS, completions, batch_size=2)
    assert got == pytest.approx([sum(d) for d in direct], abs=1e-4)
    per_token = token_logprobs(model, PROMPTS, completions, batch_size=4)
    for t, d in zip(per_token, direct, strict=True):
        assert t.tolist() == pytest.approx(d, abs=1e-4)
    sums, counts = sequence_logprobs_and_counts(model, PROMPTS, completions)
    assert counts == [3, 1, 6, 0, 2] and sums == pytest.approx(got, abs=1e-4)
    mean = sequence_logprobs(model, PROMPTS, completions, mean=True)
    assert mean == pytest.approx([sum(d) / len(d) if d else 0.0 for d in direct], abs=1e-4)


def test_logprobs_of_generated_greedy_tokens_are_the_max(model):
    got = generate(model, PROMPTS, max_new_tokens=4, temperature=0)
    for p, c, t in zip(PROMPTS, got, token_logprobs(model, PROMPTS, got), strict=True):
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([p + c]))[0].float(), -1)
        assert torch.allclose(t, lp[len(p) - 1:-1].max(-1).values, atol=1e-4)


def test_refusals(model):
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[1], []], max_new_tokens=2)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, [[1]], max_new_tokens=2, top_p=0)
    with pytest.raises(ValueError, match="completions"):
        sequence_logprobs(model, [[1]], [[2], [3]])
