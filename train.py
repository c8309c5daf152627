"""Train the convolutional network on MNIST and save its weights to pesos.json.

    python train.py --epochs 10

If the weights file already exists, training is skipped, as in the original program: the file is
loaded and the prediction for test image 0 is shown. Pass --retrain, or delete the file, to train
anew.
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import kernels
import mnist_io
import plots
import weights
from errors import EXIT_INTERRUPTED, ArgumentParser, UserError, decimal, integer, run_main
from i18n import _, number
from predict import DEFAULT_WEIGHTS, evaluate, predict, show_test_image

# Samples per call into the compiled training loop. Between calls, Python updates the progress bar
# and can react to Ctrl-C; a call takes a few tens of milliseconds.
CHUNK_SIZE = 1000
# After the first epoch, an accuracy at or below this fraction is no better than guessing among
# ten digits, which is what a network with saturated sigmoids does.
CHANCE_ACCURACY = 0.15

# Settings of the two presets. "original" reproduces the program this one ports. "default" starts
# from Glorot-uniform weights and a larger learning rate on all the data: the original's uniform
# start in [-1, 1] saturates the sigmoids, so it learns little in ten epochs.
ARCHITECTURE = {"filters": 8, "filter_size": 3, "pool": 2}
PRESETS = {
    "default": {"epochs": 10, "lr": 0.1, "train_size": None, "test_size": None,
                "init": "glorot", "shuffle": True, **ARCHITECTURE},
    "original": {"epochs": 10, "lr": 0.01, "train_size": 1000, "test_size": 200,
                 "init": "uniform", "shuffle": False, **ARCHITECTURE},
}
OVERRIDES = ("epochs", "lr", "train_size", "test_size", "filters", "filter_size", "pool")


def build_parser():
    parser = ArgumentParser(
        description=_("Train the convolutional network on MNIST and save its weights."))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help=_("starting settings: 'original' reproduces the original program "
                               "(uniform start in [-1, 1], learning rate 0.01, the first 1000 "
                               "training and 200 test images, no shuffling, 10 epochs); the flags "
                               "below override it"))
    parser.add_argument("--epochs", type=integer, default=None, metavar="N",
                        help=_("passes over the training images (preset: 10)"))
    parser.add_argument("--lr", type=decimal, default=None, metavar=_("RATE"),
                        help=_("SGD learning rate (preset: 0.1, or 0.01 for 'original')"))
    parser.add_argument("--train-size", type=integer, default=None, metavar="N",
                        help=_("train on the first N training images (preset: all 60000)"))
    parser.add_argument("--test-size", type=integer, default=None, metavar="N",
                        help=_("evaluate on the first N test images (preset: all 10000)"))
    parser.add_argument("--seed", type=integer, default=0, metavar="N",
                        help=_("seed of the random generator for the initial weights and the "
                               "shuffling; the same seed gives the same weights"))
    parser.add_argument("--filters", type=integer, default=None, metavar="N",
                        help=_("number of convolution filters (preset: 8)"))
    parser.add_argument("--filter-size", type=integer, default=None, metavar="N",
                        help=_("side K of the K x K filters (preset: 3)"))
    parser.add_argument("--pool", type=integer, default=None, metavar="N",
                        help=_("side P of the P x P max-pool windows (preset: 2)"))
    mnist_io.add_data_arguments(parser)
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, metavar=_("FILE"),
                        help=_("weights file to write; when it exists and neither --retrain nor "
                               "--resume is given, it is loaded instead of training"))
    parser.add_argument("--retrain", action="store_true",
                        help=_("train from new weights even if the weights file exists, and "
                               "replace it"))
    parser.add_argument("--plot", metavar=_("FILE"),
                        help=_("after training, write a PNG figure to FILE: learning curves, "
                               "confusion matrix, filters and mistakes (needs matplotlib)"))
    parser.add_argument("--resume", action="store_true",
                        help=_("continue training the weights in the weights file for --epochs "
                               "more epochs; the architecture comes from the file"))
    return parser


def resolve_settings(args):
    """Return the training settings: the preset's, overridden by the flags given; check them."""
    if args.resume and args.retrain:
        raise UserError(_("--resume and --retrain exclude each other: --resume continues the "
                          "weights in the file, --retrain replaces them"))
    if args.resume:
        given = [name for name in ARCHITECTURE if getattr(args, name) is not None]
        if given:
            raise UserError(_("--{flag} cannot be used with --resume: the architecture comes "
                              "from the weights file").format(flag=given[0].replace("_", "-")))
    settings = dict(PRESETS[args.preset])
    for name in OVERRIDES:
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    settings["seed"] = args.seed

    for name in ("epochs", "filters", "filter_size", "pool"):
        if settings[name] < 1:
            raise UserError(_("--{flag} must be at least 1, got {value}").format(
                flag=name.replace("_", "-"), value=settings[name]))
    for name in ("train_size", "test_size"):
        if settings[name] is not None and settings[name] < 1:
            raise UserError(_("--{flag} must be at least 1, got {value}").format(
                flag=name.replace("_", "-"), value=settings[name]))
    largest = float(np.finfo(weights.DTYPE).max)  # a larger rate would be inf in float32
    if not 0 < settings["lr"] <= largest:
        raise UserError(_("--lr must be a positive finite number no larger than {largest}, "
                          "got {value}").format(largest=number(f"{largest:.2g}"),
                                                value=number(settings["lr"])))
    if weights.pooled_size(mnist_io.IMAGE_SIZE, settings["filter_size"], settings["pool"]) < 1:
        raise UserError(_("--filter-size {size} with --pool {pool} leaves nothing of a "
                          "{image}x{image} image").format(size=settings["filter_size"],
                                                          pool=settings["pool"],
                                                          image=mnist_io.IMAGE_SIZE))
    return settings


