"""Bad input from the command line: one line on stderr, a non-zero status, and no file changed."""

import gzip
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import mnist_io
from conftest import PROJECT_DIR


def run(script, *args, **kwargs):
    return subprocess.run([sys.executable, str(PROJECT_DIR / script), *args],
                          capture_output=True, text=True, timeout=600, **kwargs)


def assert_one_line_error(result, status, expected):
    assert result.returncode == status, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def data_copy(tmp_path, mnist_dir):
    """A writable copy of the MNIST folder, for tests that damage a file."""
    folder = tmp_path / "data"
    folder.mkdir()
    for path in mnist_dir.glob("*.gz"):
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


@pytest.mark.parametrize("args, expected", [
    (["--epoch", "3"], "unrecognized arguments: --epoch 3"),
    (["--epochs", "many"], "invalid integer value: 'many'"),
    (["--test-size", "0"], "--test-size must be at least 1"),
    (["--test-size", "20000"], "--test-size 20000 is larger than the 10000 test images"),
    (["--lr", "inf"], "--lr must be a positive finite number"),
    (["--resume", "--retrain"], "--resume and --retrain exclude each other"),
    (["--resume"], "--resume needs an existing weights file"),
    (["--resume", "--filters", "4"], "--filters cannot be used with --resume"),
    (["--pool", "0"], "--pool must be at least 1"),
])
def test_train_flag_errors(tmp_path, mnist_dir, args, expected):
    path = tmp_path / "pesos.json"
    result = run("train.py", *args, "--weights", str(path), "--data-dir", str(mnist_dir))
    assert_one_line_error(result, 2, expected)
    assert not path.exists()


@pytest.mark.parametrize("index", ["10000", "-10001"])
def test_predict_index_errors(tmp_path, mnist_dir, index):
    path = tmp_path / "pesos.json"
    assert run("train.py", "--epochs", "1", "--train-size", "100", "--test-size", "10",
               "--weights", str(path), "--data-dir", str(mnist_dir)).returncode == 0
    result = run("predict.py", "--index", index, "--weights", str(path), "--data-dir",
                 str(mnist_dir))
    assert_one_line_error(result, 2, f"--index {index} is out of range")


