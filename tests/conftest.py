"""Shared fixtures: the ../shared data folder and one local Spark + Delta session per test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    path = Path(os.environ.get("LAKESIFT_SHARED", REPO.parent / "shared"))
    if not (path / "data").is_dir():
        raise RuntimeError(f"shared data not found at {path}; set LAKESIFT_SHARED")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_dir()


@pytest.fixture(scope="session")
def warc_dir(shared) -> Path:
    return shared / "data" / "warc"


@pytest.fixture(scope="session")
def spark():
    from jobs.common.session import get_spark

    session = get_spark("lakesift-tests", {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2",
    })
    yield session
    session.stop()
