"""Measure the speed and memory of training and inference, against NumPy and PyTorch.

    python bench.py              # the full measurement, under a minute on 2 cores
    python bench.py --quick      # tiny sizes, to check that every row runs
    python bench.py --json FILE  # also write the figures as JSON, to compare commits

Training rows run the same network with per-sample SGD on one thread: our compiled loop, the plain
NumPy version the tests use as a reference, and PyTorch with batches of one image. PyTorch is
optional, and its rows show "not installed" without it. Inference rows run over the 10,000 test
images on every core.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import kernels
import mnist_io
import weights
from errors import ArgumentParser, UserError, run_main
from i18n import DECIMAL_SEPARATOR, _, number
from predict import predict

PROJECT_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(PROJECT_DIR / "tests"))
import numpy_reference  # noqa: E402  (lives in tests/, added to the path above)

LEARNING_RATE = 0.1
POOL = 2


def median_rate(run, count, repeats):
    """Return the median over repeats of count / seconds taken by run()."""
    rates = []
    for _repeat in range(repeats):
        started = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def bench_compile():
    """Return the seconds to compile every kernel with an empty cache, in a fresh process."""
    code = ("import time, numpy as np; started = time.perf_counter(); import kernels, weights; "
            "p = weights.init_params(8, 3, 2, np.random.default_rng(0)); "
            "w = kernels.allocate_workspace(p, 2, 28, 28); "
            "kernels.train_samples(np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8), "
            "np.arange(1), p, 2, 0.1, w); "
            "kernels.predict_images(np.zeros((1, 28, 28), np.uint8), p, 2, "
            "np.empty((1, 10), np.float32), 1); print(time.perf_counter() - started)")
    with tempfile.TemporaryDirectory() as cache:
        environment = dict(os.environ, NUMBA_CACHE_DIR=cache)
        result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, env=environment,
                                capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])


def bench_numba_training(images, labels, size, epochs):
    params = weights.init_params(8, 3, POOL, np.random.default_rng(0))
    work = kernels.allocate_workspace(params, POOL, 28, 28)
    rng = np.random.default_rng(1)
    kernels.train_samples(images, labels, np.arange(1), params, POOL, LEARNING_RATE, work)
    return median_rate(
        lambda: kernels.train_samples(images, labels, rng.permutation(size), params, POOL,
                                      LEARNING_RATE, work),
        size, epochs)


def bench_numpy_training(images, labels, size):
    params = weights.init_params(8, 3, POOL, np.random.default_rng(0))
    scaled = images[:size].astype(np.float32) / np.float32(255)

    def run():
        for i in range(size):
            numpy_reference.train_step(scaled[i], labels[i], params, POOL,
                                       np.float32(LEARNING_RATE))
    return median_rate(run, size, 3)


def torch_network(torch, params):
    """Return the same network in PyTorch, as a function of a (N, 1, 28, 28) tensor, and its
    parameters."""
    filters, conv_biases, fc_weights, fc_biases = (torch.tensor(array) for array in params)
    conv = torch.nn.Conv2d(1, filters.shape[0], filters.shape[1])
    dense = torch.nn.Linear(fc_weights.shape[1], fc_weights.shape[0])
    with torch.no_grad():
        conv.weight.copy_(filters[:, None])
        conv.bias.copy_(conv_biases)
        dense.weight.copy_(fc_weights)
        dense.bias.copy_(fc_biases)

    def forward(x):
        pooled = torch.nn.functional.max_pool2d(torch.sigmoid(conv(x)), POOL)
        return torch.sigmoid(dense(torch.flatten(pooled, 1)))
    return forward, list(conv.parameters()) + list(dense.parameters())


def bench_torch_training(torch, images, labels, size):
    torch.set_num_threads(1)
    forward, parameters = torch_network(
        torch, weights.init_params(8, 3, POOL, np.random.default_rng(0)))
    optimizer = torch.optim.SGD(parameters, lr=LEARNING_RATE)
    inputs = torch.tensor(images[:size, None].astype(np.float32) / np.float32(255))
    targets = torch.eye(10)[torch.tensor(labels[:size].astype(np.int64))]

    def run():
        for i in range(size):
            optimizer.zero_grad()
            loss = 0.5 * ((forward(inputs[i:i + 1]) - targets[i:i + 1]) ** 2).sum()
            loss.backward()
            optimizer.step()
    run()  # the first steps warm up PyTorch's allocator and dispatch caches
    return median_rate(run, size, 3)


def bench_numba_inference(images, repeats):
    params = weights.init_params(8, 3, POOL, np.random.default_rng(0))
    predict(params, POOL, images[:1])
    return median_rate(lambda: predict(params, POOL, images), len(images), repeats)


def bench_torch_inference(torch, images, repeats):
    torch.set_num_threads(os.cpu_count() or 1)
    forward = torch_network(torch, weights.init_params(8, 3, POOL, np.random.default_rng(0)))[0]
    inputs = torch.tensor(images[:, None].astype(np.float32) / np.float32(255))

    def run():
        with torch.no_grad():
            forward(inputs)
    run()
    return median_rate(run, len(images), repeats)


# Runs train.py in this child process and then prints its peak resident memory (VmHWM, in KiB),
# which Linux resets when a process starts a new program, so the parent's memory is not counted.
FULL_RUN_CODE = """
import os, runpy, sys
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit:
    if exit.code:
        raise
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM")))
"""


def bench_full_run(data_dir, extra_args):
    """Return (seconds, peak resident MB) of a whole train.py run in a child process."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-c", FULL_RUN_CODE, str(PROJECT_DIR / "train.py"),
                   "--data-dir", str(data_dir), "--weights", str(Path(folder) / "pesos.json"),
                   *extra_args]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"train.py failed with status {result.returncode}: {result.stderr}")
    return seconds, int(result.stdout.split()[-1]) / 1024


