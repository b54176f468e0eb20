"""Hugging Face causal LMs (LLaMA, Qwen2, Mistral style, through ``transformers``) in Lakesift's trainer.

    from training import hf
    model = hf.load("models/llama-2-7b")              # an HFCausalLM: logits = model(tokens[, doc_ids])
    training.parallelize.parallelize(model, device)    # FSDP2 per decoder layer, then the root
    hf.save(model, "runs/x/final", tokenizer_dir="lake/tokenizers/zh")   # AutoModelForCausalLM loads it

:class:`HFCausalLM` gives the ``transformers`` model the interface ``training.model.Transformer`` has:
``forward(tokens, doc_ids=None)`` returns logits, ``hidden`` the final normalised hidden states, ``layers``
the decoder layers (what ``training.parallelize`` checkpoints, compiles and shards one by one), ``embed``
and ``head``, and ``cfg`` the shape facts the trainer reads (:class:`Shape`). The wrapped model is its only
child, ``self.hf``, so its state-dict keys are the model's own behind ``hf.``; :func:`save` drops the
prefix.

Packed documents: ``doc_ids`` (batch, seq) numbers the documents in each sequence (a document is a run of
equal numbers). Attention is then causal and within one document, and positions restart at each
document's first token, so each document's logits are those of running it alone. The mask goes to
``transformers`` as a ready 4D mask (batch, 1, seq, seq), which its mask builder passes through unchanged:
boolean (True: attend) for the ``sdpa`` attention, additive float (0 / the fp32 minimum) for ``eager``;
the positions go as ``position_ids``. Other attention implementations (flash, flex) do not take such a
mask, so packed batches need ``sdpa`` or ``eager`` (the default here is ``sdpa``); a sliding window shorter
than the sequence is refused too (one mask cannot express it and the documents at once).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
TOKENIZER_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
PACKED_ATTENTION = ("sdpa", "eager")


def is_hf_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a Hugging Face model folder: a ``config.json`` with a ``model_type`` (and not
    one of ours, which says ``"format": "lakesift-open_lm"``)."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text())
    except ValueError:
        return False
    return isinstance(data, dict) and "model_type" in data and data.get("format") != "lakesift-open_lm"


@dataclass(frozen=True)
class Shape:
    """What the trainer reads from ``model.cfg``, named as in ``training.config.ModelConfig``:
    ``vocab_size`` (rows of the input embedding), ``d_model`` (``hidden_size``), ``n_layers``
    (``num_hidden_layers``), ``n_heads`` (``num_attention_heads``) and ``seq_len`` (the training sequence
    length: ``max_position_embeddings`` unless given)."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    seq_len: int


def _sliding_window(config) -> int | None:
    """The window of the model's sliding-window layers, None when it has none."""
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if window is None or getattr(config, "use_sliding_window", True) is False:
        return None
    if types is not None and "sliding_attention" not in types:
        return None
    return int(window)


