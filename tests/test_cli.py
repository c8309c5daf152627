"""train.py and predict.py run as a user runs them, on real MNIST."""

import json
import subprocess
import sys

import pytest

from conftest import PROJECT_DIR


def run(script, *args, cwd=None):
    return subprocess.run([sys.executable, str(PROJECT_DIR / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    """A pesos.json trained for one epoch on 5000 images, and the output of that run."""
    path = tmp_path_factory.mktemp("trained") / "pesos.json"
    result = run("train.py", "--epochs", "1", "--train-size", "5000", "--test-size", "1000",
                 "--weights", str(path), "--data-dir", str(mnist_dir))
    return path, result


def test_train_writes_weights_and_epoch_line(trained):
    path, result = trained
    assert result.returncode == 0, result.stderr
    assert "epoch  1/1  test MSE" in result.stdout
    assert "/1000 (" in result.stdout
    assert f"saved the weights to {path}" in result.stdout
    assert "expected label:  7" in result.stdout
    history = json.loads(path.read_text())["training"]["history"]
    assert len(history) == 1
    assert history[0]["correct"] > 800


def test_second_run_skips_training(trained, mnist_dir):
    path, _ = trained
    before = path.read_bytes()
    result = run("train.py", "--weights", str(path), "--data-dir", str(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert "skipped training" in result.stdout
    assert "--retrain" in result.stdout
    assert "epoch" not in result.stdout
    assert "predicted digit: 7" in result.stdout
    assert path.read_bytes() == before


def test_predict_index_zero_shows_seven(trained, mnist_dir):
    path, _ = trained
    result = run("predict.py", "--index", "0", "--weights", str(path), "--data-dir",
                 str(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert "predicted digit: 7" in result.stdout
    assert "expected label:  7 (correct)" in result.stdout
    assert "@@" in result.stdout  # the digit drawn as text


def test_predict_index_out_of_range(trained, mnist_dir):
    path, _ = trained
    result = run("predict.py", "--index", "10000", "--weights", str(path), "--data-dir",
                 str(mnist_dir))
    assert result.returncode == 2
    assert result.stderr.startswith("error: --index 10000 is out of range")
    assert len(result.stderr.splitlines()) == 1


def test_predict_without_weights(tmp_path, mnist_dir):
    result = run("predict.py", "--weights", str(tmp_path / "pesos.json"), "--data-dir",
                 str(mnist_dir))
    assert result.returncode == 2
    assert "not found" in result.stderr
    assert "python train.py" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_retrain_replaces_weights(trained, mnist_dir, tmp_path):
    path = tmp_path / "pesos.json"
    path.write_bytes(trained[0].read_bytes())
    result = run("train.py", "--retrain", "--epochs", "1", "--train-size", "1000",
                 "--test-size", "100", "--weights", str(path), "--data-dir", str(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert json.loads(path.read_text())["training"]["train_size"] == 1000


def test_same_seed_gives_same_weights(mnist_dir, tmp_path):
    texts = []
    for name in ("a.json", "b.json"):
        result = run("train.py", "--epochs", "2", "--train-size", "500", "--test-size", "100",
                     "--weights", str(tmp_path / name), "--data-dir", str(mnist_dir))
        assert result.returncode == 0, result.stderr
        document = json.loads((tmp_path / name).read_text())
        texts.append(json.dumps({key: document[key] for key in ("conv_filters", "fc_weights")}))
    assert texts[0] == texts[1]


def test_original_preset_prints_ten_epochs(mnist_dir, tmp_path):
    path = tmp_path / "pesos.json"
    result = run("train.py", "--preset", "original", "--weights", str(path), "--data-dir",
                 str(mnist_dir))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 10
    assert all("/200 (" in line for line in lines)
    assert "training on 1000 images, testing on 200" in result.stdout
    record = json.loads(path.read_text())["training"]
    assert record["lr"] == 0.01
    assert record["init"] == "uniform"
    assert record["shuffle"] is False


@pytest.mark.parametrize("args, expected", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--lr", "-1"], "--lr must be a positive finite number"),
    (["--lr", "nan"], "--lr must be a positive finite number"),
    (["--train-size", "70000"], "--train-size 70000 is larger than the 60000 training images"),
    (["--filter-size", "20", "--pool", "10"], "leaves nothing"),
])
def test_train_rejects_bad_flags(mnist_dir, tmp_path, args, expected):
    path = tmp_path / "pesos.json"
    result = run("train.py", *args, "--weights", str(path), "--data-dir", str(mnist_dir))
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not path.exists()


def test_train_reports_missing_data(tmp_path):
    result = run("train.py", "--offline", "--data-dir", str(tmp_path / "nothing"), "--weights",
                 str(tmp_path / "pesos.json"))
    assert result.returncode == 2
    assert "MNIST files not found" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_train_reports_missing_weights_folder(mnist_dir, tmp_path):
    result = run("train.py", "--weights", str(tmp_path / "no" / "pesos.json"), "--data-dir",
                 str(mnist_dir))
    assert result.returncode == 2
    assert "does not exist" in result.stderr
