"""bench.py runs every measurement at tiny sizes and prints every row."""

import json
import subprocess
import sys

from conftest import PROJECT_DIR

ROWS = [
    "compile all kernels, empty cache",
    "training, numba, 1 thread",
    "training, NumPy reference, 1 thread",
    "training, PyTorch batch 1, 1 thread",
    "inference, numba, all cores",
    "inference, PyTorch batched, all cores",
    "train.py, whole run (*): wall time",
    "train.py, whole run (*): peak resident memory",
    "predict.py --index 0, warm cache: wall time",
]


def test_quick_bench_prints_every_row(mnist_dir, tmp_path):
    figures_path = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "bench.py"), "--quick", "--data-dir", str(mnist_dir),
         "--json", str(figures_path)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for row in ROWS:
        assert f"| {row}" in result.stdout, row
    figures = json.loads(figures_path.read_text())
    assert figures["train_numba"] > 0
    assert figures["infer_numba"] > 0
    assert 0 < figures["full_run_peak_mb"] < 10_000
    assert figures["predict_seconds"] > 0
