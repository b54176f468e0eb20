"""Resize a checkpoint's vocabulary to an expanded tokenizer (Colossal-LLaMA-2's second step), the new
rows of the input embedding and of the output head initialised from the old ones.

    python -m training.resize --checkpoint runs/demo/final --tokenizer lake/tokenizers/zh
    python -m training.resize --checkpoint runs/demo/step-1000 --tokenizer OUT --out runs/demo/zh-init
    python -m training.resize --checkpoint models/llama-2-7b --tokenizer OUT --init random --seed 1

``--checkpoint``: a ``training.export`` folder (``config.json`` with ``"format": "lakesift-open_lm"``), a
training checkpoint ``step-N`` (torch distributed checkpoint + ``meta.json``; only its model weights are
read) or a Hugging Face causal-LM folder (LLaMA / Qwen2 / Mistral style, loaded with ``transformers``).
``--tokenizer``: the expansion job's folder (``tokenizer.json``, ``base/tokenizer.json``, ``report.json``)
or a ``tokenizer.json``; ``--base-tokenizer`` names the old one explicitly (default ``TOKENIZER/base``).
The old tokenizer's ids must name the same pieces in the new one (checked: expansion appends ids).

Output (``--out``, default ``CHECKPOINT-resized``): for our checkpoints an export folder that
``training.export.load`` reads (``model.vocab_size`` in ``config.json`` is the padded size, and a
``"vocab"`` object records what was done) plus the new ``tokenizer.json``; for a Hugging Face checkpoint
``save_pretrained`` of the resized model, the tokenizer files (``AutoTokenizer.from_pretrained`` loads
the folder) and the same facts in ``lakesift_vocab.json``.

Mean initialisation, the rule. ``V0``: the old tokenizer's size, ``V1``: the new one's, ``P``: ``V1``
rounded up to ``--pad-multiple`` (the expansion report's, else 64). For each matrix ``M`` (the input
embedding and the output head; once when they are tied, the head follows):

* rows ``0 .. V0-1`` are copied unchanged, bit for bit;
* a new piece's row ``i`` (``V0 <= i < V1``) is ``sum_k w_k M[d_k] / sum_k w_k`` over the pieces ``d`` of
  its decomposition under the old tokenizer:

  - a piece of the new tokenizer's model vocabulary is decomposed by the old tokenizer's model itself (its
    BPE merges or unigram lattice, byte fallback included) applied to the piece string, which is already
    normalised and pre-tokenised. So SentencePiece's dummy prefix ``'▁'`` is never added: a ``'▁'`` is in
    the decomposition only when the piece itself starts with ``'▁'``; no BOS / EOS either;
  - an added token (the tokenizer's added-token list) is text: its content is encoded by the whole old
    tokenizer without special tokens, and a leading ``'▁'`` piece is dropped unless the content starts
    with a space or ``'▁'`` (the dummy prefix);
  - the old unknown token is left out (its row means nothing);
  - the weights: 1 for an ordinary piece; the byte-fallback pieces ``<0xNN>`` that spell one UTF-8
    character share one weight (``1/n`` each for an ``n``-byte character), so a 3-byte CJK character
    counts once, like any other piece, rather than three times. A byte-level BPE's pieces are byte
    strings, not byte-fallback pieces: each counts once;
  - an empty decomposition (an empty piece, or only unknown pieces) gives the mean of rows ``0 .. V0-1``;
* padding rows ``V1 .. P-1`` are the mean of rows ``0 .. V0-1``: no tokenizer id maps there, so they are
  never inputs, and as output rows their logit ``h . mean`` is the average of the old logits, small next
  to the likely tokens', so they take little probability and only a small gradient pushes them down;
* rows of the old matrix at ``V0`` and beyond (an old checkpoint's own padding) are not old pieces: they
  are replaced as above.

The weighted means are one sparse ``(V1 - V0) x V0`` matrix of normalised weights times the old rows
(``torch.sparse.mm``), in fp32 (fp64 for fp64 weights), cast back to the matrix's dtype.

``--init random`` is the comparison: the new pieces' rows from ``N(0, s^2)``, ``s`` the standard
deviation of the old rows' entries, from ``--seed``; padding rows as above.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

RULE = ("mean of the old rows of the piece's decomposition under the old tokenizer's model (no dummy "
        "prefix, no BOS/EOS, unknown left out), byte-fallback pieces of one character sharing one weight; "
        "empty decomposition and padding rows: mean of all old rows")
_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


class ResizeError(ValueError):
    """A checkpoint or tokenizer that cannot be resized as asked."""


def _byte(piece: str) -> int | None:
    m = _BYTE.match(piece)
    return int(m.group(1), 16) if m else None


def _utf8_length(lead: int) -> int:
    """The byte count of the UTF-8 character that ``lead`` starts (1 for a byte that starts none)."""
    for n, (mask, value) in ((2, (0xE0, 0xC0)), (3, (0xF0, 0xE0)), (4, (0xF8, 0xF0))):
        if lead & mask == value:
            return n
    return 1


def piece_weights(pieces: list[str]) -> list[float]:
    """The weight of each piece of a decomposition: 1 for an ordinary piece; a run of byte-fallback
    pieces ``<0xNN>`` that spells one UTF-8 character (a lead byte and its continuation bytes) shares 1
    (a stray continuation byte or a cut character counts as one character of its own)."""
    w = [1.0] * len(pieces)
    i = 0
    while i < len(pieces):
        b = _byte(pieces[i])
        if b is None:
            i += 1
            continue
        j, need = i + 1, _utf8_length(b)
        while j < len(pieces) and j - i < need and (c := _byte(pieces[j])) is not None and c & 0xC0 == 0x80:
            j += 1
        w[i:j] = [1.0 / (j - i)] * (j - i)
        i = j
    return w


def tokenizer_file(path: str | Path, what: str) -> Path:
    """``path`` itself (a ``tokenizer.json``) or ``path/tokenizer.json``."""
    p = Path(path)
    f = p / "tokenizer.json" if p.is_dir() else p
    if not f.is_file():
        raise ResizeError(f"{what}: no tokenizer.json at {p}")
    return f


def vocab_size(tok) -> int:
    """The number of ids of a ``tokenizers.Tokenizer`` (with its added tokens), checked contiguous."""
    n = tok.get_vocab_size(with_added_tokens=True)
    ids = set(tok.get_vocab(with_added_tokens=True).values())
    if ids != set(range(n)):
        raise ResizeError(f"tokenizer ids are not 0 .. {n - 1} (missing: {sorted(set(range(n)) - ids)[:10]})")
    return n


def check_prefix(old, new) -> tuple[int, int]:
    """(old size, new size) after checking that every old id names the same piece in the new tokenizer."""
    v0, v1 = vocab_size(old), vocab_size(new)
    if v1 < v0:
        raise ResizeError(f"the new tokenizer has {v1} ids, fewer than the base's {v0}: not an expansion of it")
    new_vocab = new.get_vocab(with_added_tokens=True)
    differ = sorted((i, p) for p, i in old.get_vocab(with_added_tokens=True).items() if new_vocab.get(p) != i)
    if differ:
        shown = ", ".join(f"{i}: {p!r} (new: {new.id_to_token(i)!r})" for i, p in differ[:5])
        raise ResizeError(f"the tokenizers' first {v0} ids differ at {len(differ)} id(s), e.g. {shown}; the new "
                          "tokenizer must keep the base's ids and append new ones")
    return v0, v1


def decompose(old, new, v0: int, v1: int) -> list[list[tuple[int, str]]]:
    """Each new id's decomposition under the old tokenizer, as (old id, piece) pairs (the module
    docstring's rule: model pieces through the old model, added tokens through the old pipeline)."""
    added = {i: t.content for i, t in new.get_added_tokens_decoder().items()}
    unk = getattr(old.model, "unk_token", None)
    unk_id = old.token_to_id(unk) if unk else None
    out = []
    for i in range(v0, v1):
        if i in added:
            text = added[i]
            enc = old.encode(text, add_special_tokens=False)
            pairs = list(zip(enc.ids, enc.tokens, strict=True))
            if pairs and pairs[0][1] == "▁" and not text.startswith((" ", "▁")):
                pairs = pairs[1:]
        else:
            pairs = [(t.id, t.value) for t in old.model.tokenize(new.id_to_token(i))]
        out.append([(j, p) for j, p in pairs if j != unk_id])
    return out


