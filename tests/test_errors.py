"""Bad input: one clear error line on stderr, exit status 2, and nothing written."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_stage(tmp_path: Path, command: list[str], overrides: dict) -> subprocess.CompletedProcess:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update(overrides)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, "-m", *command], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize("command, overrides, expected", [
    (["stages.prepare"], {"data": {"source": "semeval", "seed": 0}},
     "`data.source` is 'semeval'; choose one of synthetic"),
    (["stages.unlearn"], {"layers": 24}, "`layers` is 24, not a list of three integers"),
    (["stages.unlearn"], {"layers": [24, 26, 27]}, "are not three consecutive"),
    (["stages.unlearn"], {"alpha": -1}, "`alpha` must be >= 0, got -1"),
    (["stages.unlearn"], {}, "models/target: no Hugging Face model here (config.json missing)"),
    (["stages.evaluate", "--model", "unlearned"], {}, "data/prepared/forget_train.jsonl: file not found"),
])
def test_bad_input_is_refused_with_one_line(tmp_path, command, overrides, expected):
    result = run_stage(tmp_path, command, overrides)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
