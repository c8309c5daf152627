"""Show the trained network's prediction for one MNIST test image.

    python predict.py --index 0

It loads pesos.json and the test set, prints the ten outputs, the predicted digit and the expected
label, and draws the image as text.
"""

import os
import sys
from pathlib import Path

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


def confusion_matrix(predicted, labels, n_classes):
    """Return the (n_classes, n_classes) counts of each true label (row) and prediction (column)."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def format_evaluation(outputs, labels):
    """Return the text of an evaluation: accuracy and MSE, per-digit precision and recall, and the
    confusion matrix as an aligned table."""
    n_classes = outputs.shape[1]
    mse, correct = evaluate(outputs, labels)
    total = len(labels)
    matrix = confusion_matrix(np.argmax(outputs, axis=1), labels, n_classes)
    lines = [_("accuracy on {total} test images: {correct}/{total} ({percent}%), test MSE {mse}")
             .format(total=total, correct=correct, percent=number(100.0 * correct / total, 2),
                     mse=number(mse, 6)),
             "",
             _("digit  precision  recall  images")]
    for digit in range(n_classes):
        predicted_as = matrix[:, digit].sum()
        actual = matrix[digit].sum()
        precision = 100.0 * matrix[digit, digit] / predicted_as if predicted_as else 0.0
        recall = 100.0 * matrix[digit, digit] / actual if actual else 0.0
        lines.append(f"  {digit}    {number(precision, 2):>7}%  {number(recall, 2):>6}%  "
                     f"{actual:>6}")
    lines += ["", _("confusion matrix (rows: true digit, columns: predicted digit)"),
              "     " + "".join(f"{digit:>6}" for digit in range(n_classes))]
    for digit in range(n_classes):
        lines.append(f"  {digit}  " + "".join(f"{count:>6}" for count in matrix[digit]))
    return "\n".join(lines)


def format_errors(images, labels, outputs, count):
    """Return the first count misclassified images drawn as text, each with its labels."""
    predicted = np.argmax(outputs, axis=1)
    wrong = np.flatnonzero(predicted != labels)[:count]
    blocks = []
    for index in wrong:
        blocks.append(_("test image {index}: true digit {label}, predicted {digit}").format(
            index=index, label=labels[index], digit=predicted[index]))
        blocks.append(render_digit(images[index]))
    if not len(wrong):
        blocks.append(_("no misclassified test images"))
    return "\n".join(blocks)


def format_history(extra):
    """Return how the weights were made, from the training record in the weights file's extra
    keys: the settings and one line per epoch. Returns "" when the file has no record."""
    training = extra.get("training")
    history = weights.training_history(extra)
    if not isinstance(training, dict) or not history:
        return ""
    lines = [_("these weights were trained for {epochs} epochs on {images} images, learning "
               "rate {lr}, seed {seed}, preset {preset}:").format(
                   epochs=len(history), images=training.get("train_size", "?"),
                   lr=number(training.get("lr", "?")), seed=training.get("seed", "?"),
                   preset=training.get("preset", "?"))]
    for entry in history:
        total = entry.get("total") or 1
        lines.append(_("  epoch {epoch:>2}  test MSE {mse}  accuracy {correct}/{total} "
                       "({percent}%)").format(
                           epoch=entry.get("epoch", "?"), mse=number(entry.get("test_mse", 0), 6),
                           correct=entry.get("correct", 0), total=total,
                           percent=number(100.0 * entry.get("correct", 0) / total, 2)))
    return "\n".join(lines)


def evaluate_test_set(params, pool, extra, data_dir, show_errors, plot):
    """Print how the weights were made, the evaluation of the whole test set, and the first
    show_errors mistakes; write the figure to plot when it is given."""
    history_text = format_history(extra)
    if history_text:
        print(history_text)
        print()
    images, labels = mnist_io.load_split(data_dir, "test")
    outputs = predict(params, pool, images)
    print(format_evaluation(outputs, labels))
    if show_errors:
        print()
        print(format_errors(images, labels, outputs, show_errors))
    if plot:
        import plots

        plots.write_figure(plot, weights.training_history(extra), outputs, labels, images,
                           params[0])
        print(_("wrote the figure to {path}").format(path=plot))


def show_image_files(params, pool, paths, save_input):
    """Print, for each image file in paths, the input it became, the outputs and the prediction;
    write the inputs to save_input when it is given."""
    import digit_image  # here, so that only --image needs Pillow

    digits = [digit_image.load_digit(path) for path in paths]  # all checked before any output
    for number_in_list, (path, digit) in enumerate(zip(paths, digits), start=1):
        if save_input:
            target = Path(save_input)
            if len(paths) > 1:
                target = target.with_name(f"{target.stem}-{number_in_list}{target.suffix}")
            digit_image.save_digit(digit, target)
            print(_("wrote the input to {path}").format(path=target))
        output = predict(params, pool, digit[None])[0]
        print(_("{path}, as the network sees it:").format(path=path))
        print(render_digit(digit))
        print(format_prediction(output))
        if number_in_list < len(paths):
            print()


def build_parser():
    parser = ArgumentParser(
        description=_("Show the trained network's prediction for one MNIST test image, or "
                      "evaluate it on the whole test set."))
    parser.add_argument("--index", type=integer, default=0, metavar="N",
                        help=_("which test image, from 0 (negative values count from the end)"))
    parser.add_argument("--image", nargs="+", metavar=_("FILE"),
                        help=_("predict the digit drawn or photographed in each image file "
                               "(PNG, JPEG, BMP, PGM) instead of a test image"))
    parser.add_argument("--save-input", metavar=_("FILE"),
                        help=_("with --image, write the 28x28 input the network saw to FILE "
                               "(with several images, FILE gets a number before its suffix)"))
    parser.add_argument("--evaluate", action="store_true",
                        help=_("evaluate on the whole test set: accuracy, precision and recall "
                               "of each digit, confusion matrix"))
    parser.add_argument("--plot", metavar=_("FILE"),
                        help=_("with --evaluate, write a PNG figure to FILE: learning curves, "
                               "confusion matrix, filters and mistakes (needs matplotlib)"))
    parser.add_argument("--show-errors", type=integer, default=0, metavar="N",
                        help=_("with --evaluate, also draw the first N misclassified test "
                               "images"))
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, metavar=_("FILE"),
                        help=_("the weights file written by train.py"))
    mnist_io.add_data_arguments(parser)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not os.path.exists(args.weights):
        raise UserError(_("{path} not found: train the network first with 'python train.py', "
                          "or name another file with --weights").format(path=args.weights))
    if args.show_errors < 0:
        raise UserError(_("--show-errors must be at least 0, got {value}").format(
            value=args.show_errors))
    if args.show_errors and not args.evaluate:
        raise UserError(_("--show-errors goes with --evaluate"))
    if args.save_input and not args.image:
        raise UserError(_("--save-input goes with --image"))
    if args.image and args.evaluate:
        raise UserError(_("--image and --evaluate exclude each other"))
    if args.plot and not args.evaluate:
        raise UserError(_("--plot goes with --evaluate"))
    if args.plot:
        import plots

        plots.import_pyplot()  # fail before the evaluation when matplotlib is missing
    params, pool, extra = weights.load(args.weights)
    if args.image:
        show_image_files(params, pool, args.image, args.save_input)
        return 0
    data_dir = mnist_io.resolve_data_dir(args.data_dir)
    mnist_io.ensure_files(data_dir, mnist_io.SPLITS["test"], offline=args.offline)
    if args.evaluate:
        evaluate_test_set(params, pool, extra, data_dir, args.show_errors, args.plot)
    else:
        show_test_image(params, pool, data_dir, args.index)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
