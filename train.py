"""Train the convolutional network on MNIST and save its weights to pesos.json.

    python train.py --epochs 10

If the weights file already exists, training is skipped, as in the original program: the file is
loaded and the prediction for test image 0 is shown. Pass --retrain, or delete the file, to train
anew.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import kernels
import mnist_io
import weights
from errors import UserError
from predict import DEFAULT_WEIGHTS, evaluate, predict, show_test_image

# Samples per call into the compiled training loop. Between calls, Python updates the progress bar
# and can react to Ctrl-C; a call takes a few tens of milliseconds.
CHUNK_SIZE = 1000

# Settings of the two presets. "original" reproduces the program this one ports. "default" starts
# from Glorot-uniform weights and a larger learning rate on all the data: the original's uniform
# start in [-1, 1] saturates the sigmoids, so it learns little in ten epochs.
PRESETS = {
    "default": {"epochs": 10, "lr": 0.1, "train_size": None, "test_size": None,
                "init": "glorot", "shuffle": True},
    "original": {"epochs": 10, "lr": 0.01, "train_size": 1000, "test_size": 200,
                 "init": "uniform", "shuffle": False},
}


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train the convolutional network on MNIST and save its weights.",
        formatter_class=mnist_io.HelpFormatter, allow_abbrev=False)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help="starting settings: 'original' reproduces the original program "
                             "(uniform start in [-1, 1], learning rate 0.01, the first 1000 "
                             "training and 200 test images, no shuffling, 10 epochs); the flags "
                             "below override it")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training images (preset: 10)")
    parser.add_argument("--lr", type=float, default=None,
                        help="SGD learning rate (preset: 0.1, or 0.01 for 'original')")
    parser.add_argument("--train-size", type=int, default=None,
                        help="train on the first N training images (preset: all 60000)")
    parser.add_argument("--test-size", type=int, default=None,
                        help="evaluate on the first N test images (preset: all 10000)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random generator for the initial weights and the "
                             "shuffling; the same seed gives the same weights")
    parser.add_argument("--filters", type=int, default=8, help="number of convolution filters")
    parser.add_argument("--filter-size", type=int, default=3, help="side K of the K x K filters")
    parser.add_argument("--pool", type=int, default=2, help="side P of the P x P max-pool windows")
    mnist_io.add_data_arguments(parser)
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="weights file to write; when it exists and --retrain is not given, it is "
                             "loaded instead of training")
    parser.add_argument("--retrain", action="store_true",
                        help="train even if the weights file exists, and replace it")
    return parser


def resolve_settings(args):
    """Return the training settings: the preset's, overridden by the flags given; check them."""
    settings = dict(PRESETS[args.preset])
    for name in ("epochs", "lr", "train_size", "test_size"):
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    settings.update(seed=args.seed, filters=args.filters, filter_size=args.filter_size,
                    pool=args.pool)

    for name in ("epochs", "filters", "filter_size", "pool"):
        if settings[name] < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {settings[name]}")
    for name in ("train_size", "test_size"):
        if settings[name] is not None and settings[name] < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {settings[name]}")
    if not np.isfinite(settings["lr"]) or settings["lr"] <= 0:
        raise UserError(f"--lr must be a positive finite number, got {settings['lr']}")
    if weights.pooled_size(mnist_io.IMAGE_SIZE, settings["filter_size"], settings["pool"]) < 1:
        raise UserError(f"--filter-size {settings['filter_size']} with --pool {settings['pool']} "
                        f"leaves nothing of a {mnist_io.IMAGE_SIZE}x{mnist_io.IMAGE_SIZE} image")
    return settings


def check_writable(path):
    """Raise UserError unless a file can be written at path: checked before hours of training."""
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: folder {folder}/ does not exist")
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror}", exit_status=1) from error


def announce_compiling():
    """Print a notice before the kernels compile for the first time, which takes a few seconds."""
    if not kernels.is_cache_warm():
        print("compiling the kernels (first run only; later runs load them from the cache)...",
              file=sys.stderr, flush=True)


def take(images, labels, size, split):
    """Return the first size images and labels; all of them when size is None."""
    if size is None:
        return images, labels
    if size > len(images):
        raise UserError(f"--{split}-size {size} is larger than the {len(images)} {split} images")
    return images[:size], labels[:size]


