"""Users' own images of digits, and the evaluation on the whole test set."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

import digit_image
import kernels
import mnist_io
import predict
import weights
from conftest import PROJECT_DIR
from errors import UserError

ROUND_TRIP_IMAGES = 300


@pytest.fixture(scope="module")
def trained(mnist_dir):
    """Parameters trained for one epoch on 20000 real images: about 96% accurate."""
    images, labels = mnist_io.load_split(mnist_dir, "train")
    params = weights.init_params(8, 3, 2, np.random.default_rng(0))
    work = kernels.allocate_workspace(params, 2, 28, 28)
    kernels.train_samples(images, labels, np.random.default_rng(1).permutation(20000), params, 2,
                          0.1, work)
    return params


def as_user_photo(digit, rng):
    """Return digit (28x28 MNIST) as a user would hand it over: scaled up to a few hundred pixels,
    dark ink on light paper, off-centre, with a margin."""
    side = int(rng.integers(150, 300))
    ink = Image.fromarray(255 - digit).resize((side, side), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (side + int(rng.integers(60, 200)), side + int(rng.integers(60, 200))),
                       255)
    canvas.paste(ink, (int(rng.integers(0, canvas.width - side + 1)),
                       int(rng.integers(0, canvas.height - side + 1))))
    return canvas


def test_round_trip_through_png(tmp_path, mnist_dir, trained):
    images, _labels = mnist_io.load_split(mnist_dir, "test")
    images = images[:ROUND_TRIP_IMAGES]
    rng = np.random.default_rng(2)
    converted = []
    for number, digit in enumerate(images):
        path = tmp_path / f"digit-{number}.png"
        as_user_photo(digit, rng).save(path)
        converted.append(digit_image.load_digit(path))
    original = np.argmax(predict.predict(trained, 2, images), axis=1)
    again = np.argmax(predict.predict(trained, 2, np.array(converted)), axis=1)
    agreement = np.mean(original == again)
    print(f"{agreement:.1%} of the predictions agree")
    assert agreement >= 0.95, f"only {agreement:.1%} of the predictions agree"


@pytest.mark.parametrize("digit, strokes", [
    (7, [[(250, 60), (330, 60), (280, 250)]]),
    (1, [[(90, 50), (90, 330)]]),
])
def test_paint_drawing_recognised(tmp_path, trained, digit, strokes):
    canvas = Image.new("RGB", (420, 360), "white")
    draw = ImageDraw.Draw(canvas)
    for stroke in strokes:
        draw.line(stroke, fill=(20, 20, 20), width=20)
    path = tmp_path / "drawing.png"
    canvas.save(path)
    output = predict.predict(trained, 2, digit_image.load_digit(path)[None])[0]
    assert np.argmax(output) == digit


def test_processed_digit_is_centred():
    canvas = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(canvas).rectangle((200, 20, 240, 180), fill=0)
    digit = digit_image.to_mnist(canvas)
    assert digit.shape == (28, 28)
    assert digit.max() == 255
    rows, columns = np.nonzero(digit)
    assert rows.max() - rows.min() + 1 == 20  # the longer side scaled to 20 pixels
    weights_ = digit.astype(float)
    centre = (np.arange(28) @ weights_.sum(axis=1) / weights_.sum(),
              np.arange(28) @ weights_.sum(axis=0) / weights_.sum())
    assert abs(centre[0] - digit_image.CENTRE) <= 0.5
    assert abs(centre[1] - digit_image.CENTRE) <= 0.5


def test_blank_image_rejected():
    with pytest.raises(UserError, match="no digit found"):
        digit_image.to_mnist(Image.new("L", (50, 50), 255))


def test_otsu_threshold_splits_two_levels():
    pixels = np.array([10] * 50 + [200] * 50, dtype=np.uint8)
    assert 10 <= digit_image.otsu_threshold(pixels) < 200


def test_evaluation_of_hand_made_case():
    # Three classes; labels 0 0 1 2, predictions 0 1 1 2.
    outputs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0]])
    labels = np.array([0, 0, 1, 2])
    matrix = predict.confusion_matrix(np.argmax(outputs, axis=1), labels, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    text = predict.format_evaluation(outputs, labels)
    assert "3/4 (75.00%)" in text
    lines = text.splitlines()
    digit_0 = next(line for line in lines if line.startswith("  0 ") and "%" in line)
    digit_1 = next(line for line in lines if line.startswith("  1 ") and "%" in line)
    assert re.search(r"100\.00%\s+50\.00%\s+2$", digit_0)  # precision 1/1, recall 1/2
    assert re.search(r"50\.00%\s+100\.00%\s+1$", digit_1)  # precision 1/2, recall 1/1


def run(*args):
    return subprocess.run([sys.executable, str(PROJECT_DIR / "predict.py"), *args],
                          capture_output=True, text=True, timeout=600)


def test_evaluate_matches_training_line(tmp_path, mnist_dir):
    path = tmp_path / "pesos.json"
    trained_run = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "train.py"), "--epochs", "1", "--train-size", "3000",
         "--weights", str(path), "--data-dir", str(mnist_dir)],
        capture_output=True, text=True, timeout=600)
    assert trained_run.returncode == 0, trained_run.stderr
    epoch_line = re.search(r"test MSE (\S+)  accuracy (\d+)/10000", trained_run.stdout)
    result = run("--evaluate", "--show-errors", "2", "--weights", str(path), "--data-dir",
                 str(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert (f"accuracy on 10000 test images: {epoch_line.group(2)}/10000" in result.stdout)
    assert f"test MSE {epoch_line.group(1)}" in result.stdout
    assert "confusion matrix (rows: true digit, columns: predicted digit)" in result.stdout
    assert len(re.findall(r"test image \d+: true digit \d, predicted \d", result.stdout)) == 2
    history = json.loads(path.read_text())["training"]["history"]
    assert history[0]["correct"] == int(epoch_line.group(2))


def test_image_option_end_to_end(tmp_path, mnist_dir):
    path = tmp_path / "pesos.json"
    assert subprocess.run(
        [sys.executable, str(PROJECT_DIR / "train.py"), "--epochs", "1", "--train-size", "3000",
         "--weights", str(path), "--data-dir", str(mnist_dir)],
        capture_output=True, timeout=600).returncode == 0
    canvas = Image.new("RGB", (300, 400), "white")
    ImageDraw.Draw(canvas).line([(90, 50), (90, 330)], fill=(30, 30, 30), width=22)
    canvas.save(tmp_path / "one.jpg")
    result = run("--image", str(tmp_path / "one.jpg"), str(tmp_path / "one.jpg"), "--save-input",
                 str(tmp_path / "seen.png"), "--weights", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("predicted digit: 1") == 2
    for number in (1, 2):
        saved = np.asarray(Image.open(tmp_path / f"seen-{number}.png"))
        assert saved.shape == (28, 28)


@pytest.mark.parametrize("content, expected", [
    (b"not an image", "not an image that Pillow can read"),
    (None, "no digit found"),
])
def test_image_option_errors(tmp_path, mnist_dir, content, expected):
    path = tmp_path / "pesos.json"
    weights.save(path, weights.init_params(8, 3, 2, np.random.default_rng(0)))
    image_path = tmp_path / "digit.png"
    if content is None:
        Image.new("L", (40, 40), 255).save(image_path)
    else:
        image_path.write_bytes(content)
    result = run("--image", str(image_path), "--weights", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert str(image_path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_plot_writes_png(tmp_path, mnist_dir):
    pytest.importorskip("matplotlib", reason="matplotlib is optional; CI installs it")
    path = tmp_path / "pesos.json"
    figure = tmp_path / "figure.png"
    trained_run = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "train.py"), "--epochs", "2", "--train-size", "2000",
         "--test-size", "500", "--weights", str(path), "--data-dir", str(mnist_dir),
         "--plot", str(figure)],
        capture_output=True, text=True, timeout=600)
    assert trained_run.returncode == 0, trained_run.stderr
    with Image.open(figure) as image:
        assert image.format == "PNG"
        assert image.size == (1200, 900)
    figure.unlink()
    result = run("--evaluate", "--plot", str(figure), "--weights", str(path), "--data-dir",
                 str(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert "these weights were trained for 2 epochs on 2000 images" in result.stdout
    with Image.open(figure) as image:
        assert image.size == (1200, 900)


def test_plot_without_matplotlib(tmp_path, mnist_dir, monkeypatch):
    import builtins

    import plots

    real_import = builtins.__import__

    def reject_matplotlib_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", reject_matplotlib_import)
    with pytest.raises(UserError, match="pip install matplotlib"):
        plots.import_pyplot()


@pytest.mark.parametrize("args, expected", [
    (["--show-errors", "3"], "--show-errors goes with --evaluate"),
    (["--plot", "x.png"], "--plot goes with --evaluate"),
    (["--save-input", "x.png"], "--save-input goes with --image"),
    (["--evaluate", "--show-errors", "-1"], "--show-errors must be at least 0"),
])
def test_predict_option_combinations(tmp_path, mnist_dir, args, expected):
    path = tmp_path / "pesos.json"
    weights.save(path, weights.init_params(8, 3, 2, np.random.default_rng(0)))
    result = run(*args, "--weights", str(path), "--data-dir", str(mnist_dir))
    assert result.returncode == 2
    assert expected in result.stderr