def test_predict_negative_index_counts_from_end(tmp_path, mnist_dir):
    path = tmp_path / "pesos.json"
    assert run("train.py", "--epochs", "1", "--train-size", "100", "--test-size", "10",
               "--weights", str(path), "--data-dir", str(mnist_dir)).returncode == 0
    result = run("predict.py", "--index", "-1", "--weights", str(path), "--data-dir",
                 str(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert "test image 9999:" in result.stdout


def test_weights_file_unchanged_after_bad_load(tmp_path, mnist_dir):
    path = tmp_path / "pesos.json"
    path.write_text('{"conv_filters": {"v": 1, "dim": [8, 1, 3')
    for script in ("train.py", "predict.py"):
        result = run(script, "--weights", str(path), "--data-dir", str(mnist_dir))
        assert_one_line_error(result, 2, "not valid JSON")
        assert path.read_text() == '{"conv_filters": {"v": 1, "dim": [8, 1, 3'


def test_weights_folder_is_a_file(tmp_path, mnist_dir):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("train.py", "--weights", str(blocker / "pesos.json"), "--data-dir",
                 str(mnist_dir))
    assert_one_line_error(result, 2, "does not exist")


def test_weights_path_is_a_folder(tmp_path, mnist_dir):
    result = run("train.py", "--retrain", "--weights", str(tmp_path), "--data-dir",
                 str(mnist_dir))
    assert_one_line_error(result, 2, "it is a folder")


@pytest.mark.parametrize("damage, expected", [
    (lambda data: data[: len(data) // 2], "cannot read"),
    (lambda data: b"<html>404 Not Found</html>", "not a gzip file"),
    (lambda data: gzip.compress(gzip.decompress(data)[:-5]), "but the file has"),
    (lambda data: gzip.compress(b"\x00\x00\x09\x01" + gzip.decompress(data)[4:]),
     "unsupported IDX type code 0x09"),
])
def test_damaged_data_file(tmp_path, data_copy, damage, expected):
    target = data_copy / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(damage(target.read_bytes()))
    before = {path.name: path.read_bytes() for path in data_copy.iterdir()}
    result = run("train.py", "--offline", "--weights", str(tmp_path / "pesos.json"),
                 "--data-dir", str(data_copy))
    assert_one_line_error(result, 2, expected)
    assert "t10k-labels-idx1-ubyte.gz" in result.stderr
    assert {path.name: path.read_bytes() for path in data_copy.iterdir()} == before
    assert not (tmp_path / "pesos.json").exists()


def test_non_finite_weights_stop_training(mnist_dir):
    # The sigmoid cannot overflow, so no learning rate makes the weights infinite: a huge one
    # saturates every sigmoid instead. A NaN that got in some other way must still stop training.
    import numpy as np

    import train
    import weights
    from errors import UserError

    images, labels = mnist_io.load_split(mnist_dir, "test")
    params = weights.init_params(8, 3, 2, np.random.default_rng(0))
    params[3][4] = np.nan
    settings = dict(train.PRESETS["default"], epochs=3)
    with pytest.raises(UserError) as caught:
        train.train(params, 2, (images[:200], labels[:200]), (images[:50], labels[:50]),
                    settings, np.random.default_rng(0))
    assert "training diverged in epoch 1" in str(caught.value)
    assert "smaller --lr" in str(caught.value)
    assert caught.value.exit_status == 1


def test_huge_learning_rate_gets_saturation_note(tmp_path, mnist_dir):
    path = tmp_path / "pesos.json"
    result = run("train.py", "--lr", "1e6", "--epochs", "1", "--train-size", "1000",
                 "--test-size", "500", "--weights", str(path), "--data-dir", str(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert "note: the accuracy is at chance level" in result.stderr


def test_learning_rate_beyond_float32_rejected(tmp_path, mnist_dir):
    result = run("train.py", "--lr", "1e39", "--weights", str(tmp_path / "pesos.json"),
                 "--data-dir", str(mnist_dir))
    assert_one_line_error(result, 2, "no larger than 3.4e+38")


def test_ctrl_c_stops_promptly_and_keeps_weights(tmp_path, mnist_dir):
    path = tmp_path / "pesos.json"
    path.write_text("old weights")
    child = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "train.py"), "--retrain", "--epochs", "50",
         "--weights", str(path), "--data-dir", str(mnist_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait for the first epoch line, so that the signal lands in the middle of training.
    assert child.stdout.readline().startswith("training on")
    assert child.stdout.readline().startswith("epoch  1/50")
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert time.monotonic() - sent < 2.0
    assert child.returncode == 130
    assert "error: interrupted in epoch " in stderr
    assert "nothing was saved" in stderr
    assert "Traceback" not in stderr
    assert path.read_text() == "old weights"


def test_resume_continues_history(tmp_path, mnist_dir):
    path = tmp_path / "pesos.json"
    common = ["--train-size", "500", "--test-size", "100", "--weights", str(path),
              "--data-dir", str(mnist_dir)]
    assert run("train.py", "--epochs", "2", *common).returncode == 0
    result = run("train.py", "--resume", "--epochs", "1", *common)
    assert result.returncode == 0, result.stderr
    assert "resuming after epoch 2" in result.stdout
    assert "epoch  3/3" in result.stdout
    import json

    record = json.loads(path.read_text())["training"]
    assert [entry["epoch"] for entry in record["history"]] == [1, 2, 3]
    assert record["epochs"] == 3


def test_weights_with_huge_integers(tmp_path, mnist_dir):
    import json

    import numpy as np

    import weights

    document = json.loads(weights.format_weights(
        weights.init_params(8, 3, 2, np.random.default_rng(0))))
    for digits, expected in ((401, "not a finite float32 number"), (5001, "not a valid")):
        path = tmp_path / "pesos.json"
        document["conv_biases"]["data"][0] = 0  # replaced below by the long literal
        text = json.dumps(document).replace('"data": [0,', '"data": [' + "9" * digits + ",", 1)
        path.write_text(text)
        result = run("predict.py", "--weights", str(path), "--data-dir", str(mnist_dir))
        assert_one_line_error(result, 2, expected)
        assert path.read_text() == text


def test_weights_path_is_a_folder_when_loading(tmp_path, mnist_dir):
    result = run("predict.py", "--weights", str(tmp_path), "--data-dir", str(mnist_dir))
    assert_one_line_error(result, 2, "is a folder, not a weights file")


def test_data_dir_is_a_file(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("x")
    result = run("train.py", "--data-dir", str(blocker), "--weights", str(tmp_path / "p.json"))
    assert_one_line_error(result, 2, "is a file, not a folder")


def test_download_command_offline_error(tmp_path):
    result = run("mnist_io.py", "download", "--offline", "--data-dir", str(tmp_path / "none"))
    assert_one_line_error(result, 2, "MNIST files not found")
    assert not (tmp_path / "none").exists()


SAVE_LOOP = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import weights
first = weights.init_params(8, 3, 2, np.random.default_rng(0))
second = weights.init_params(8, 3, 2, np.random.default_rng(1))
print("ready", flush=True)
while True:
    weights.save(sys.argv[2], first)
    weights.save(sys.argv[2], second)
"""


def test_kill_during_save_leaves_a_whole_file(tmp_path):
    import numpy as np

    import weights

    path = tmp_path / "pesos.json"
    expected = [weights.init_params(8, 3, 2, np.random.default_rng(seed)) for seed in (0, 1)]
    randomness = random.Random(0)
    for _ in range(20):
        child = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(PROJECT_DIR), str(path)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "ready\n"
        time.sleep(randomness.uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if not path.exists():
            continue  # killed before the first save finished: nothing was there, nothing is
        params, _, _ = weights.load(path)
        assert any(all(np.array_equal(a, b) for a, b in zip(params, candidate))
                   for candidate in expected)
    assert path.exists()
