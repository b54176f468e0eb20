"""Fixtures of the trainer tests: byte-level MDS shards and a process group of one in this process."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from tests.conftest import REPO

SEQ = 64  # debug-bytes


def write_mds(out, rows) -> None:
    from streaming import MDSWriter

    with MDSWriter(out=str(out), columns={"tokens": f"ndarray:uint16:{SEQ + 1}"}, size_limit="256kb") as w:
        for row in rows:
            w.write({"tokens": np.asarray(row, dtype=np.uint16)})


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Real text as bytes (vocab 256 + EOS 256), packed into 65-token sequences, as MDS."""
    text = (REPO / "sample" / "text" / "hq" / "wikipedia.txt").read_text(encoding="utf-8")
    stream: list[int] = []
    for para in text.split("\n"):
        if para.strip():
            stream += list(para.encode("utf-8")) + [256]
    out = tmp_path_factory.mktemp("mds")
    write_mds(out, [stream[i:i + SEQ + 1] for i in range(0, 600 * (SEQ + 1), SEQ + 1)])
    return out


def world_env(monkeypatch) -> None:
    """The environment of rank 0 of a world of one on a free port (undone after the test), so that
    ``training.distributed.setup`` in this process leaves ``os.environ`` as it was."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def world(monkeypatch):
    """A gloo process group of one in this process, for FSDP2 outside a training run."""
    import torch.distributed as dist

    from training import distributed

    world_env(monkeypatch)
    w = distributed.setup()
    yield w
    dist.destroy_process_group()