def bench_predict_startup(data_dir):
    """Return the wall seconds of `python predict.py --index 0` once the cache is warm."""
    with tempfile.TemporaryDirectory() as folder:
        weights_path = Path(folder) / "pesos.json"
        weights.save(weights_path, weights.init_params(8, 3, POOL, np.random.default_rng(0)))
        command = [sys.executable, str(PROJECT_DIR / "predict.py"), "--index", "0",
                   "--data-dir", str(data_dir), "--weights", str(weights_path)]
        subprocess.run(command, check=True, capture_output=True)
        timings = []
        for _repeat in range(3):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            timings.append(time.perf_counter() - started)
    return min(timings)


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def main(argv=None):
    parser = ArgumentParser(description=_("Measure the speed and memory of training and "
                                          "inference, against NumPy and PyTorch."))
    parser.add_argument("--quick", action="store_true",
                        help=_("tiny sizes and no cold compile: checks that every row runs"))
    parser.add_argument("--json", metavar=_("FILE"),
                        help=_("also write the figures to this file, as JSON"))
    mnist_io.add_data_arguments(parser)
    args = parser.parse_args(argv)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise UserError(_("cannot write {path}: folder {folder}/ does not exist").format(
            path=args.json, folder=Path(args.json).parent))

    data_dir = mnist_io.resolve_data_dir(args.data_dir)
    mnist_io.ensure_files(data_dir, offline=args.offline)
    train_images, train_labels = mnist_io.load_split(data_dir, "train")
    test_images = mnist_io.load_split(data_dir, "test")[0]
    if args.quick:
        train_size, epochs, reference_size, inference_repeats = 500, 2, 50, 2
        test_images = test_images[:500]
        full_run_args = ["--epochs", "1", "--train-size", "1000", "--test-size", "200"]
    else:
        train_size, epochs, reference_size, inference_repeats = 20000, 5, 2000, 5
        full_run_args = ["--epochs", "10"]
    torch = import_torch()

    figures = {}
    print(_("machine: {machine}, {cores} cores, Python {python}, numba {numba}, torch {torch}")
          .format(machine=platform.machine(), cores=os.cpu_count(),
                  python=platform.python_version(), numba=kernels.numba_version(),
                  torch=torch.__version__ if torch else _("not installed")), flush=True)
    figures["compile_seconds"] = None if args.quick else bench_compile()
    figures["train_numba"] = bench_numba_training(train_images, train_labels, train_size, epochs)
    figures["train_numpy"] = bench_numpy_training(train_images, train_labels, reference_size)
    figures["train_torch"] = (bench_torch_training(torch, train_images, train_labels,
                                                   reference_size) if torch else None)
    figures["infer_numba"] = bench_numba_inference(test_images, inference_repeats)
    figures["infer_torch"] = (bench_torch_inference(torch, test_images, inference_repeats)
                              if torch else None)
    figures["full_run_seconds"], figures["full_run_peak_mb"] = bench_full_run(data_dir,
                                                                              full_run_args)
    figures["predict_seconds"] = bench_predict_startup(data_dir)

    print_table(figures, train_size, len(test_images), " ".join(full_run_args))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise UserError(_("cannot write {path}: {reason}").format(
                path=args.json, reason=_(error.strerror or str(error))), exit_status=1) from error
    return 0


