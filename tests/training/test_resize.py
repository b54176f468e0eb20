"""training.resize: the mean-initialisation rule row by row (a SentencePiece base with byte fallback and
its dummy prefix, a byte-level BPE base with appended merges and an added token), old rows bit for bit,
padding rows, tied and untied heads; on Chinese text a tiny model trained with the old tokenizer starts
with a lower loss after mean-init than after random init (ours and a LLaMA from transformers), and its
logits over the old ids on English are unchanged; round trips from an export, a training checkpoint and
a Hugging Face folder; the command line and its refusals."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from training import resize as rz

ZH_TRAIN, ZH_HELD_OUT = 150, 40  # Chinese documents (fortunes-zh) to train on / to score


@pytest.fixture(scope="module")
def texts(shared):
    en = (shared / "data" / "text" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    with gzip.open(shared / "data" / "zh" / "text" / "fortunes-zh.jsonl.gz", "rt", encoding="utf-8") as f:
        zh = [json.loads(line)["text"] for _, line in zip(range(ZH_TRAIN + ZH_HELD_OUT), f, strict=False)]
    return {"en": en[:150_000], "en_held_out": en[-3_000:], "zh": zh[:ZH_TRAIN], "zh_held_out": zh[ZH_TRAIN:]}


def write_expansion(out, base_json, new_json, base_kind, pad_multiple=64, spm=None):
    """A folder as the expansion job writes it: tokenizer.json (+ .model), base/, report.json."""
    from tokenizers import Tokenizer

    (out / "base").mkdir(parents=True)
    (out / "tokenizer.json").write_text(new_json)
    (out / "base" / "tokenizer.json").write_text(base_json)
    if spm:
        (out / "base" / "tokenizer.model").write_bytes(spm[0])
        (out / "tokenizer.model").write_bytes(spm[1])
    v0 = Tokenizer.from_str(base_json).get_vocab_size(True)
    v1 = Tokenizer.from_str(new_json).get_vocab_size(True)
    (out / "report.json").write_text(json.dumps({
        "base_vocab_size": v0, "vocab_size": v1, "padded_vocab_size": -(-v1 // pad_multiple) * pad_multiple,
        "pad_multiple": pad_multiple, "base_kind": base_kind}))
    return out


@pytest.fixture(scope="module")
def spm_dir(tmp_path_factory, texts):
    """A SentencePiece BPE base (English, 500 pieces, byte fallback: Chinese is bytes) and its expansion
    by the pieces of a Chinese SentencePiece model appended with score 0 (Colossal's procedure), both
    also as tokenizer.json with LLaMA-2's normaliser (the dummy prefix '▁' prepended)."""
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    from transformers import LlamaTokenizerFast

    def train(lines, **kw):
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, model_type="bpe",
                                       minloglevel=2, pad_id=-1, **kw)
        return buf.getvalue()

    base = train(texts["en"].split("\n"), vocab_size=500, byte_fallback=True, character_coverage=1.0)
    zh = pb.ModelProto.FromString(train("\n".join(texts["zh"]).split("\n"), vocab_size=1300,
                                        character_coverage=0.98, bos_id=-1, eos_id=-1))
    proto = pb.ModelProto.FromString(base)
    have = {p.piece for p in proto.pieces}
    for p in zh.pieces:
        if p.type == pb.ModelProto.SentencePiece.NORMAL and p.piece not in have:
            proto.pieces.add(piece=p.piece, score=0.0)
            have.add(p.piece)
    new = proto.SerializeToString()
    tmp = tmp_path_factory.mktemp("spm")
    jsons = []
    for name, model in (("base", base), ("new", new)):
        (tmp / f"{name}.model").write_bytes(model)
        data = json.loads(LlamaTokenizerFast(vocab_file=str(tmp / f"{name}.model")).backend_tokenizer.to_str())
        data["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        jsons.append(json.dumps(data, ensure_ascii=False))
    return write_expansion(tmp / "out", *jsons, "sentencepiece", spm=(base, new))


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory, texts):
    """A byte-level BPE base (English, 400 ids) expanded by a Chinese byte-level BPE's merges appended in
    order (each merge whose parts exist and whose result is new), plus one added token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    def train(lines, size):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(lines, trainers.BpeTrainer(
            vocab_size=size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False))
        return tok

    base = train(texts["en"].split("\n"), 400)
    zh = json.loads(train(texts["zh"], 900).to_str())["model"]
    data = json.loads(base.to_str())
    vocab, merges = data["model"]["vocab"], data["model"]["merges"]
    for a, b in (m.split(" ") if isinstance(m, str) else m for m in zh["merges"]):
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append([a, b])
    new = Tokenizer.from_str(json.dumps(data))
    new.add_tokens(["人工智能"])
    return write_expansion(tmp_path_factory.mktemp("bpe") / "out", base.to_str(), new.to_str(), "hf-bpe")


def tokenizers_of(folder):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "base" / "tokenizer.json")), Tokenizer.from_file(str(folder / "tokenizer.json"))


def reference_weights(pieces):
    """The rule restated through Python's UTF-8 decoder: each character spelled by byte-fallback pieces
    gives its n bytes 1/n each; every other piece weighs 1."""
    w, run = [], []

    def flush():
        for ch in bytes(run).decode("utf-8"):
            n = len(ch.encode("utf-8"))
            w.extend([1.0 / n] * n)
        run.clear()

    for p in pieces:
        m = re.fullmatch(r"<0x([0-9A-F]{2})>", p)
        if m:
            run.append(int(m.group(1), 16))
        else:
            flush()
            w.append(1.0)
    flush()
    return w


def expected_row(matrix, ids, weights):
    w = torch.tensor(weights, dtype=torch.float64)
    return (matrix[ids].double() * w[:, None]).sum(0) / w.sum()


def test_piece_weights_share_one_weight_per_character():
    pieces = ["▁", "<0xE4>", "<0xB8>", "<0xBA>", "ab", "<0x41>", "<0xC3>", "<0xA9>", "<0x80>", "<0xE4>"]
    assert rz.piece_weights(pieces) == [1, 1 / 3, 1 / 3, 1 / 3, 1, 1, 1 / 2, 1 / 2, 1, 1]


def test_mean_rule_sentencepiece_no_dummy_prefix_bytes_share_a_character(spm_dir):
    old, new = tokenizers_of(spm_dir)
    plan = rz.make_plan(old, new, 64)
    v0, v1 = plan.base_vocab_size, plan.tokenizer_vocab_size
    assert (v0, v1, plan.padded_vocab_size) == (500, new.get_vocab_size(), -(-v1 // 64) * 64) and v1 > 1000
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(v0, 16, generator=gen)
    out = rz.extend(emb, plan)
    assert out.shape == (plan.padded_vocab_size, 16) and torch.equal(out[:v0], emb)
    assert torch.allclose(out[v1:], emb.mean(0).expand(plan.padded_vocab_size - v1, -1), atol=1e-6)
    blank = old.token_to_id("▁")
    byte_cjk = with_blank = 0
    for i, pairs in zip(range(v0, v1), rz.decompose(old, new, v0, v1), strict=True):
        piece = new.id_to_token(i)
        ref = [(t.id, t.value) for t in old.model.tokenize(piece)]
        assert pairs == ref, piece
        ids, pieces = [j for j, _ in ref], [p for _, p in ref]
        assert torch.allclose(out[i].double(), expected_row(emb, ids, reference_weights(pieces)), atol=1e-6), piece
        if piece.startswith("▁"):  # its own '▁' is part of it
            assert pieces[0].startswith("▁")
            with_blank += pieces[0] == "▁"
        else:
            assert blank not in ids, piece
        if re.fullmatch(r"[\u4e00-\u9fff]{2,}", piece) and all(p.startswith("<0x") for p in pieces):
            byte_cjk += 1
            # the whole old pipeline would have put the dummy prefix first: the rule leaves it out
            assert old.encode(piece, add_special_tokens=False).tokens[0] == "▁"
            assert len(pieces) == 3 * len(piece)  # 3 bytes a character, each character weighs 1 in all
    assert byte_cjk > 50 and with_blank > 0
    assert plan.empty == [] and plan.byte_pieces > 0


def test_mean_rule_byte_level_bpe_and_added_token(bpe_dir):
    old, new = tokenizers_of(bpe_dir)
    plan = rz.make_plan(old, new, 64)
    v0, v1 = plan.base_vocab_size, plan.tokenizer_vocab_size
    assert v0 == 400 and v1 > 600 and plan.byte_pieces == 0
    head = torch.randn(v0 + 20, 8, generator=torch.Generator().manual_seed(1))  # with 20 old padding rows
    out = rz.extend(head, plan)
    assert torch.equal(out[:v0], head[:v0]) and out.shape[0] == plan.padded_vocab_size
    assert torch.allclose(out[v1:], head[:v0].mean(0).expand(plan.padded_vocab_size - v1, -1), atol=1e-6)
    added = new.token_to_id("人工智能")
    assert added == v1 - 1
    for i in range(v0, v1):
        if i == added:  # an added token is text through the old pipeline
            ids = old.encode("人工智能", add_special_tokens=False).ids
        else:
            ids = [t.id for t in old.model.tokenize(new.id_to_token(i))]
        assert len(ids) > 1 and max(ids) < v0
        assert torch.allclose(out[i].double(), expected_row(head, ids, [1.0] * len(ids)), atol=1e-6)


def test_refusals(spm_dir, bpe_dir, tmp_path, capsys):
    old_spm, _ = tokenizers_of(spm_dir)
    _, new_bpe = tokenizers_of(bpe_dir)
    with pytest.raises(rz.ResizeError, match="ids differ"):
        rz.make_plan(old_spm, new_bpe, 64)
    with pytest.raises(rz.ResizeError, match="fewer than the base"):
        rz.make_plan(new_bpe, old_spm, 64)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text(json.dumps({"hello": 1}))
    assert rz.main(["--checkpoint", str(tmp_path / "junk"), "--tokenizer", str(spm_dir)]) == 2
    assert "not a checkpoint this can resize" in capsys.readouterr().err
    export_dir = write_export(tiny_transformer(500), tmp_path / "export")
    assert rz.main(["--checkpoint", str(export_dir), "--tokenizer", str(spm_dir),
                    "--base-tokenizer", str(bpe_dir / "base")]) == 2
    assert "ids differ" in capsys.readouterr().err
    small = write_export(tiny_transformer(300), tmp_path / "small")
    assert rz.main(["--checkpoint", str(small), "--tokenizer", str(spm_dir)]) == 2
    assert "not trained with this tokenizer" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# models


def tiny_cfg(vocab):
    from training.config import ModelConfig

    return ModelConfig(d_model=64, n_layers=2, n_heads=4, vocab_size=vocab, seq_len=64)


def tiny_transformer(vocab, seed=0):
    from training.model import Transformer, init_parameters

    model = Transformer(tiny_cfg(vocab))
    init_parameters(model, seed)
    return model


def write_export(model, out):
    from safetensors.torch import save_file

    out.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({"format": "lakesift-open_lm", "scale": "tiny",
                                                 "model": model.cfg.model_dump()}))
    return out


def tiny_llama(vocab, tied):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                        tie_word_embeddings=tied, attn_implementation="sdpa"))


def save_hf(model, base_dir, out):
    """A Hugging Face model folder with its (base) tokenizer, as a hub checkpoint looks."""
    from transformers import LlamaTokenizerFast

    model.save_pretrained(str(out))
    LlamaTokenizerFast(tokenizer_file=str(base_dir / "tokenizer.json"),
                       vocab_file=str(base_dir / "tokenizer.model")).save_pretrained(str(out))
    return out


def windows(ids, seq):
    n = (len(ids) - 1) // seq
    return torch.tensor(ids[: n * seq + 1]).unfold(0, seq + 1, seq)


def lm_loss(model, batch):
    logits = model(batch[:, :-1]).float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def train(model, data, steps=200, lr=3e-3, batch=16):
    """Plain AdamW on random windows of ``data`` (CPU, a few seconds)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        loss = lm_loss(model, data[torch.randint(0, len(data), (batch,), generator=gen)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def corpus(spm_dir, texts):
    """Mixed English + Chinese windows encoded with the OLD tokenizer (Chinese as byte fallback) to train
    on; held-out Chinese with the NEW tokenizer and held-out English with the old one to score."""
    old, new = tokenizers_of(spm_dir)
    enc = old.encode_batch(texts["en"].split("\n\n") + texts["zh"], add_special_tokens=False)
    stream = [i for e in enc for i in e.ids + [2]]
    zh = [i for e in new.encode_batch(texts["zh_held_out"], add_special_tokens=False) for i in e.ids + [2]]
    en = old.encode(texts["en_held_out"], add_special_tokens=False).ids
    return {"train": windows(stream, 64), "zh": windows(zh, 64)[:32], "en": windows(en, 64)[:8]}


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory, corpus):
    torch.manual_seed(0)
    return write_export(train(tiny_transformer(512), corpus["train"]), tmp_path_factory.mktemp("ours") / "final")


def test_ours_mean_init_beats_random_on_chinese_and_keeps_english(trained_export, spm_dir, corpus, tmp_path):
    from training.export import load

    before = load(trained_export)
    losses = {}
    for init in ("mean", "random"):
        out, facts = rz.resize(trained_export, spm_dir, out=tmp_path / init, init=init, seed=3)
        model = load(out)
        assert model.cfg.vocab_size == facts["padded_vocab_size"] == json.loads((spm_dir / "report.json").read_text())[
            "padded_vocab_size"]
        assert facts["old_padding_rows_replaced"] == 12 and facts["init"] == init
        with torch.no_grad():
            losses[init] = lm_loss(model, corpus["zh"]).item()
            new_logits, old_logits = model(corpus["en"]), before(corpus["en"])
        assert torch.allclose(new_logits[..., :500], old_logits[..., :500], atol=1e-6, rtol=0)
        for key in ("embed.weight", "head.weight"):
            assert torch.equal(model.state_dict()[key][:500], before.state_dict()[key][:500])
        assert (out / "tokenizer.json").read_bytes() == (spm_dir / "tokenizer.json").read_bytes()
    assert losses["mean"] < losses["random"] - 0.25, losses


def test_dcp_training_checkpoint_round_trip(spm_dir, tmp_path):
    import torch.distributed.checkpoint as dcp

    from training.export import load

    model = tiny_transformer(500, seed=5)
    step = tmp_path / "run" / "step-7"
    with pytest.warns(UserWarning, match="single process"):
        dcp.save({"model": model.state_dict(), "optim": {"lr": torch.tensor(1.0)}}, checkpoint_id=str(step),
                 no_dist=True)
    (step / "meta.json").write_text(json.dumps({"step": 7, "tokens_seen": 100, "scale": {
        "name": "tiny", "model": model.cfg.model_dump()}, "world_size": 1, "seed": 5, "objective": "clm"}))
    out, facts = rz.resize(step, spm_dir / "tokenizer.json", base_tokenizer=spm_dir / "base" / "tokenizer.json",
                           pad_multiple=128)
    assert out == tmp_path / "run" / "step-7-resized"
    resized = load(out)
    assert facts["padded_vocab_size"] == resized.cfg.vocab_size == -(-facts["tokenizer_vocab_size"] // 128) * 128
    config = json.loads((out / "config.json").read_text())
    assert config["step"] == 7 and config["vocab"]["base_vocab_size"] == 500
    old, new = tokenizers_of(spm_dir)
    plan = rz.make_plan(old, new, 128)
    for key in ("embed.weight", "head.weight"):
        assert torch.equal(resized.state_dict()[key], rz.extend(model.state_dict()[key], plan))


@pytest.mark.parametrize("tied", [False, True])
def test_hf_tied_untied_round_trip(spm_dir, tmp_path, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = tiny_llama(500, tied)
    ckpt = save_hf(src, spm_dir / "base", tmp_path / "llama")
    out, facts = rz.resize(ckpt, spm_dir, out=tmp_path / "resized")
    model = AutoModelForCausalLM.from_pretrained(str(out))
    old, new = tokenizers_of(spm_dir)
    plan = rz.make_plan(old, new, 64)
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert facts["tied"] is tied and model.config.tie_word_embeddings is tied and (head is emb) is tied
    assert emb.shape[0] == model.config.vocab_size == plan.padded_vocab_size
    assert torch.equal(emb, rz.extend(src.get_input_embeddings().weight, plan))
    assert torch.equal(head, rz.extend(src.get_output_embeddings().weight, plan))
    if not tied:
        assert not torch.allclose(emb[500:], head[500:])
    tok = AutoTokenizer.from_pretrained(str(out))
    assert len(tok) == plan.tokenizer_vocab_size
    ids = tok("你好，世界", add_special_tokens=False)["input_ids"]
    assert ids == new.encode("你好，世界", add_special_tokens=False).ids and max(ids) >= 500
    assert json.loads((out / "lakesift_vocab.json").read_text())["padded_vocab_size"] == plan.padded_vocab_size
    assert (out / "tokenizer.model").read_bytes() == (spm_dir / "tokenizer.model").read_bytes()


def test_hf_mean_init_beats_random_on_chinese_and_keeps_english(spm_dir, corpus, tmp_path):
    from transformers import AutoModelForCausalLM

    from training.hf import HFCausalLM

    torch.manual_seed(0)
    base = train(HFCausalLM(tiny_llama(500, tied=True)), corpus["train"])
    ckpt = save_hf(base.hf, spm_dir / "base", tmp_path / "llama")
    losses = {}
    for init in ("mean", "random"):
        out, _ = rz.resize(ckpt, spm_dir, out=tmp_path / init, init=init)
        model = HFCausalLM(AutoModelForCausalLM.from_pretrained(str(out))).eval()
        with torch.no_grad():
            losses[init] = lm_loss(model, corpus["zh"]).item()
            assert torch.allclose(model(corpus["en"])[..., :500], base(corpus["en"]), atol=1e-6, rtol=0)
    assert losses["mean"] < losses["random"] - 0.25, losses


def test_cli_help_and_run(trained_export, spm_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    help_ = subprocess.run([sys.executable, "-m", "training.resize", "--help"], capture_output=True, text=True,
                           cwd=REPO, env=env, timeout=120)
    assert help_.returncode == 0 and "--pad-multiple" in help_.stdout and "--init" in help_.stdout
    out = tmp_path / "cli"
    run = subprocess.run([sys.executable, "-m", "training.resize", "--checkpoint", str(trained_export),
                          "--tokenizer", str(spm_dir), "--out", str(out), "--init", "random", "--seed", "1",
                          "--pad-multiple", "256"], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "new piece row(s)" in run.stdout
    vocab = json.loads((out / "config.json").read_text())["vocab"]
    assert vocab["init"] == "random" and vocab["padded_vocab_size"] == 1792 and vocab["pad_multiple"] == 256
    again = subprocess.run([sys.executable, "-m", "training.resize", "--checkpoint", str(trained_export),
                            "--tokenizer", str(spm_dir), "--out", str(out)], capture_output=True, text=True,
                           cwd=REPO, env=env, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr
