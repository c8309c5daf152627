"""One figure of what the network learned: learning curves, confusion matrix, filters, mistakes.

matplotlib is optional: only --plot needs it, and without it --plot raises UserError saying how to
install it.
"""

import numpy as np

from errors import UserError
from i18n import _

FIGURE_INCHES = (12, 9)
DPI = 100
MISTAKES_SHOWN = 16


def import_pyplot():
    """Return matplotlib.pyplot drawing to files only; raise UserError when it is missing."""
    try:
        import matplotlib
    except ImportError as error:
        raise UserError(_("--plot needs matplotlib: install it with 'pip install matplotlib'"),
                        exit_status=1) from error
    matplotlib.use("Agg")  # no window: the figure goes to a file
    import matplotlib.pyplot as pyplot

    return pyplot


def write_figure(path, history, outputs, labels, images, filters):
    """Write one PNG figure to path with four panels.

    history is the per-epoch list stored in pesos.json (may be empty), outputs (N, 10) the network's
    outputs for the test images (N, 28, 28) with labels (N,), and filters (F, K, K) the learned
    convolution filters.
    """
    pyplot = import_pyplot()
    figure = pyplot.figure(figsize=FIGURE_INCHES, dpi=DPI)
    grid = figure.add_gridspec(2, 2)
    _plot_curves(figure.add_subplot(grid[0, 0]), history)
    _plot_confusion(figure, figure.add_subplot(grid[0, 1]), outputs, labels)
    _plot_filters(figure, grid[1, 0], filters)
    _plot_mistakes(figure, grid[1, 1], outputs, labels, images)
    figure.tight_layout()
    try:
        figure.savefig(path)
    except (OSError, ValueError) as error:
        raise UserError(_("cannot write {path}: {reason}").format(
            path=path, reason=_(getattr(error, "strerror", None) or str(error))),
            exit_status=1) from error
    finally:
        pyplot.close(figure)


def _plot_curves(axes, history):
    from matplotlib.ticker import MaxNLocator

    axes.set_title(_("learning curves"))
    if not history:
        axes.text(0.5, 0.5, _("no training history in the weights file"), ha="center")
        return
    epochs = [entry["epoch"] for entry in history]
    axes.plot(epochs, [entry["test_mse"] for entry in history], "o-", color="tab:red")
    axes.set_xlabel(_("epoch"))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    axes.set_ylabel(_("test MSE"), color="tab:red")
    accuracy = axes.twinx()
    accuracy.plot(epochs, [100.0 * entry["correct"] / entry["total"] for entry in history],
                  "s-", color="tab:blue")
    accuracy.set_ylabel(_("test accuracy (%)"), color="tab:blue")


def _plot_confusion(figure, axes, outputs, labels):
    from predict import confusion_matrix

    matrix = confusion_matrix(np.argmax(outputs, axis=1), labels, outputs.shape[1])
    image = axes.imshow(np.log1p(matrix), cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axes.text(column, row, str(count), ha="center", va="center", fontsize=7)
    axes.set_title(_("confusion matrix"))
    axes.set_xlabel(_("predicted digit"))
    axes.set_ylabel(_("true digit"))
    axes.set_xticks(range(matrix.shape[1]))
    axes.set_yticks(range(matrix.shape[0]))
    figure.colorbar(image, ax=axes, label=_("log(1 + count)"))


def _plot_filters(figure, cell, filters):
    columns = min(len(filters), 4)
    rows = int(np.ceil(len(filters) / columns))
    inner = cell.subgridspec(rows + 1, columns, height_ratios=[0.2] + [1] * rows)
    title = figure.add_subplot(inner[0, :])
    title.axis("off")
    title.set_title(_("convolution filters"))
    limit = float(np.abs(filters).max()) or 1.0
    for number, kernel in enumerate(filters):
        axes = figure.add_subplot(inner[1 + number // columns, number % columns])
        axes.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes.set_xticks([])
        axes.set_yticks([])


def _plot_mistakes(figure, cell, outputs, labels, images):
    predicted = np.argmax(outputs, axis=1)
    wrong = np.flatnonzero(predicted != labels)[:MISTAKES_SHOWN]
    side = 4
    inner = cell.subgridspec(side + 1, side, height_ratios=[0.2] + [1] * side)
    title = figure.add_subplot(inner[0, :])
    title.axis("off")
    title.set_title(_("misclassified test digits (true -> predicted)"))
    for number, index in enumerate(wrong):
        axes = figure.add_subplot(inner[1 + number // side, number % side])
        axes.imshow(images[index], cmap="gray_r")
        axes.set_title(f"{labels[index]} -> {predicted[index]}", fontsize=8)
        axes.axis("off")
