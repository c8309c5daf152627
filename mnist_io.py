"""MNIST's IDX files: find them in the data folder, read them strictly, scale the pixels.

An IDX file is a header followed by raw data. The header is two zero bytes, a type code (0x08 for
unsigned bytes, the only type MNIST uses), the number of dimensions, and each dimension as a
big-endian uint32. The data is the product of the dimensions, in bytes for type 0x08, in C order.
Files may be gzip-compressed, as the MNIST mirrors serve them.
"""

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from errors import UserError

DATA_DIR_VARIABLE = "MNIST_DATA_DIR"
DEFAULT_DATA_DIR = "data"

IMAGE_SIZE = 28
N_CLASSES = 10
TYPE_UNSIGNED_BYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"
READ_CHUNK_BYTES = 1 << 20

# Each split as (images file, labels file), named as the official site names them. Some sites use
# a dot in place of the dash before "idx" ("train-images.idx3-ubyte"); find_idx_file accepts both.
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FILE_NAMES = SPLITS["train"] + SPLITS["test"]
MNIST_SOURCE = "https://ossci-datasets.s3.amazonaws.com/mnist/"


def resolve_data_dir(data_dir=None):
    """Return the data folder: data_dir if given, else $MNIST_DATA_DIR if set, else ./data."""
    if data_dir:
        return Path(data_dir)
    return Path(os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR)


def candidate_names(name):
    """Return the file names under which the IDX file `name` may be stored, in order of preference."""
    dotted = name.replace("-idx", ".idx")
    return [name, name + ".gz", dotted, dotted + ".gz"]


def find_idx_file(data_dir, name):
    """Return the path of the IDX file `name` in data_dir, or None when no variant of it exists."""
    for candidate in candidate_names(name):
        path = Path(data_dir) / candidate
        if path.is_file():
            return path
    return None


def missing_files_message(data_dir):
    """Return the one-line message for a data folder that lacks MNIST files."""
    names = ", ".join(name + ".gz" for name in FILE_NAMES)
    return (f"MNIST files not found in {data_dir}/: it needs {names} (compressed or not). "
            f"Download them from {MNIST_SOURCE} into that folder, or point --data-dir or "
            f"{DATA_DIR_VARIABLE} at the folder that holds them.")


def _open_idx(path):
    """Open path for reading, through gzip when its content starts with the gzip magic bytes."""
    with open(path, "rb") as probe:
        start = probe.read(len(GZIP_MAGIC))
    if start == GZIP_MAGIC:
        return gzip.open(path, "rb")
    if path.name.endswith(".gz"):
        raise UserError(f"{path}: not a gzip file (it starts with {start!r}); "
                        f"it may be an error page saved by a failed download: delete it and "
                        f"download it again")
    return open(path, "rb")


def _read_exactly(stream, size, path, what):
    data = stream.read(size)
    if len(data) != size:
        raise UserError(f"{path}: file ends inside the {what}: expected {size} bytes, found "
                        f"{len(data)}")
    return data


def _read_payload(stream, size, path):
    """Read exactly size bytes from stream and check that nothing follows them.

    The data arrives in chunks, so a header that claims more than the file holds fails when the
    file ends, without first allocating the claimed size.
    """
    chunks = []
    received = 0
    while received <= size:
        chunk = stream.read(min(READ_CHUNK_BYTES, size + 1 - received))
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    if received != size:
        found = "more" if received > size else str(received)
        raise UserError(f"{path}: the header's dimensions need {size} data bytes, but the file "
                        f"has {found}")
    return b"".join(chunks)


def read_idx(path, expected_ndim):
    """Read an IDX file of unsigned bytes with expected_ndim dimensions into a uint8 array.

    Raises UserError, naming the file and the mismatch, when the magic number, type code, number of
    dimensions or length is wrong, or when a gzip stream is cut or corrupt.
    """
    path = Path(path)
    try:
        with _open_idx(path) as stream:
            magic = _read_exactly(stream, 4, path, "header")
            if magic[:2] != b"\x00\x00":
                raise UserError(f"{path}: not an IDX file: expected the magic number to start "
                                f"with bytes 00 00, found {magic[:2].hex(' ')}")
            if magic[2] != TYPE_UNSIGNED_BYTE:
                raise UserError(f"{path}: unsupported IDX type code 0x{magic[2]:02x}: expected "
                                f"0x{TYPE_UNSIGNED_BYTE:02x} (unsigned bytes)")
            if magic[3] != expected_ndim:
                raise UserError(f"{path}: expected {expected_ndim} dimensions, found {magic[3]}")
            header = _read_exactly(stream, 4 * expected_ndim, path, "header")
            shape = tuple(int(d) for d in np.frombuffer(header, dtype=">u4"))
            payload = _read_payload(stream, int(np.prod(shape)), path)
    except (OSError, EOFError, zlib.error) as error:
        # gzip raises BadGzipFile (an OSError) or EOFError for a cut or corrupt stream.
        raise UserError(f"{path}: cannot read: {error}") from error
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape)


def load_split(data_dir, split):
    """Load the "train" or "test" split from data_dir as images (N, 28, 28) and labels (N,), uint8.

    Raises UserError when a file is missing or invalid, or when images and labels do not match.
    """
    images_name, labels_name = SPLITS[split]
    images_path = find_idx_file(data_dir, images_name)
    labels_path = find_idx_file(data_dir, labels_name)
    if images_path is None or labels_path is None:
        raise UserError(missing_files_message(data_dir))

    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise UserError(f"{images_path}: expected {IMAGE_SIZE}x{IMAGE_SIZE} images, found "
                        f"{images.shape[1]}x{images.shape[2]}")
    if len(images) != len(labels):
        raise UserError(f"{images_path} has {len(images)} images but {labels_path} has "
                        f"{len(labels)} labels")
    if len(labels) and labels.max() >= N_CLASSES:
        position = int(np.argmax(labels >= N_CLASSES))
        raise UserError(f"{labels_path}: label {labels[position]} at position {position} is "
                        f"outside 0-{N_CLASSES - 1}")
    return images, labels

