"""Chat templates and loss masks: how a conversation becomes token ids for SFT, DPO and generation.

    tok = ChatTokenizer.load("../shared/data/tokenizers/gpt-neox-20b")      # folder, tokenizer.json or hub id
    text = tok.render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    ids, mask = tok.encode_sft(messages)                   # mask[t] = 1: token t is a loss target
    chosen, rejected, prompt_len = tok.encode_pair(prompt, chosen_msgs, rejected_msgs)
    prompt_ids = tok.encode_prompt(messages)               # what the generation loop feeds the model

The template is, in this order: ``template`` given to :meth:`ChatTokenizer.load` (a Jinja string or a
``.jinja`` file; ``template_source == "given"``), the tokenizer's own (``chat_template`` of
``tokenizer_config.json`` or a ``chat_template.jinja`` beside it; ``"tokenizer"``), else Lakesift's
:data:`DEFAULT_TEMPLATE` (``"default"``)::

    <|user|>
    What is 2+2?<EOS>
    <|assistant|>
    4<EOS>

Its role tags (``<|system|>``, ``<|user|>``, ``<|assistant|>``) are plain text, so it works with any
tokenizer without adding tokens to the vocabulary; every turn ends with the tokenizer's EOS token (then a
newline), so a model trained on it stops generating at EOS. ``add_generation_prompt`` appends
``<|assistant|>\\n``. Templates are rendered the way ``transformers`` does (a sandboxed Jinja environment,
``trim_blocks`` and ``lstrip_blocks``, ``raise_exception`` and ``tojson``), with ``messages``,
``add_generation_prompt``, ``bos_token``, ``eos_token``, ``pad_token`` and ``unk_token``.

Loss masks (:meth:`ChatTokenizer.encode_sft`): the rendering is tokenized once (no special tokens added:
a BOS appears only when the template writes ``bos_token``) with the fast tokenizer's character offsets.
Assistant message ``i`` owns the characters ``[len(render(msgs[:i], add_generation_prompt=True)),
len(render(msgs[:i + 1])))``: its content and the turn's closing tokens (EOS, ``<|im_end|>``, ``</s>``),
not the template's assistant header. That needs a *prefix-stable* template (both renderings are prefixes
of the full one), which chat templates are almost always; otherwise the content is searched for in the
rendering after the previous turn (plus an EOS right after it), and when that fails too a
:class:`ValueError` starting with ``template`` is raised. A token is a target when its first character is
inside a target span. Position 0 never is (nothing predicts it).

Everything pickles cheaply (the tokenizer JSON text, the template and the special tokens; the
``tokenizers`` object and the compiled template are rebuilt lazily), so Spark ships it to executors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

DEFAULT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

MASK_MODES = ("assistant", "last", "all")
# EOS candidates of a tokenizer without tokenizer_config.json, in this order (special added tokens only)
EOS_GUESSES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eot_id|>", "<|im_end|>")
BOS_GUESSES = ("<s>", "<|begin_of_text|>", "<bos>")


def _token_text(value: Any) -> str | None:
    """A special token of tokenizer_config.json: a string, or an AddedToken dict with ``content``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read it: {exc}") from None
    return data if isinstance(data, dict) else {}