def check_writable(path):
    """Raise UserError unless a file can be written at path: checked before hours of training."""
    folder = path.parent
    if not folder.is_dir():
        raise UserError(_("cannot write {path}: folder {folder}/ does not exist").format(
            path=path, folder=folder))
    if path.is_dir():
        raise UserError(_("cannot write {path}: it is a folder").format(path=path))
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(_("cannot write {path}: {reason}").format(path=path, reason=error.strerror),
                        exit_status=1) from error


def announce_compiling():
    """Print a notice before the kernels compile for the first time, which takes a few seconds."""
    if not kernels.is_cache_warm():
        print(_("compiling the kernels (first run only; later runs load them from the cache)..."),
              file=sys.stderr, flush=True)


def take(images, labels, size, split):
    """Return the first size images and labels; all of them when size is None."""
    if size is None:
        return images, labels
    if size > len(images):
        message = (_("--train-size {size} is larger than the {count} training images")
                   if split == "train" else
                   _("--test-size {size} is larger than the {count} test images"))
        raise UserError(message.format(size=size, count=len(images)))
    return images[:size], labels[:size]


def train(params, pool, train_data, test_data, settings, rng, first_epoch=1):
    """Run settings["epochs"] epochs, numbered from first_epoch, updating params in place and
    printing one line per epoch.

    Returns the history: one dict per epoch with the test MSE, accuracy and seconds. Raises
    UserError when the weights stop being finite numbers, or when Ctrl-C interrupts an epoch.
    """
    train_images, train_labels = train_data
    test_images, test_labels = test_data
    height, width = train_images.shape[1:]
    work = kernels.allocate_workspace(params, pool, height, width)
    last_epoch = first_epoch + settings["epochs"] - 1
    n_train = len(train_images)

    # Compile (or load from the cache) before the first epoch, so its timing is only training.
    announce_compiling()
    kernels.train_samples(train_images, train_labels, np.arange(0), params, pool,
                          settings["lr"], work)
    kernels.predict_images(test_images[:1], params, pool,
                           np.empty((1, params[2].shape[0]), weights.DTYPE), 1)

    history = []
    epoch, seen = first_epoch, 0
    try:
        for epoch in range(first_epoch, last_epoch + 1):
            seen = 0
            started = time.perf_counter()
            order = rng.permutation(n_train) if settings["shuffle"] else np.arange(n_train)
            loss_sum = 0.0
            with tqdm(total=n_train, desc=_("epoch {epoch}/{last}").format(epoch=epoch,
                                                                           last=last_epoch),
                      unit=_(" img"),
                      leave=False, file=sys.stderr) as bar:
                for begin in range(0, n_train, CHUNK_SIZE):
                    chunk = order[begin:begin + CHUNK_SIZE]
                    loss_sum += kernels.train_samples(train_images, train_labels, chunk, params,
                                                      pool, settings["lr"], work)
                    seen += len(chunk)
                    bar.update(len(chunk))
                    bar.set_postfix_str(_("loss {value}").format(value=number(loss_sum / seen, 4)),
                                        refresh=False)

            if not all(np.all(np.isfinite(array)) for array in params):
                raise UserError(_("training diverged in epoch {epoch}: the weights are no longer "
                                  "finite numbers; try a smaller --lr (it was {lr}). Nothing was "
                                  "saved.").format(epoch=epoch, lr=number(settings["lr"])),
                                exit_status=1)
            mse, correct = evaluate(predict(params, pool, test_images), test_labels)
            seconds = time.perf_counter() - started
            total = len(test_labels)
            print(_("epoch {epoch:>2}/{last}  test MSE {mse}  accuracy {correct}/{total} "
                    "({percent}%)  {seconds} s").format(
                        epoch=epoch, last=last_epoch, mse=number(mse, 6), correct=correct,
                        total=total, percent=number(100.0 * correct / total, 2),
                        seconds=number(seconds, 1)), flush=True)
            if epoch == first_epoch and correct <= CHANCE_ACCURACY * total:
                print(_("note: the accuracy is at chance level, so the sigmoids may be "
                        "saturated, where their gradients vanish; a smaller --lr (it is {lr}) or "
                        "the default preset's start may help").format(lr=number(settings["lr"])),
                      file=sys.stderr, flush=True)
            history.append({"epoch": epoch, "train_loss": loss_sum / n_train, "test_mse": mse,
                            "correct": correct, "total": total, "seconds": round(seconds, 3)})
    except KeyboardInterrupt:
        if seen == n_train:
            message = _("interrupted in epoch {epoch}/{last} while evaluating it; nothing was "
                        "saved")
        else:
            message = _("interrupted in epoch {epoch}/{last} after {seen} of {total} images; "
                        "nothing was saved")
        raise UserError(message.format(epoch=epoch, last=last_epoch, seen=seen, total=n_train),
                        exit_status=EXIT_INTERRUPTED) from None
    return history


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = resolve_settings(args)
    weights_path = Path(args.weights)
    data_dir = mnist_io.resolve_data_dir(args.data_dir)

    if weights_path.exists() and not (args.retrain or args.resume):
        params, pool = weights.load(weights_path)[:2]
        print(_("{path} exists: loaded its weights and skipped training. To train anew, delete "
                "it or pass --retrain; to train it further, pass --resume.").format(
                    path=weights_path))
        ignored = [name for name in OVERRIDES if getattr(args, name) is not None]
        if ignored:
            print(_("note: {flags} had no effect, because training was skipped").format(
                flags=", ".join("--" + name.replace("_", "-") for name in ignored)),
                file=sys.stderr)
        mnist_io.ensure_files(data_dir, mnist_io.SPLITS["test"], offline=args.offline)
        show_test_image(params, pool, data_dir, 0)
        return 0

    history = []
    if args.resume:
        if not weights_path.exists():
            raise UserError(_("--resume needs an existing weights file, and {path} was not "
                              "found").format(path=weights_path))
        params, pool, extra = weights.load(weights_path)
        filters = params[0]
        settings.update(filters=filters.shape[0], filter_size=filters.shape[1], pool=pool)
        history = weights.training_history(extra)
    check_writable(weights_path)
    if args.plot:
        plots.import_pyplot()  # fail now, not after training, when matplotlib is missing
        check_writable(Path(args.plot))
    mnist_io.ensure_files(data_dir, offline=args.offline)
    train_data = take(*mnist_io.load_split(data_dir, "train"), settings["train_size"], "train")
    test_data = take(*mnist_io.load_split(data_dir, "test"), settings["test_size"], "test")
    if args.resume:
        # A generator of its own for each resumed stretch, so that resuming is reproducible too.
        rng = np.random.default_rng([settings["seed"], len(history)])
    else:
        rng = np.random.default_rng(settings["seed"])
        params = weights.init_params(settings["filters"], settings["filter_size"],
                                     settings["pool"], rng, settings["init"])
    summary = _("training on {train} images, testing on {test}; {filters} filters of "
                "{size}x{size}, {pool}x{pool} pooling, learning rate {lr}, seed {seed}").format(
                    train=len(train_data[0]), test=len(test_data[0]), filters=settings["filters"],
                    size=settings["filter_size"], pool=settings["pool"], lr=number(settings["lr"]),
                    seed=settings["seed"])
    if history:
        summary += _("; resuming after epoch {epoch}").format(epoch=len(history))
    print(summary, flush=True)

    history += train(params, settings["pool"], train_data, test_data, settings, rng,
                     first_epoch=len(history) + 1)
    record = {key: settings[key] for key in ("lr", "seed", "init", "shuffle", "filters",
                                             "filter_size", "pool")}
    record.update(preset=args.preset, epochs=len(history), train_size=len(train_data[0]),
                  test_size=len(test_data[0]), history=history)
    weights.save(weights_path, params, {"training": record})
    print(_("saved the weights to {path}").format(path=weights_path))
    if args.plot:
        test_images, test_labels = test_data
        plots.write_figure(args.plot, history, predict(params, settings["pool"], test_images),
                           test_labels, test_images, params[0])
        print(_("wrote the figure to {path}").format(path=args.plot))
    show_test_image(params, settings["pool"], data_dir, 0)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