def train(params, pool, train_data, test_data, settings, rng):
    """Run the training epochs, updating params in place and printing one line per epoch.

    Returns the history: one dict per epoch with the test MSE, accuracy and seconds.
    """
    train_images, train_labels = train_data
    test_images, test_labels = test_data
    height, width = train_images.shape[1:]
    work = kernels.allocate_workspace(params, pool, height, width)
    epochs = settings["epochs"]
    n_train = len(train_images)

    # Compile (or load from the cache) before the first epoch, so its timing is only training.
    announce_compiling()
    kernels.train_samples(train_images, train_labels, np.arange(0), params, pool,
                          settings["lr"], work)
    predict(params, pool, test_images[:1])

    history = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(n_train) if settings["shuffle"] else np.arange(n_train)
        loss_sum = 0.0
        with tqdm(total=n_train, desc=f"epoch {epoch}/{epochs}", unit=" img", leave=False,
                  file=sys.stderr) as bar:
            for begin in range(0, n_train, CHUNK_SIZE):
                chunk = order[begin:begin + CHUNK_SIZE]
                loss_sum += kernels.train_samples(train_images, train_labels, chunk, params, pool,
                                                  settings["lr"], work)
                bar.update(len(chunk))
                bar.set_postfix(loss=f"{loss_sum / min(begin + CHUNK_SIZE, n_train):.4f}",
                                refresh=False)

        if not all(np.all(np.isfinite(array)) for array in params):
            raise UserError(f"training diverged in epoch {epoch}: the weights are no longer finite "
                            f"numbers; try a smaller --lr (it was {settings['lr']}). Nothing was "
                            f"saved.", exit_status=1)
        mse, correct = evaluate(predict(params, pool, test_images), test_labels)
        seconds = time.perf_counter() - started
        total = len(test_labels)
        print(f"epoch {epoch:>2}/{epochs}  test MSE {mse:.6f}  accuracy {correct}/{total} "
              f"({100.0 * correct / total:.2f}%)  {seconds:.1f} s", flush=True)
        history.append({"epoch": epoch, "train_loss": loss_sum / n_train, "test_mse": mse,
                        "correct": correct, "total": total, "seconds": round(seconds, 3)})
    return history


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        settings = resolve_settings(args)
        weights_path = Path(args.weights)
        data_dir = mnist_io.resolve_data_dir(args.data_dir)

        if weights_path.exists() and not args.retrain:
            params, pool, _ = weights.load(weights_path)
            print(f"{weights_path} exists: loaded its weights and skipped training. To train "
                  f"anew, delete it or pass --retrain.")
            mnist_io.ensure_files(data_dir, mnist_io.SPLITS["test"], offline=args.offline)
            show_test_image(params, pool, data_dir, 0)
            return 0

        check_writable(weights_path)
        mnist_io.ensure_files(data_dir, offline=args.offline)
        train_data = take(*mnist_io.load_split(data_dir, "train"), settings["train_size"], "train")
        test_data = take(*mnist_io.load_split(data_dir, "test"), settings["test_size"], "test")
        rng = np.random.default_rng(settings["seed"])
        params = weights.init_params(settings["filters"], settings["filter_size"],
                                     settings["pool"], rng, settings["init"])
        print(f"training on {len(train_data[0])} images, testing on {len(test_data[0])}; "
              f"{settings['filters']} filters of {settings['filter_size']}x"
              f"{settings['filter_size']}, {settings['pool']}x{settings['pool']} pooling, "
              f"learning rate {settings['lr']}, seed {settings['seed']}", flush=True)

        history = train(params, settings["pool"], train_data, test_data, settings, rng)
        record = {key: settings[key] for key in ("epochs", "lr", "seed", "init", "shuffle",
                                                 "filters", "filter_size", "pool")}
        record.update(preset=args.preset, train_size=len(train_data[0]),
                      test_size=len(test_data[0]), history=history)
        weights.save(weights_path, params, {"training": record})
        print(f"saved the weights to {weights_path}")
        show_test_image(params, settings["pool"], data_dir, 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(main())
