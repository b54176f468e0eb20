"""lakesift.chat: templates, loss masks, prompts and pairs, template by template (the default one on the
GPT-NeoX tokenizer, ChatML, Llama-2 [INST], Zephyr), on local tokenizer files only."""

from __future__ import annotations

import json
import pickle

import pytest

from lakesift.chat import DEFAULT_TEMPLATE, ChatTokenizer

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
# Llama-2: the system prompt folded into the first user turn, BOS before every [INST]
LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set sys = '<<SYS>>\\n' + messages[0]['content'] + "
          "'\\n<</SYS>>\\n\\n' %}{% set turns = messages[1:] %}{% else %}{% set sys = '' %}"
          "{% set turns = messages %}{% endif %}"
          "{% for m in turns %}"
          "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('roles must alternate') }}{% endif %}"
          "{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + (sys if loop.first else '') + m['content'].strip() "
          "+ ' [/INST]' }}{% else %}{{ ' ' + m['content'].strip() + ' ' + eos_token }}{% endif %}"
          "{% endfor %}")
ZEPHYR = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token }}"
          "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}{% endfor %}")

CONV = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "It is 4."},
    {"role": "user", "content": "And 3 + 3, in words?"},
    {"role": "assistant", "content": "Six, of course. Ünïcode ✓ 数字"},
]


@pytest.fixture(scope="module")
def neox(shared):
    return shared / "data" / "tokenizers" / "gpt-neox-20b" / "20B_tokenizer.json"