def document_positions(doc_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(boolean mask (batch, seq, seq): query position i may see key position j, positions restarted at
    each document start (batch, seq)) for packed sequences numbered by ``doc_ids`` (batch, seq)."""
    b, s = doc_ids.shape
    first = torch.ones_like(doc_ids, dtype=torch.bool)
    first[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    segment = first.cumsum(1)  # a document number that also tells apart equal ids that are not adjacent
    idx = torch.arange(s, device=doc_ids.device).expand(b, s)
    start = torch.cummax(torch.where(first, idx, torch.zeros_like(idx)), dim=1).values
    causal = torch.ones(s, s, dtype=torch.bool, device=doc_ids.device).tril()
    return (segment[:, :, None] == segment[:, None, :]) & causal, idx - start


class HFCausalLM(nn.Module):
    """A ``transformers`` causal LM (``AutoModelForCausalLM``) behind the interface of
    ``training.model.Transformer``; see the module docstring."""

    def __init__(self, model: nn.Module, seq_len: int | None = None):
        super().__init__()
        self.hf = model
        c = model.config
        self.cfg = Shape(vocab_size=self.embed.num_embeddings, d_model=c.hidden_size, n_layers=c.num_hidden_layers,
                         n_heads=c.num_attention_heads,
                         seq_len=int(seq_len or getattr(c, "max_position_embeddings", 2048)))

    @property
    def layers(self) -> nn.ModuleList:
        """The decoder layers, the ``transformers`` model's own list (assigning an item replaces the layer
        the model runs; a property, so the state dict has each parameter once)."""
        return self.hf.get_decoder().layers

    @property
    def embed(self) -> nn.Embedding:
        return self.hf.get_input_embeddings()

    @property
    def head(self) -> nn.Linear:
        return self.hf.get_output_embeddings()

    @property
    def tied(self) -> bool:
        """Whether the output head shares the input embedding's weight."""
        return self.head.weight is self.embed.weight

    def _inputs(self, tokens: torch.Tensor, doc_ids: torch.Tensor | None) -> dict:
        if doc_ids is None:
            return {"input_ids": tokens, "use_cache": False}
        impl = self.hf.config._attn_implementation
        if impl not in PACKED_ATTENTION:
            raise ValueError(f"packed documents (doc_ids) need attn_implementation sdpa or eager, not {impl!r}")
        window = _sliding_window(self.hf.config)
        if window is not None and tokens.shape[1] > window:
            raise ValueError(f"packed documents (doc_ids) with a sliding window ({window}) shorter than the "
                             f"sequence ({tokens.shape[1]}) are not supported")
        allowed, positions = document_positions(doc_ids)
        mask = allowed[:, None]
        if impl == "eager":  # eager attention adds the mask to the scores
            mask = torch.zeros(mask.shape, device=mask.device).masked_fill_(~mask, torch.finfo(torch.float32).min)
        return {"input_ids": tokens, "attention_mask": mask, "position_ids": positions, "use_cache": False}

    def forward(self, tokens: torch.Tensor, doc_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (batch, seq, vocab) in the model's compute dtype (cast with ``.float()``)."""
        return self.hf(**self._inputs(tokens, doc_ids)).logits

    def hidden(self, tokens: torch.Tensor, doc_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The final normalised hidden states (apply ``head`` to the positions you need)."""
        return self.hf.get_decoder()(**self._inputs(tokens, doc_ids)).last_hidden_state


def load(spec: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, *,
         attn_implementation: str = "sdpa", seq_len: int | None = None) -> HFCausalLM:
    """An :class:`HFCausalLM` from ``spec``: a local model folder, or a hub id / ``hf://`` URI (resolved
    through ``lakesift.resolve``), with weights in ``dtype`` on ``device``."""
    from transformers import AutoModelForCausalLM

    from lakesift.resolve import resolve

    folder = resolve(spec, "model", bare_hub_ids=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation=attn_implementation)
    return HFCausalLM(model, seq_len).to(device)


def save(model_or_state_dict, out: str | Path, tokenizer_dir: str | Path | None = None, *, config=None) -> None:
    """Write a folder ``AutoModelForCausalLM.from_pretrained`` loads (and, with ``tokenizer_dir``,
    ``AutoTokenizer.from_pretrained`` too: :func:`write_tokenizer`).

    ``model_or_state_dict``: an :class:`HFCausalLM`, sharded by FSDP2 or not (its full state dict is
    gathered: every rank must call, rank 0 writes), or a full state dict (keys with or without ``hf.``;
    ``config``, the ``transformers`` config, is then required). The weights are put into a model built
    on the meta device (no second copy, no initialisation) and written with ``save_pretrained``."""
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM

    if isinstance(model_or_state_dict, HFCausalLM):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        config = model_or_state_dict.hf.config
        state = get_model_state_dict(model_or_state_dict,
                                     options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        if config is None:
            raise ValueError("hf.save: a state dict needs config= (the transformers config)")
        state = model_or_state_dict
    if dist.is_initialized() and dist.get_rank() != 0:
        return
    state = {k.removeprefix("hf."): v for k, v in state.items()}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
        missing = [k for k in missing if model.get_parameter(k).device.type == "meta"]
    if missing or unexpected:
        raise ValueError(f"hf.save: the state dict does not fit {type(model).__name__}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    out = Path(out)
    model.save_pretrained(str(out))
    if tokenizer_dir is not None:
        write_tokenizer(tokenizer_dir, out)


def write_tokenizer(tokenizer: str | Path, out: str | Path, template: str | Path | None = None) -> None:
    """Put a tokenizer into the model folder ``out`` so that ``AutoTokenizer.from_pretrained(out)`` loads
    it: ``tokenizer.json`` (``tokenizer`` is one or a folder holding one) and, beside it,
    ``tokenizer.model`` (a SentencePiece base); ``tokenizer_config.json`` and ``special_tokens_map.json``
    from the tokenizer's folder, else from ``template`` (the model's original folder: its special tokens
    and chat template; the old ids they name are unchanged), else a minimal config naming
    ``PreTrainedTokenizerFast``."""
    src = Path(tokenizer)
    src = src.parent if src.is_file() else src
    if not (src / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {src}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    config_src = next((d for d in (src, Path(template) if template else None)
                       if d is not None and (d / "tokenizer_config.json").is_file()), None)
    if config_src is None:
        (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
        return
    for name in TOKENIZER_CONFIG_FILES:
        if (config_src / name).is_file():
            shutil.copyfile(config_src / name, out / name)