def _config_template(value: Any) -> str | None:
    """``chat_template`` of a tokenizer config: a string, or a list of ``{name, template}`` (``default``)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        named = {d.get("name"): d.get("template") for d in value if isinstance(d, dict)}
        t = named.get("default") or next((v for v in named.values() if v), None)
        return t if isinstance(t, str) else None
    return None


def _locate(spec: str) -> tuple[str, dict, str | None]:
    """``(tokenizer JSON text, tokenizer_config dict, chat_template.jinja text)`` of ``spec``."""
    from lakesift.io import local_path
    from lakesift.resolve import ResolveError, looks_like_hub_id, resolve

    p = Path(local_path(spec)) if not spec.startswith(("hf:", "s3:", "gs:", "abfss:", "http")) else None
    if p is not None and p.is_dir():
        cands = sorted(p.glob("tokenizer.json")) or sorted(p.glob("*tokenizer.json"))
        if not cands:
            raise ValueError(f"tokenizer {spec}: no tokenizer.json in {p}")
        tok_path, folder = cands[0], p
    elif p is not None and p.is_file():
        tok_path, folder = p, p.parent
    else:
        if p is not None and not looks_like_hub_id(spec):
            raise ValueError(f"tokenizer not found: {spec}")
        try:
            tok_path = Path(resolve(spec, "tokenizer", file="tokenizer.json", bare_hub_ids=True))
        except ResolveError as exc:
            raise ValueError(str(exc)) from None
        if tok_path.is_dir():
            tok_path = tok_path / "tokenizer.json"
        folder = tok_path.parent
        if not (folder / "tokenizer_config.json").exists() and looks_like_hub_id(spec):
            try:  # optional: the hub repo's config (chat template, special tokens)
                folder = Path(resolve(spec, "tokenizer", file="tokenizer_config.json", bare_hub_ids=True)).parent
            except ResolveError:
                pass
    text = tok_path.read_text(encoding="utf-8")
    cfg_path = folder / "tokenizer_config.json"
    cfg = _read_json(cfg_path) if cfg_path.is_file() else {}
    jinja_path = folder / "chat_template.jinja"
    jinja = jinja_path.read_text(encoding="utf-8") if jinja_path.is_file() else None
    return text, cfg, jinja


def _compile(template: str):
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def _as_messages(value, role: str = "assistant") -> list[dict]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{"role": m["role"], "content": m["content"]} for m in value]


class ChatTokenizer:
    """A tokenizer with its chat template; see the module docstring."""

    def __init__(self, tokenizer_json: str, template: str, template_source: str, eos_token: str,
                 bos_token: str | None = None, pad_token: str | None = None, unk_token: str | None = None,
                 spec: str = ""):
        self.tokenizer_json, self.template, self.template_source = tokenizer_json, template, template_source
        self.eos_token, self.bos_token, self.pad_token, self.unk_token = eos_token, bos_token, pad_token, unk_token
        self.spec = spec
        self.sha1 = hashlib.sha1(tokenizer_json.encode("utf-8")).hexdigest()
        self._tok = None
        self._tmpl = None
        tok = self.tok
        eos = tok.token_to_id(eos_token)
        if eos is None:
            raise ValueError(f"tokenizer {spec}: its EOS token {eos_token!r} is not in the vocabulary")
        self.eos_id = int(eos)
        self.bos_id = None if bos_token is None or tok.token_to_id(bos_token) is None else int(tok.token_to_id(bos_token))
        pad = None if pad_token is None else tok.token_to_id(pad_token)
        self.pad_id = int(pad) if pad is not None else self.eos_id
        self.vocab_size = int(tok.get_vocab_size(with_added_tokens=True))

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, spec: str, template: str | None = None, *, eos_token: str | None = None) -> ChatTokenizer:
        """``spec``: a folder with ``tokenizer.json`` (and ``tokenizer_config.json``: chat template, special
        tokens), a ``tokenizer.json`` file (a config beside it is read too) or a hub id. ``template``: a
        Jinja string or the path of a ``.jinja`` file, overriding the tokenizer's. ``eos_token`` overrides
        the config's; without either, a special token named like an EOS (``<|endoftext|>``, ``</s>`` …)."""
        spec = str(spec)
        text, cfg, jinja = _locate(spec)
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(text)
        specials = [a["content"] for a in json.loads(text).get("added_tokens", []) if a.get("special")]
        eos = eos_token or _token_text(cfg.get("eos_token"))
        if eos is None:
            eos = next((t for t in EOS_GUESSES if t in specials), None)
        if eos is None:
            raise ValueError(f"tokenizer {spec}: no EOS token (no eos_token in tokenizer_config.json and none of "
                             f"{', '.join(EOS_GUESSES)} among its special tokens); pass one")
        if tok.token_to_id(eos) is None:
            raise ValueError(f"tokenizer {spec}: its EOS token {eos!r} is not in the vocabulary")
        bos = _token_text(cfg.get("bos_token"))
        if bos is None and not cfg:
            bos = next((t for t in BOS_GUESSES if t in specials), None)
        pad, unk = _token_text(cfg.get("pad_token")), _token_text(cfg.get("unk_token"))
        if template is not None:
            tp = Path(template)
            is_file = len(template) < 4096 and "{" not in template and tp.is_file()
            if not is_file and "{" not in template:
                raise ValueError(f"chat template {template!r}: no such file, and not a Jinja template")
            tmpl, source = (tp.read_text(encoding="utf-8") if is_file else template), "given"
        else:
            own = _config_template(cfg.get("chat_template")) or jinja
            tmpl, source = (own, "tokenizer") if own else (DEFAULT_TEMPLATE, "default")
        try:
            _compile(tmpl)
        except Exception as exc:
            raise ValueError(f"chat template ({source}): not a valid Jinja template: {exc}") from None
        return cls(text, tmpl, source, eos, bos, pad, unk, spec)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tok"] = state["_tmpl"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    @property
    def tok(self):
        if self._tok is None:
            from udfs.tokenizing import (
                load_tokenizer,  # cached per JSON text: one object per executor process
            )

            self._tok = load_tokenizer(self.tokenizer_json)
        return self._tok

    # ------------------------------------------------------------------ rendering
    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        if self._tmpl is None:
            self._tmpl = _compile(self.template)
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self._tmpl.render(messages=msgs, add_generation_prompt=add_generation_prompt,
                                 bos_token=self.bos_token or "", eos_token=self.eos_token,
                                 pad_token=self.pad_token or "", unk_token=self.unk_token or "")

    def _encode(self, text: str):
        return self.tok.encode(text, add_special_tokens=False)

    def encode_text(self, text: str) -> list[int]:
        return list(self._encode(text).ids) if text else []

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    # ------------------------------------------------------------------ SFT
    def target_spans(self, messages: list[dict], full: str | None = None) -> list[tuple[int, int]]:
        """Character spans ``[lo, hi)`` of every assistant turn in the rendering (module docstring)."""
        full = self.render(messages) if full is None else full
        spans, after = [], 0
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            head = self.render(messages[:i], add_generation_prompt=True)
            upto = self.render(messages[:i + 1])
            if full.startswith(head) and full.startswith(upto) and len(head) <= len(upto) and len(head) >= after:
                lo, hi = len(head), len(upto)
            else:  # not prefix-stable: find the content after the previous turn
                content = m["content"]
                lo = full.find(content, after) if content else -1
                if lo < 0:
                    raise ValueError(f"template ({self.template_source}): assistant turn {i} is not a prefix of the "
                                     "rendering and its content is not found in it")
                hi = lo + len(content)
                rest = full[hi:]
                gap = len(rest) - len(rest.lstrip(" "))
                if rest[gap:].startswith(self.eos_token):
                    hi += gap + len(self.eos_token)
            spans.append((lo, hi))
            after = hi
        return spans

    def encode_sft(self, messages: list[dict], mask: str = "assistant") -> tuple[list[int], list[int]]:
        """``(ids, loss_mask)`` of the rendered conversation; see the module docstring for the modes."""
        if mask not in MASK_MODES:
            raise ValueError(f"mask {mask!r}: expected one of {', '.join(MASK_MODES)}")
        full = self.render(messages)
        enc = self._encode(full)
        ids = list(enc.ids)
        if mask == "all":
            return ids, [0] + [1] * (len(ids) - 1) if ids else []
        spans = self.target_spans(messages, full)
        if mask == "last":
            spans = spans[-1:]
        out = [0] * len(ids)
        if spans:
            k = 0
            for t, (start, end) in enumerate(enc.offsets):
                if end <= start and t > 0 and out[t - 1]:  # a zero-width piece continues its neighbour
                    out[t] = 1
                    continue
                while k < len(spans) and start >= spans[k][1]:
                    k += 1
                if k < len(spans) and spans[k][0] <= start < spans[k][1]:
                    out[t] = 1
        if out:
            out[0] = 0
        return ids, out

    # ------------------------------------------------------------------ prompts and pairs
    def encode_prompt(self, messages: list[dict]) -> list[int]:
        """The ids of ``messages`` rendered with the generation prompt: what a model continues."""
        return self.encode_text(self.render(messages, add_generation_prompt=True))

    def completion_text(self, prompt: list[dict], completion) -> tuple[str, str]:
        """``(prompt text, completion text)``: the rendering of ``prompt + completion`` cut where the
        prompt's rendering (with the generation prompt) ends."""
        p_text = self.render(prompt, add_generation_prompt=True)
        full = self.render(list(prompt) + _as_messages(completion))
        if full.startswith(p_text):
            return p_text, full[len(p_text):]
        # not prefix-stable: the completion starts at its first message's content after the prompt's text
        first = _as_messages(completion)[0]["content"] if _as_messages(completion) else ""
        common = 0
        while common < min(len(full), len(p_text)) and full[common] == p_text[common]:
            common += 1
        at = full.find(first, common) if first else -1
        if at < 0:
            raise ValueError(f"template ({self.template_source}): the prompt's rendering with the generation prompt "
                             "is not a prefix of the rendered pair, and the completion is not found in it")
        return p_text, full[at:]

    def encode_pair(self, prompt, chosen, rejected) -> tuple[list[int], list[int], int]:
        """``(prompt + chosen ids, prompt + rejected ids, prompt_len)``; the prompt's ids (its rendering with
        the generation prompt, tokenized alone) are an exact prefix of both, each completion's text being
        tokenized on its own after them. ``prompt``: messages or a string (a user turn); ``chosen`` /
        ``rejected``: assistant messages or strings."""
        prompt = _as_messages(prompt, "user")
        p_text, c_text = self.completion_text(prompt, chosen)
        _, r_text = self.completion_text(prompt, rejected)
        p_ids = self.encode_text(p_text)
        return p_ids + self.encode_text(c_text), p_ids + self.encode_text(r_text), len(p_ids)

    def info(self) -> dict:
        """What a manifest records of the tokenizer and its template."""
        return {"tokenizer": self.spec, "tokenizer_sha1": self.sha1, "vocab_size": self.vocab_size,
                "eos_token": self.eos_token, "eos_id": self.eos_id, "bos_token": self.bos_token, "bos_id": self.bos_id,
                "pad_id": self.pad_id, "chat_template": self.template, "template_source": self.template_source}

    def __repr__(self) -> str:
        return (f"ChatTokenizer({self.spec!r}, template_source={self.template_source!r}, eos={self.eos_token!r}, "
                f"vocab_size={self.vocab_size})")
