"""The user-facing `spark-submit jobs/ingest.py` path: Delta comes from the spark-defaults.conf that
`make setup` writes into the venv's pyspark (no --packages flags)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.spark


def test_spark_submit_ingest(tmp_path, warc_dir):
    bindir = Path(sys.executable).parent
    submit = bindir / "spark-submit"
    if not submit.exists():
        pytest.fail(f"{submit} missing: pyspark should install it into the venv")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    proc = subprocess.run(
        [str(submit), str(REPO / "jobs" / "ingest.py"), "--input",
         str(warc_dir / "whirlwind-cc-2024-22" / "whirlwind.warc.wet.gz"), "--lake", str(tmp_path / "lake")],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "documents  1" in proc.stdout
    assert (tmp_path / "lake" / "documents" / "_delta_log").is_dir()
