"""The final model as a plain folder: ``model.safetensors`` (full fp32 weights) and ``config.json``
(the scale's model shape), and the loader for it.

    from training.export import load
    model = load("runs/demo/final")          # a training.model.Transformer in eval mode
    logits = model(torch.tensor([[1, 2, 3]]))

This is a documented loader rather than a ``transformers`` architecture: the open_lm block layout
(qk-norm without parameters, gain-only LayerNorm) has no exact ``transformers`` counterpart.
"""

from __future__ import annotations

import json
from pathlib import Path


def export(model, scale, out: Path, vocab: dict | None = None, hf_source: str | None = None) -> None:
    """Gather the (sharded) model's full weights and write them to ``out`` (rank 0): our format, or for a
    Hugging Face model (``training.hf.HFCausalLM``) its own (``save_pretrained``, with the tokenizer files
    of ``hf_source``, the folder it was loaded from, when it has them). ``vocab``: the vocabulary facts of
    a resized model (``training.resize``), kept in ``config.json`` (``lakesift_vocab.json`` for HF)."""
    import torch.distributed as dist
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not dist.is_initialized() or dist.get_rank() == 0:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if hasattr(model, "hf"):
            from training import hf

            src = Path(hf_source) if hf_source else None
            has_tok = src is not None and any((src / f).is_file() for f in ("tokenizer.json", "tokenizer.model"))
            hf.save(state, out, src if has_tok else None, config=model.hf.config)
            if vocab:
                (out / "lakesift_vocab.json").write_text(json.dumps(vocab, indent=1))
            return
        save_file({k: v.contiguous().float() for k, v in state.items()}, str(out / "model.safetensors"))
        conf = {"format": "lakesift-open_lm", "scale": scale.name, "model": scale.model.model_dump()}
        if vocab:
            conf["vocab"] = vocab
        (out / "config.json").write_text(json.dumps(conf, indent=1))


def load(folder: str | Path, device: str = "cpu"):
    from safetensors.torch import load_file

    from training.config import ModelConfig
    from training.model import Transformer

    folder = Path(folder)
    cfg = ModelConfig.model_validate(json.loads((folder / "config.json").read_text())["model"])
    model = Transformer(cfg)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.to(device).eval()
