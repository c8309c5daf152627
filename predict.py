"""Show the trained network's prediction for one MNIST test image.

    python predict.py --index 0

It loads pesos.json and the test set, prints the ten outputs, the predicted digit and the expected
label, and draws the image as text.
"""

import os
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import mnist_io
import weights
from errors import ArgumentParser, UserError, integer, run_main
from i18n import _, number

DEFAULT_WEIGHTS = "pesos.json"
# Shades from blank to full ink for drawing a digit as text, two characters per pixel so that the
# drawing keeps roughly the image's aspect ratio in a terminal.
SHADES = " .:-=+*#%@"
BAR_WIDTH = 30
# Up to this many images, predict() runs NumPy instead of the compiled kernels (see forward_numpy).
NUMPY_MAX_IMAGES = 16


def predict(params, pool, images):
    """Return the network's outputs (N, 10), float32, for images (N, 28, 28), uint8."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if len(images) <= NUMPY_MAX_IMAGES:
        return forward_numpy(images, params, pool)
    import kernels  # here, so that a few images never pay for importing numba

    outputs = np.empty((len(images), params[2].shape[0]), dtype=weights.DTYPE)
    n_chunks = min(len(images), 4 * (os.cpu_count() or 1))
    kernels.predict_images(images, params, pool, outputs, n_chunks)
    return outputs


def forward_numpy(images, params, pool):
    """Return the network's outputs (N, 10) for images (N, H, W), uint8, computed with NumPy.

    The same computation as kernels.forward_pass, for a few images at a time: importing numba and
    loading the compiled kernels takes about a second, while this takes under a millisecond per
    image (0.5 to 0.7 ms measured on a 2-core x86_64 machine).
    The results agree with the kernels' to about 1e-6 (the sums run in another order).
    """
    filters, conv_biases, fc_weights, fc_biases = params
    scaled = images.astype(weights.DTYPE) / weights.DTYPE(mnist_io.PIXEL_MAX)
    size = filters.shape[1]
    windows = sliding_window_view(scaled, (size, size), axis=(1, 2))  # (N, Ho, Wo, K, K)
    conv = np.einsum("nijuv,fuv->nfij", windows, filters) + conv_biases[:, None, None]
    n_images, n_filters, height, width = conv.shape
    rows, columns = height // pool, width // pool
    # (N, F, Ho, Wo) -> (N, F, Hp, P, Wp, P), then the maximum over each P x P window.
    blocks = conv[:, :, :rows * pool, :columns * pool].reshape(
        n_images, n_filters, rows, pool, columns, pool)
    pooled = sigmoid_numpy(blocks.max(axis=(3, 5))).reshape(n_images, -1)
    with np.errstate(over="ignore", invalid="ignore"):  # huge weights: sigmoid(inf) is 1
        return sigmoid_numpy(pooled @ fc_weights.T + fc_biases)


def sigmoid_numpy(x):
    """Return 1 / (1 + e**-x), written as (1 + tanh(x / 2)) / 2, which cannot overflow."""
    return (1 + np.tanh(x / 2)) / 2


def evaluate(outputs, labels):
    """Return (mse, correct) for outputs (N, 10) against labels (N,).

    mse is the mean over samples of sum((output - one_hot)**2) / 10, the figure the original program
    prints. correct counts the samples whose largest output is at the label.
    """
    targets = np.eye(outputs.shape[1], dtype=np.float64)[labels]
    errors = outputs.astype(np.float64) - targets
    mse = float(np.mean(np.mean(errors**2, axis=1))) if len(labels) else 0.0
    correct = int(np.sum(np.argmax(outputs, axis=1) == labels))
    return mse, correct


def render_digit(image):
    """Return image (28, 28), uint8, drawn as lines of text."""
    levels = (image.astype(np.int32) * len(SHADES)) // 256
    return "\n".join("".join(SHADES[level] * 2 for level in row) for row in levels)


def format_prediction(output, label=None):
    """Return the text that shows the outputs (10,) of one image, its predicted digit and label."""
    digit = int(np.argmax(output))
    lines = []
    for k, value in enumerate(output):
        bar = "#" * int(round(float(value) * BAR_WIDTH))
        marker = _("  <- predicted") if k == digit else ""
        lines.append(f"  {k}  {number(value, 4)}  {bar}{marker}")
    lines.append(_("predicted digit: {digit} (output {value})").format(
        digit=digit, value=number(output[digit], 4)))
    if label is not None:
        verdict = _("correct") if digit == label else _("wrong")
        lines.append(_("expected label:  {label} ({verdict})").format(label=label,
                                                                      verdict=verdict))
    return "\n".join(lines)


def show_test_image(params, pool, data_dir, index):
    """Print the drawing, outputs, prediction and label of test image index."""
    images, labels = mnist_io.load_split(data_dir, "test")
    if not -len(images) <= index < len(images):
        raise UserError(_("--index {index} is out of range: the test set has {count} images "
                          "(0 to {last}; negative values count from the end)").format(
                              index=index, count=len(images), last=len(images) - 1))
    index %= len(images)
    output = predict(params, pool, images[index:index + 1])[0]
    print(_("test image {index}:").format(index=index))
    print(render_digit(images[index]))
    print(format_prediction(output, int(labels[index])))


def build_parser():
    parser = ArgumentParser(
        description=_("Show the trained network's prediction for one MNIST test image."))
    parser.add_argument("--index", type=integer, default=0, metavar="N",
                        help=_("which test image, from 0 (negative values count from the end)"))
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, metavar=_("FILE"),
                        help=_("the weights file written by train.py"))
    mnist_io.add_data_arguments(parser)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not os.path.exists(args.weights):
        raise UserError(_("{path} not found: train the network first with 'python train.py', "
                          "or name another file with --weights").format(path=args.weights))
    params, pool = weights.load(args.weights)[:2]
    data_dir = mnist_io.resolve_data_dir(args.data_dir)
    mnist_io.ensure_files(data_dir, mnist_io.SPLITS["test"], offline=args.offline)
    show_test_image(params, pool, data_dir, args.index)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