def print_table(figures, train_size, test_size, full_run_args):
    def ratio(ours, theirs):
        return number(ours / theirs, 1) + "x" if theirs else ""

    def rate(value, unit):
        if not value:
            return _("not installed")
        # Thousands grouped with the separator of the language: a comma in English, a dot in
        # Portuguese, where the comma is the decimal separator.
        grouped = f"{value:,.0f}"
        return (grouped.replace(",", ".") if DECIMAL_SEPARATOR == "," else grouped) + " " + unit

    compile_seconds = figures["compile_seconds"]
    rows = [
        (_("compile all kernels, empty cache"),
         number(compile_seconds, 1) + " s" if compile_seconds else _("skipped"), ""),
        (_("training, numba, 1 thread ({count} images)").format(count=train_size),
         rate(figures["train_numba"], _("samples/s")), number(1.0, 1) + "x"),
        (_("training, NumPy reference, 1 thread"), rate(figures["train_numpy"], _("samples/s")),
         ratio(figures["train_numba"], figures["train_numpy"])),
        (_("training, PyTorch batch 1, 1 thread"), rate(figures["train_torch"], _("samples/s")),
         ratio(figures["train_numba"], figures["train_torch"])),
        (_("inference, numba, all cores ({count} images)").format(count=test_size),
         rate(figures["infer_numba"], _("images/s")), number(1.0, 1) + "x"),
        (_("inference, PyTorch batched, all cores"), rate(figures["infer_torch"], _("images/s")),
         ratio(figures["infer_numba"], figures["infer_torch"])),
        (_("train.py, whole run (*): wall time"), number(figures["full_run_seconds"], 1) + " s",
         ""),
        (_("train.py, whole run (*): peak resident memory"),
         number(figures["full_run_peak_mb"], 0) + " MB", ""),
        (_("predict.py --index 0, warm cache: wall time"),
         number(figures["predict_seconds"], 2) + " s", ""),
    ]
    table_row = "| {:<52} | {:>20} | {:>8} |".format
    print(table_row(_("measurement"), _("value"), _("numba is")))
    print(table_row("-" * 52, "-" * 20, "-" * 8).replace(" ", "-"))
    for name, value, speedup in rows:
        print(table_row(name, value, speedup))
    # Blank lines end the Markdown table, so the notes stay notes when the output is pasted.
    print()
    print(_("(*) python train.py {args}, kernels already compiled").format(args=full_run_args))
    print()
    print(_("numba is: the rate of the numba row above, divided by the rate of this row"))


if __name__ == "__main__":
    sys.exit(run_main(main))