def variant(neox, folder, specials, config):
    """The GPT-NeoX tokenizer with extra special tokens, in a folder with a tokenizer_config.json."""
    from tokenizers import AddedToken, Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(str(neox))
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def toks(neox, tmp_path_factory):
    root = tmp_path_factory.mktemp("toks")
    chatml = variant(neox, root / "chatml", ["<|im_start|>", "<|im_end|>"],
                     {"chat_template": CHATML, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    llama = variant(neox, root / "llama", ["<s>", "</s>"],
                    {"chat_template": LLAMA2, "bos_token": {"content": "<s>"}, "eos_token": "</s>"})
    zephyr = variant(neox, root / "zephyr", ["</s>"], {"eos_token": "</s>", "pad_token": "</s>"})
    (root / "zephyr.jinja").write_text(ZEPHYR)
    return {
        "default": (ChatTokenizer.load(str(neox.parent)), lambda c: c + "<|endoftext|>\n"),
        "chatml": (ChatTokenizer.load(str(chatml)), lambda c: c + "<|im_end|>\n"),
        "llama2": (ChatTokenizer.load(str(llama)), lambda c: " " + c.strip() + " </s>"),
        "zephyr": (ChatTokenizer.load(str(zephyr), template=str(root / "zephyr.jinja")), lambda c: "\n" + c + "</s>"),
    }


TEMPLATES = ["default", "chatml", "llama2", "zephyr"]


def masked_text(tok, ids, mask):
    return tok.decode([i for i, m in zip(ids, mask, strict=True) if m])


def test_sources_and_special_tokens(toks):
    t, _ = toks["default"]
    assert (t.template, t.template_source, t.eos_token, t.eos_id, t.pad_id, t.bos_id) == \
        (DEFAULT_TEMPLATE, "default", "<|endoftext|>", 0, 0, None)
    assert len(t.sha1) == 40 and t.vocab_size == 50281
    c, _ = toks["chatml"]
    assert c.template_source == "tokenizer" and c.template == CHATML
    assert c.eos_id == c.tok.token_to_id("<|im_end|>") and c.pad_id == 0
    ll, _ = toks["llama2"]
    assert ll.bos_id == ll.tok.token_to_id("<s>") and ll.eos_token == "</s>"
    z, _ = toks["zephyr"]
    assert z.template_source == "given" and z.template == ZEPHYR and z.pad_id == z.eos_id


def test_default_template_rendering(toks):
    t, _ = toks["default"]
    assert t.render(CONV[1:3]) == "<|user|>\nWhat is 2+2?<|endoftext|>\n<|assistant|>\nIt is 4.<|endoftext|>\n"
    assert t.render(CONV[1:2], add_generation_prompt=True).endswith("<|endoftext|>\n<|assistant|>\n")


@pytest.mark.parametrize("name", TEMPLATES)
def test_only_assistant_tokens_carry_loss(toks, name):
    tok, closing = toks[name]
    ids, mask = tok.encode_sft(CONV)
    assert len(ids) == len(mask) and set(mask) <= {0, 1} and mask[0] == 0
    assert tok.decode(ids) == tok.render(CONV)
    assert masked_text(tok, ids, mask) == closing(CONV[2]["content"]) + closing(CONV[4]["content"])
    # no system / user token is a target: the unmasked tokens hold every system and user text
    unmasked = masked_text(tok, ids, [1 - m for m in mask])
    for m in CONV:
        assert (m["content"] in unmasked) == (m["role"] != "assistant")
    # the targets come in exactly two runs (two assistant turns)
    runs = sum(1 for a, b in zip([0, *mask], mask, strict=False) if b and not a)
    assert runs == 2


@pytest.mark.parametrize("name", TEMPLATES)
def test_mask_modes_last_and_all(toks, name):
    tok, closing = toks[name]
    ids, last = tok.encode_sft(CONV, mask="last")
    assert masked_text(tok, ids, last) == closing(CONV[4]["content"])
    ids2, every = tok.encode_sft(CONV, mask="all")
    assert ids2 == ids and every == [0] + [1] * (len(ids) - 1)
    with pytest.raises(ValueError, match="mask"):
        tok.encode_sft(CONV, mask="nope")


@pytest.mark.parametrize("name", TEMPLATES)
def test_single_turn_and_no_system(toks, name):
    tok, closing = toks[name]
    ids, mask = tok.encode_sft(CONV[1:3])
    assert masked_text(tok, ids, mask) == closing("It is 4.")
    assert tok.encode_prompt(CONV[1:2]) == tok.encode_text(tok.render(CONV[1:2], add_generation_prompt=True))


@pytest.mark.parametrize("name", TEMPLATES)
def test_pair_prefix(toks, name):
    tok, closing = toks[name]
    prompt = CONV[:4]
    chosen, rejected, n = tok.encode_pair(prompt, "Six.", [{"role": "assistant", "content": "Seven, maybe"}])
    assert chosen[:n] == rejected[:n] == tok.encode_prompt(prompt) and n > 0
    assert tok.decode(chosen[n:]).strip() == closing("Six.").strip()
    assert tok.decode(rejected[n:]).strip() == closing("Seven, maybe").strip()
    assert tok.decode(chosen) == tok.render(prompt + [{"role": "assistant", "content": "Six."}])
    # a string prompt is one user turn
    c2, _, n2 = tok.encode_pair("What is 2+2?", "4", "5")
    assert c2[:n2] == tok.encode_prompt([{"role": "user", "content": "What is 2+2?"}])


def test_pair_prefix_survives_bpe_merges_across_the_boundary(toks):
    # ChatML without a newline after the header would let BPE merge prompt and completion; the prompt's
    # ids must still be an exact prefix
    tok = ChatTokenizer.load(toks["default"][0].spec, template=DEFAULT_TEMPLATE.replace("'<|assistant|>\\n'", "'A:'"))
    chosen, rejected, n = tok.encode_pair([{"role": "user", "content": "hi"}], "aaa", "bbb")
    assert chosen[:n] == rejected[:n] == tok.encode_prompt([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("name", TEMPLATES)
def test_pickle_round_trip(toks, name):
    tok, _ = toks[name]
    tok.encode_sft(CONV)  # the lazy objects are built
    blob = pickle.dumps(tok)
    again = pickle.loads(blob)
    assert again._tok is None and again._tmpl is None
    assert len(blob) < len(tok.tokenizer_json.encode()) + 100_000
    assert again.encode_sft(CONV) == tok.encode_sft(CONV)
    assert (again.eos_id, again.pad_id, again.sha1, again.template_source) == \
        (tok.eos_id, tok.pad_id, tok.sha1, tok.template_source)


def test_not_prefix_stable_template_falls_back_to_the_content(toks):
    tok = ChatTokenizer.load(toks["default"][0].spec,
                             template="{{ messages|length }} turns\n" + DEFAULT_TEMPLATE)
    ids, mask = tok.encode_sft(CONV[1:3])
    assert masked_text(tok, ids, mask) == "It is 4.<|endoftext|>"
    broken = ChatTokenizer.load(toks["default"][0].spec,
                                template="{{ messages|length }}{% for m in messages %}{{ m['content']|upper }}{% endfor %}")
    with pytest.raises(ValueError, match="^template"):
        broken.encode_sft(CONV[1:3])


def test_llama2_template_raises_on_bad_roles(toks):
    tok, _ = toks["llama2"]
    from jinja2.exceptions import TemplateError

    with pytest.raises(TemplateError, match="alternate"):
        tok.encode_sft([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_no_eos_is_a_clear_error(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = Tokenizer(WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="no EOS token"):
        ChatTokenizer.load(str(tmp_path))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ChatTokenizer.load(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="not found"):
        ChatTokenizer.load(str(tmp_path / "missing" / "tokenizer.json"))


# ------------------------------------------------------------------ jobs/instruct.py's pure parts (no Spark)

def test_pack_examples_bfd_and_pad():
    import numpy as np

    from jobs.instruct import best_fit_decreasing, pack_examples

    assert best_fit_decreasing([5, 4, 3, 2, 1], 6) == [[0, 4], [1, 3], [2]]
    encoded = [([1] * n, [0] + [1] * (n - 1)) for n in (5, 4, 3, 2, 1)]
    samples = pack_examples(encoded, 6, pad_id=9, mode="bfd")
    assert [list(s["starts"]) for s in samples] == [[0, 5], [0, 4], [0]]
    assert [s["pad"] for s in samples] == [0, 0, 3] and [s["n_examples"] for s in samples] == [2, 2, 1]
    for s in samples:
        assert not s["loss_mask"][s["starts"]].any() and s["tokens"].dtype == np.uint32
    assert list(samples[2]["tokens"]) == [1, 1, 1, 9, 9, 9] and list(samples[2]["loss_mask"]) == [0, 1, 1, 0, 0, 0]
    assert sum(int(s["loss_mask"].sum()) for s in samples) == sum(sum(m) for _, m in encoded)
    padded = pack_examples(encoded, 6, pad_id=9, mode="pad", seed=[42, 0])
    assert len(padded) == 5 and sorted(s["pad"] for s in padded) == [1, 2, 3, 4, 5]
    assert [s["pad"] for s in padded] == [s["pad"] for s in pack_examples(encoded, 6, 9, "pad", seed=[42, 0])]


def test_encode_examples_truncate_and_refuse(toks):
    from jobs.instruct import Reject, encode_dpo_example, encode_sft_example

    tok, _ = toks["default"]
    ids, mask, truncated = encode_sft_example(tok, CONV, 40)
    assert truncated and len(ids) == len(mask) == 40
    with pytest.raises(Reject, match="no_target_tokens"):
        encode_sft_example(tok, CONV, 10)
    with pytest.raises(Reject, match="template_error"):
        encode_sft_example(toks["llama2"][0], [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], 40)
    s, cut = encode_dpo_example(tok, CONV[1:2], [{"role": "assistant", "content": "x " * 50}],
                                [{"role": "assistant", "content": "y"}], 32, "p1")
    assert cut and len(s["chosen"]) == 33 and s["prompt_len"] == len(tok.encode_prompt(CONV[1:2]))
    with pytest.raises(Reject, match="prompt_too_long"):
        encode_dpo_example(tok, CONV[:4], [{"role": "assistant", "content": "a"}],
                           [{"role": "assistant", "content": "b"}], 8, "p2")
