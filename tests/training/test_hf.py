"""training.hf: Hugging Face causal LMs behind the interface of training.model.Transformer. The wrapper's
logits and hidden states are the model's own; packed documents (doc_ids) give each document the logits it
has alone (sdpa and eager attention; LLaMA, Qwen2, Mistral); FSDP2 through training.parallelize trains it,
and the gathered full state dict saved with hf.save loads back with from_pretrained to the same logits."""

from __future__ import annotations

import json

import pytest
import torch

from training import hf

VOCAB = 300


def tiny_config(arch: str, tied: bool = False):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    shape = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=tied)
    if arch == "llama":
        return LlamaConfig(**shape)
    if arch == "qwen2":
        return Qwen2Config(**shape)
    return MistralConfig(**shape, sliding_window=8)


def make_folder(path, arch="llama", tied=False):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_config(arch, tied)).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {(arch, tied): make_folder(root / f"{arch}-{tied}", arch, tied)
            for arch, tied in (("llama", False), ("llama", True), ("qwen2", False), ("mistral", False))}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A tiny byte-level BPE tokenizer.json (no tokenizer_config.json beside it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["the cat sat on the mat", "a dog and a cat"] * 20, trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    out = tmp_path_factory.mktemp("tok")
    tok.save(str(out / "tokenizer.json"))
    return out


def tokens(b, s, seed=0):
    return torch.randint(0, VOCAB, (b, s), generator=torch.Generator().manual_seed(seed))


def test_is_hf_checkpoint(folders, tmp_path):
    assert hf.is_hf_checkpoint(folders["llama", False])
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "config.json").write_text(json.dumps({"format": "lakesift-open_lm", "model_type": "x"}))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"d_model": 8}))
    for p in (tmp_path / "ours", tmp_path / "other", tmp_path / "missing", tmp_path):
        assert not hf.is_hf_checkpoint(p)


@pytest.mark.parametrize("tied", [False, True])
def test_wrapper_is_the_model(folders, tied):
    model = hf.load(str(folders["llama", tied]), seq_len=64).eval()
    inner = model.hf
    assert model.layers is inner.model.layers and len(model.layers) == 2
    assert model.embed is inner.model.embed_tokens and model.head is inner.lm_head and model.tied is tied
    assert model.cfg == hf.Shape(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4, seq_len=64)
    assert hf.load(str(folders["llama", tied])).cfg.seq_len == 128
    assert list(model.state_dict()) == ["hf." + k for k in inner.state_dict()]  # layers: a property, no copy
    x = tokens(2, 16)
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (2, 16, VOCAB) and logits.dtype == torch.float32
        assert torch.equal(logits, inner(x).logits)
        h = model.hidden(x)
        assert torch.equal(h, inner.model(x).last_hidden_state)
        assert torch.allclose(model.head(h), logits, atol=1e-6)


@pytest.mark.parametrize("arch,impl", [("llama", "sdpa"), ("llama", "eager"), ("qwen2", "sdpa"), ("mistral", "eager")])
def test_packed_documents_equal_each_document_alone(folders, arch, impl):
    model = hf.load(str(folders[arch, False]), attn_implementation=impl).eval()
    assert model.hf.config._attn_implementation == impl
    rows = [[5, 1, 2], [3, 5], [8]]  # document lengths of each of 3 packed sequences of 8
    x = tokens(3, 8, seed=1)
    doc_ids = torch.tensor([sum(([d] * n for d, n in enumerate(r)), []) for r in rows])
    doc_ids[1] += 4  # any numbering: only changes between neighbours start a document
    with torch.no_grad():
        packed, hidden = model(x, doc_ids), model.hidden(x, doc_ids)
        for b, r in enumerate(rows):
            start = 0
            for n in r:
                alone = x[b:b + 1, start:start + n]
                assert torch.allclose(packed[b, start:start + n], model(alone)[0], atol=1e-5), (b, start)
                assert torch.allclose(hidden[b, start:start + n], model.hidden(alone)[0], atol=1e-5)
                start += n
        assert not torch.allclose(packed[0, 5:], model(x)[0, 5:], atol=1e-3)  # without doc_ids: one document


def test_packed_refusals(folders):
    mistral = hf.load(str(folders["mistral", False]))  # sliding window 8
    with pytest.raises(ValueError, match="sliding window"):
        mistral(tokens(1, 12), torch.zeros(1, 12, dtype=torch.long))
    llama = hf.load(str(folders["llama", False]))
    llama.hf.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="sdpa or eager"):
        llama(tokens(1, 4), torch.zeros(1, 4, dtype=torch.long))


def test_load_errors(tmp_path):
    from lakesift.resolve import ResolveError

    with pytest.raises(ResolveError, match="not found"):
        hf.load(str(tmp_path / "no-such-model"))


@pytest.mark.parametrize("tied", [False, True])
def test_fsdp2_train_gather_save_reload(world, folders, tokenizer_dir, tmp_path, tied):
    from torch.distributed.checkpoint.state_dict import get_model_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.objectives.clm import causal_lm_loss
    from training.parallelize import parallelize

    model = hf.load(str(folders["llama", tied]))
    parallelize(model, torch.device("cpu"), act_ckpt=True)
    assert type(model.layers[0]).__name__.startswith("FSDPCheckpointed")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = tokens(2, 17, seed=2)
    doc_ids = torch.tensor([[0] * 6 + [1] * 10, [0] * 16])
    model.train()
    for _ in range(2):
        loss, _ = causal_lm_loss(model(x[:, :-1], doc_ids), x[:, 1:], 1e-4)
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        trained = model(x)
    state = get_model_state_dict(model, options=_full())
    assert all(k.startswith("hf.") for k in state)
    hf.save(state, tmp_path / "from-state", config=model.hf.config)
    hf.save(model, tmp_path / "from-model", tokenizer_dir=tokenizer_dir)
    for out in ("from-state", "from-model"):
        reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / out)).eval()
        assert reloaded.config.tie_word_embeddings is tied
        assert (reloaded.lm_head.weight is reloaded.model.embed_tokens.weight) is tied
        with torch.no_grad():
            assert torch.allclose(reloaded(x).logits, trained, atol=1e-6, rtol=0)
    before = AutoModelForCausalLM.from_pretrained(str(folders["llama", tied])).eval()
    with torch.no_grad():
        assert not torch.allclose(before(x).logits, trained, atol=1e-3)  # it did train
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "from-model"))
    assert tok("the cat")["input_ids"] == tok.backend_tokenizer.encode("the cat").ids


def _full():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def test_save_needs_a_config(tmp_path):
    with pytest.raises(ValueError, match="config="):
        hf.save({"hf.lm_head.weight": torch.zeros(2, 2)}, tmp_path / "x")
