"""Each benchmark script starts as its command line runs it (`python benchmarks/<name>.py`, whose folder then comes
first on sys.path): a module there named like a standard one (a benchmarks/queue.py once did) shadows it for torch
and every script fails at its first import."""
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))


def test_no_benchmark_module_shadows_a_standard_module():
    assert not [path.name for path in SCRIPTS if path.stem in sys.stdlib_module_names]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_the_script_starts(script: Path):
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