@dataclass
class Plan:
    """How a ``V0``-row matrix becomes a ``P``-row one: the normalised weights of each new piece's row
    over the old rows as COO triplets, and what the log and the facts report."""

    base_vocab_size: int
    tokenizer_vocab_size: int
    padded_vocab_size: int
    pad_multiple: int
    rows: torch.Tensor  # new-piece index (id - V0) of each weight
    cols: torch.Tensor  # old id
    weights: torch.Tensor  # float64; each new piece's weights sum to 1
    empty: list[int] = field(default_factory=list)  # new ids with an empty decomposition
    byte_pieces: int = 0  # byte-fallback pieces among all decompositions' pieces

    @property
    def new_pieces(self) -> int:
        return self.tokenizer_vocab_size - self.base_vocab_size

    def matrix(self, dtype: torch.dtype) -> torch.Tensor:
        """The sparse (new pieces x V0) weight matrix."""
        idx = torch.stack([self.rows, self.cols])
        return torch.sparse_coo_tensor(idx, self.weights.to(dtype), (self.new_pieces, self.base_vocab_size),
                                       check_invariants=False)  # in range by construction


def make_plan(old, new, pad_multiple: int) -> Plan:
    """The plan for resizing from ``old``'s vocabulary to ``new``'s, padded to ``pad_multiple``."""
    if pad_multiple < 1:
        raise ResizeError(f"--pad-multiple must be positive, not {pad_multiple}")
    v0, v1 = check_prefix(old, new)
    rows, cols, weights, empty, n_bytes = [], [], [], [], 0
    for k, pairs in enumerate(decompose(old, new, v0, v1)):
        if not pairs:
            empty.append(v0 + k)
            continue
        w = piece_weights([p for _, p in pairs])
        total = sum(w)
        rows += [k] * len(pairs)
        cols += [j for j, _ in pairs]
        weights += [x / total for x in w]
        n_bytes += sum(_byte(p) is not None for _, p in pairs)
    padded = -(-v1 // pad_multiple) * pad_multiple
    return Plan(v0, v1, padded, pad_multiple, torch.tensor(rows, dtype=torch.long),
                torch.tensor(cols, dtype=torch.long), torch.tensor(weights, dtype=torch.float64), empty, n_bytes)


def extend(weight: torch.Tensor, plan: Plan, init: str = "mean", gen: torch.Generator | None = None) -> torch.Tensor:
    """``weight`` (old rows x d, at least ``V0`` rows) as a ``P x d`` matrix by the module's rule: rows
    ``0 .. V0-1`` unchanged, new pieces' rows by ``init`` ("mean" or "random", drawn from ``gen``), padding
    rows the mean of the old rows."""
    v0 = plan.base_vocab_size
    if weight.shape[0] < v0:
        raise ResizeError(f"the checkpoint's matrix has {weight.shape[0]} rows but the base tokenizer has {v0} "
                          "ids: it was not trained with this tokenizer")
    old = weight[:v0].detach()
    calc = torch.float64 if old.dtype == torch.float64 else torch.float32
    mean_all = old.to(calc).mean(0)
    if init == "mean":
        new = torch.sparse.mm(plan.matrix(calc), old.to(calc))
        if plan.empty:
            new[torch.tensor(plan.empty) - v0] = mean_all
    elif init == "random":
        std = old.to(calc).std()
        new = torch.randn(plan.new_pieces, old.shape[1], generator=gen, dtype=calc) * std
    else:
        raise ResizeError(f"--init must be mean or random, not {init!r}")
    pad = mean_all.expand(plan.padded_vocab_size - plan.tokenizer_vocab_size, -1)
    return torch.cat([old, new.to(old.dtype), pad.to(old.dtype)])


# ---------------------------------------------------------------------------------------------------
# checkpoints


def checkpoint_kind(path: Path) -> str:
    """"export", "dcp" (a training checkpoint ``step-N``) or "hf"; a :class:`ResizeError` otherwise."""
    from training.hf import is_hf_checkpoint

    cfg = path / "config.json"
    if cfg.is_file() and json.loads(cfg.read_text()).get("format") == "lakesift-open_lm":
        return "export"
    if (path / "meta.json").is_file() and (path / ".metadata").is_file():
        return "dcp"
    if is_hf_checkpoint(path):
        return "hf"
    raise ResizeError(f"{path}: not a checkpoint this can resize: expected a training.export folder (config.json "
                      "with \"format\": \"lakesift-open_lm\"), a training checkpoint step-N (meta.json + torch "
                      "distributed checkpoint) or a Hugging Face causal-LM folder (config.json with model_type)")


def read_dcp_model(path: Path) -> dict[str, torch.Tensor]:
    """The model weights of a training checkpoint (the ``model`` entry of its torch distributed
    checkpoint, full tensors on the CPU), without a process group and without the optimizer state."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    meta = dcp.FileSystemReader(str(path)).read_metadata()
    state = {k[len("model."):]: torch.empty(tuple(m.size), dtype=m.properties.dtype)
             for k, m in meta.state_dict_metadata.items()
             if k.startswith("model.") and isinstance(m, TensorStorageMetadata)}
    if not state:
        raise ResizeError(f"{path}: the distributed checkpoint holds no model weights")
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message=".*single process", category=UserWarning)
        dcp.load({"model": state}, checkpoint_id=str(path), no_dist=not dist.is_initialized())
    return state


def _resize_ours(path: Path, kind: str, plan: Plan, init: str, gen, out: Path) -> dict:
    """Our export / training checkpoint -> an export folder; returns the vocab facts."""
    from safetensors.torch import load_file, save_file

    if kind == "export":
        config = json.loads((path / "config.json").read_text())
        state = load_file(str(path / "model.safetensors"))
    else:
        meta = json.loads((path / "meta.json").read_text())
        config = {"format": "lakesift-open_lm", "scale": meta["scale"]["name"], "model": meta["scale"]["model"],
                  "step": meta.get("step")}
        state = read_dcp_model(path)
    for key in ("embed.weight", "head.weight"):
        if key not in state:
            raise ResizeError(f"{path}: no {key} in the model weights")
    old_rows = state["embed.weight"].shape[0]
    state["embed.weight"] = extend(state["embed.weight"], plan, init, gen)
    state["head.weight"] = extend(state["head.weight"], plan, init, gen)
    facts = vocab_facts(plan, init, old_rows, tied=False)
    config["model"] = {**config["model"], "vocab_size": plan.padded_vocab_size}
    config["vocab"] = facts
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=1))
    return facts


def _resize_hf(path: Path, tok_dir: Path, plan: Plan, init: str, gen, out: Path) -> dict:
    """A Hugging Face causal LM -> ``save_pretrained`` of the resized model + tokenizer files."""
    from transformers import AutoModelForCausalLM

    from training.hf import write_tokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype="auto")
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head is None:
        raise ResizeError(f"{path}: the model has no output head (not a causal LM)")
    if getattr(head, "bias", None) is not None:
        raise ResizeError(f"{path}: an output head with a bias is not supported")
    tied = head.weight is emb.weight
    old_rows = emb.weight.shape[0]
    new_emb = extend(emb.weight, plan, init, gen)
    new_head = None if tied else extend(head.weight, plan, init, gen)
    model.resize_token_embeddings(plan.padded_vocab_size, mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(new_emb)
        if not tied:
            model.get_output_embeddings().weight.copy_(new_head)
    facts = vocab_facts(plan, init, old_rows, tied=tied)
    model.save_pretrained(str(out))
    write_tokenizer(tok_dir, out, template=path)
    (out / "lakesift_vocab.json").write_text(json.dumps(facts, indent=1))
    return facts


def vocab_facts(plan: Plan, init: str, old_rows: int, *, tied: bool) -> dict:
    """What the output records about the resize (config.json's ``vocab`` / ``lakesift_vocab.json``)."""
    pieces = int(plan.rows.numel())
    return {"base_vocab_size": plan.base_vocab_size, "tokenizer_vocab_size": plan.tokenizer_vocab_size,
            "padded_vocab_size": plan.padded_vocab_size, "pad_multiple": plan.pad_multiple, "init": init,
            "rule": RULE if init == "mean" else "normal(0, std of the old rows); padding rows: mean of all old rows",
            "new_pieces": plan.new_pieces, "padding_rows": plan.padded_vocab_size - plan.tokenizer_vocab_size,
            "old_rows": old_rows, "old_padding_rows_replaced": old_rows - plan.base_vocab_size,
            "empty_decompositions": plan.empty,
            "mean_decomposition_length": pieces / max(1, plan.new_pieces - len(plan.empty)),
            "byte_fallback_share": plan.byte_pieces / max(1, pieces), "tied": tied}


def _copy_tokenizer(tok_file: Path, out: Path) -> None:
    """The new ``tokenizer.json`` (and ``tokenizer.model`` beside it, for a SentencePiece base) into ``out``."""
    shutil.copyfile(tok_file, out / "tokenizer.json")
    if (tok_file.parent / "tokenizer.model").is_file():
        shutil.copyfile(tok_file.parent / "tokenizer.model", out / "tokenizer.model")


def resize(checkpoint: str | Path, tokenizer: str | Path, *, base_tokenizer: str | Path | None = None,
           out: str | Path | None = None, pad_multiple: int | None = None, init: str = "mean",
           seed: int = 0) -> tuple[Path, dict]:
    """Resize ``checkpoint`` to ``tokenizer`` (see the module docstring); returns (output folder, the
    vocab facts it records). ``pad_multiple``: default the expansion report's, else 64."""
    from tokenizers import Tokenizer

    from lakesift.resolve import resolve

    path = Path(resolve(str(checkpoint), "checkpoint", bare_hub_ids=True))
    kind = checkpoint_kind(path)
    tok_file = tokenizer_file(tokenizer, "--tokenizer")
    base_file = tokenizer_file(base_tokenizer if base_tokenizer is not None else tok_file.parent / "base",
                               "--base-tokenizer")
    report_file = tok_file.parent / "report.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    if pad_multiple is None:
        pad_multiple = int(report.get("pad_multiple", 64))
    out = Path(out) if out is not None else path.with_name(path.name + "-resized")
    if out.exists() and any(out.iterdir()):
        raise ResizeError(f"{out} exists and is not empty; choose another --out")
    old, new = Tokenizer.from_file(str(base_file)), Tokenizer.from_file(str(tok_file))
    plan = make_plan(old, new, pad_multiple)
    for key, have in (("base_vocab_size", plan.base_vocab_size), ("vocab_size", plan.tokenizer_vocab_size)):
        if key in report and report[key] != have:
            raise ResizeError(f"{report_file}: {key} is {report[key]} but the tokenizers give {have}")
    gen = torch.Generator().manual_seed(seed)
    print(f"resize: {kind} checkpoint {path}: vocabulary {plan.base_vocab_size} -> {plan.tokenizer_vocab_size} "
          f"pieces, padded to {plan.padded_vocab_size} (multiple of {pad_multiple}); init {init}", flush=True)
    if kind == "hf":
        facts = _resize_hf(path, tok_file.parent, plan, init, gen, out)
    else:
        facts = _resize_ours(path, kind, plan, init, gen, out)
        _copy_tokenizer(tok_file, out)
    facts = {**facts, "checkpoint": str(path), "tokenizer": str(tok_file), "base_tokenizer": str(base_file)}
    print(f"resize: {plan.new_pieces} new piece row(s) ({init}: "
          f"{RULE if init == 'mean' else 'normal with the old rows std, seed ' + str(seed)}), "
          f"{facts['padding_rows']} padding row(s) (mean of the old rows), "
          f"{facts['old_padding_rows_replaced']} old padding row(s) replaced, "
          f"{len(plan.empty)} empty decomposition(s){' ' + str(plan.empty[:10]) if plan.empty else ''}; "
          f"{facts['mean_decomposition_length']:.2f} old pieces per new piece, "
          f"{100 * facts['byte_fallback_share']:.0f}% byte fallback; tied: {facts['tied']} -> {out}", flush=True)
    return out, facts


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m training.resize", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True,
                   help="a training.export folder, a training checkpoint step-N or a Hugging Face causal-LM folder")
    p.add_argument("--tokenizer", required=True,
                   help="the expanded tokenizer: the expansion job's folder or a tokenizer.json")
    p.add_argument("--base-tokenizer", help="the checkpoint's tokenizer (default TOKENIZER/base)")
    p.add_argument("--out", help="output folder (default CHECKPOINT-resized); must not exist or be empty")
    p.add_argument("--pad-multiple", type=int,
                   help="pad the vocabulary to a multiple of N (default: the expansion report's, else 64)")
    p.add_argument("--init", choices=("mean", "random"), default="mean",
                   help="new rows: mean of their old pieces' rows (default) or random, for comparison")
    p.add_argument("--seed", type=int, default=0, help="seed of --init random (default 0)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from lakesift.resolve import ResolveError

    try:
        resize(args.checkpoint, args.tokenizer, base_tokenizer=args.base_tokenizer, out=args.out,
               pad_multiple=args.pad_multiple, init=args.init, seed=args.seed)
    except (ResizeError, ResolveError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
