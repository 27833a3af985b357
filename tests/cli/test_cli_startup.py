"""The command line starts fast: building every command (what ``talbench --help`` does) imports
no numpy, torch, pandas, scipy, matplotlib or h5py, and ``talbench evaluate`` none but numpy.
Times themselves are measured by ``experiments/bench_startup.py``; this guards the imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "torch", "pandas", "scipy", "matplotlib", "h5py")

PROBE = """
import json, sys
args, watched = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
sys.argv = ["talbench", *args]
from tal_bench.cli import main
code = None
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & watched)
print("HEAVY=" + json.dumps({"code": code, "modules": heavy}))
"""


def _heavy_after(args: list[str]) -> dict:
    """Run ``talbench ARGS`` in a fresh interpreter; the heavy modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "COLUMNS": "80"},
        timeout=120,
        check=False,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("HEAVY="))
    return json.loads(line.removeprefix("HEAVY="))


def test_help_imports_nothing_heavy():
    assert _heavy_after(["--help"]) == {"code": 0, "modules": []}


def test_evaluate_imports_numpy_only(tmp_path):
    gt = {
        "database": {
            "v": {"subset": "test", "duration": 10.0, "annotations": [
                {"label": "A", "segment": [1.0, 3.0]}, {"label": "B", "segment": [5.0, 6.0]}
            ]},
        }
    }  # fmt: skip
    pred = {"results": {"v": [{"label": "A", "score": 0.9, "segment": [1.0, 3.0]}]}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    args = ["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]
    assert _heavy_after(args) == {"code": 0, "modules": ["numpy"]}
