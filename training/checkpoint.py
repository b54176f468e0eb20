"""Training checkpoints: ``OUT/step-N`` written with torch distributed checkpointing (the model and
optimizer state, sharded as they are, and the objective's state when it keeps any) plus
``meta.json`` (the step, tokens seen, the data loader's state, the scale, world size, seed and
objective). Only a folder with ``meta.json`` counts as complete; the last ``keep`` are kept. Loading the
loader's state makes a resumed run continue on the same data order as an uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


class Checkpointer:
    def __init__(self, out: Path, keep: int, rank: int, info: dict):
        """``info``: what every ``meta.json`` records besides the step, tokens and loader state;
        ``keep``: complete checkpoints to keep (0 keeps all)."""
        self.out, self.keep, self.rank, self.info = Path(out), keep, rank, info

    def done(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.out.exists():
            return []
        return sorted((p for p in self.out.glob("step-*") if (p / "meta.json").exists()),
                      key=lambda p: int(p.name[5:]))

    @staticmethod
    def _state(model, opt, objective) -> dict:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

        state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)}
        extra = objective.state_dict()
        if extra:
            state["objective"] = extra
        return state

    def load(self, path: Path, model, opt, loader, objective) -> dict:
        """Restore everything from ``path`` in place; returns its meta."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        meta = json.loads((path / "meta.json").read_text())
        saved = meta.get("objective", "clm")  # checkpoints from before objectives were named are CLM
        if saved != objective.name:
            raise SystemExit(f"{path} was trained with the {saved!r} objective, not {objective.name!r}; "
                             "use another --out")
        state = self._state(model, opt, objective)
        dcp.load(state, checkpoint_id=str(path))
        set_model_state_dict(model, state["model"])
        set_optimizer_state_dict(model, opt, state["optim"])
        objective.load_state_dict(state.get("objective", {}))
        loader.load_state_dict(meta["loader"])
        return meta

    def save(self, step: int, tokens_seen: int, model, opt, loader, objective) -> Path:
        """Write ``step-<step>`` (every rank takes part), then drop the oldest beyond ``keep``."""
        import torch.distributed as dist
        import torch.distributed.checkpoint as dcp

        path = self.out / f"step-{step}"
        dcp.save(self._state(model, opt, objective), checkpoint_id=str(path))
        if self.rank == 0:
            meta = {"step": step, "tokens_seen": tokens_seen, "loader": loader.state_dict(), **self.info,
                    "objective": objective.name}
            (path / "meta.json").write_text(json.dumps(meta, indent=1))
            for old in self.done()[:-self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        dist.barrier()
        return path
