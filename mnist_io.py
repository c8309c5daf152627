"""MNIST's IDX files: find them in the data folder, download and verify missing ones, read them.

An IDX file is a header followed by raw data. The header is two zero bytes, a type code (0x08 for
unsigned bytes, the only type MNIST uses), the number of dimensions, and each dimension as a
big-endian uint32. The data is the product of the dimensions, in bytes for type 0x08, in C order.
Files may be gzip-compressed, as the MNIST mirrors serve them.
"""

import gzip
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from errors import ArgumentParser, UserError, run_main
from i18n import _, ngettext

DATA_DIR_VARIABLE = "MNIST_DATA_DIR"
DEFAULT_DATA_DIR = "data"

IMAGE_SIZE = 28
N_CLASSES = 10
PIXEL_MAX = 255.0  # pixels are scaled to [0, 1] by dividing by this
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

# SHA-256 of each file's decompressed content, as published with the official files. The .gz
# bytes differ between mirrors that recompressed them, so the check is on the content.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Mirrors tried in order. The original site comes last because it has refused downloads with HTTP
# 403 since mid-2024 (reported in github.com/cvdfoundation/mnist issue 4, among others).
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MIRRORS_VARIABLE = "MNIST_MIRRORS"
OFFLINE_VARIABLE = "MNIST_OFFLINE"
# Seconds to wait for a connection, and then for each read, before trying the next mirror.
TIMEOUT_SECONDS = 10
DOWNLOAD_CHUNK_BYTES = 1 << 16


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


def missing_files_message(data_dir, missing=FILE_NAMES):
    """Return the one-line message that explains how to place the missing MNIST files by hand."""
    names = ", ".join(name + ".gz" for name in missing)
    return ngettext(
        "MNIST file not found in {folder}/: {names} (compressed or not). Download it from {url} "
        "into that folder, or point --data-dir or {variable} at the folder that holds it.",
        "MNIST files not found in {folder}/: {names} (compressed or not). Download them from "
        "{url} into that folder, or point --data-dir or {variable} at the folder that holds them.",
        len(missing)).format(folder=data_dir, names=names, url=resolve_mirrors()[0],
                             variable=DATA_DIR_VARIABLE)


def _open_idx(path):
    """Open path for reading, through gzip when its content starts with the gzip magic bytes."""
    with open(path, "rb") as probe:
        start = probe.read(len(GZIP_MAGIC))
    if start == GZIP_MAGIC:
        return gzip.open(path, "rb")
    if path.name.endswith(".gz"):
        raise UserError(_("{path}: not a gzip file (it starts with {start}); it may be an error "
                          "page saved by a failed download: delete it and download it "
                          "again").format(path=path, start=repr(start)))
    return open(path, "rb")


def _read_exactly(stream, size, path):
    data = stream.read(size)
    if len(data) != size:
        raise UserError(_("{path}: the file ends inside the header: expected {size} bytes, "
                          "found {found}").format(path=path, size=size, found=len(data)))
    return data


def _read_payload(stream, size, path):
    """Read exactly size bytes from stream and check that nothing follows them.

    The data arrives in chunks, so a header that claims more than the file contains fails when the
    file ends, without first allocating the claimed size.
    """
    # A bytearray, so that the arrays built on it are writable: numba compiles a separate version
    # of each kernel for read-only arrays.
    data = bytearray()
    while len(data) <= size:
        chunk = stream.read(min(READ_CHUNK_BYTES, size + 1 - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) != size:
        found = _("more") if len(data) > size else str(len(data))
        raise UserError(_("{path}: the header's dimensions need {size} data bytes, but the file "
                          "has {found}").format(path=path, size=size, found=found))
    return data


def describe_read_error(error):
    """Return the reason for a failed read of a file, possibly gzip, in the user's language."""
    if isinstance(error, EOFError):  # what gzip raises for a stream cut short
        return _("the compressed data ends too early: the file is cut short")
    if isinstance(error, (gzip.BadGzipFile, zlib.error)):
        return _("the compressed data is damaged")
    return describe_os_error(error)


def describe_os_error(error):
    """Return an OSError's reason in the user's language when it is a common one."""
    reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
    return _(str(reason)) if isinstance(reason, str) else str(reason)


def read_idx(path, expected_ndim):
    """Read an IDX file of unsigned bytes with expected_ndim dimensions into a uint8 array.

    Raises UserError, naming the file and the mismatch, when the magic number, type code, number of
    dimensions or length is wrong, or when a gzip stream is cut or corrupt.
    """
    path = Path(path)
    try:
        with _open_idx(path) as stream:
            magic = _read_exactly(stream, 4, path)
            if magic[:2] != b"\x00\x00":
                raise UserError(_("{path}: not an IDX file: expected the magic number to start "
                                  "with bytes 00 00, found {found}").format(
                                      path=path, found=magic[:2].hex(" ")))
            if magic[2] != TYPE_UNSIGNED_BYTE:
                raise UserError(_("{path}: unsupported IDX type code 0x{found:02x}: expected "
                                  "0x{expected:02x} (unsigned bytes)").format(
                                      path=path, found=magic[2], expected=TYPE_UNSIGNED_BYTE))
            if magic[3] != expected_ndim:
                raise UserError(_("{path}: expected {expected} dimensions, found {found}").format(
                    path=path, expected=expected_ndim, found=magic[3]))
            header = _read_exactly(stream, 4 * expected_ndim, path)
            shape = tuple(int(d) for d in np.frombuffer(header, dtype=">u4"))
            payload = _read_payload(stream, int(np.prod(shape)), path)
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(_("{path}: cannot read: {reason}").format(
            path=path, reason=describe_read_error(error))) from error
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
        raise UserError(_("{path}: expected {size}x{size} images, found {height}x{width}").format(
            path=images_path, size=IMAGE_SIZE, height=images.shape[1], width=images.shape[2]))
    if len(images) != len(labels):
        raise UserError(_("{images_path} has {images} images but {labels_path} has {labels} "
                          "labels").format(images_path=images_path, images=len(images),
                                           labels_path=labels_path, labels=len(labels)))
    if len(labels) and labels.max() >= N_CLASSES:
        position = int(np.argmax(labels >= N_CLASSES))
        raise UserError(_("{path}: label {label} at position {position} is outside 0-{last}")
                        .format(path=labels_path, label=labels[position], position=position,
                                last=N_CLASSES - 1))
    return images, labels


def set_default_permissions(path):
    """Give path the permissions of a newly created file, which mkstemp's owner-only mode lacks."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def resolve_mirrors():
    """Return the mirror base URLs: those in $MNIST_MIRRORS, separated by spaces, else MIRRORS."""
    configured = os.environ.get(MIRRORS_VARIABLE, "").split()
    return [url if url.endswith("/") else url + "/" for url in configured] or list(MIRRORS)


def content_sha256(path):
    """Return the SHA-256 of path's content, decompressed first when it is gzip."""
    digest = hashlib.sha256()
    try:
        with _open_idx(Path(path)) as stream:
            for chunk in iter(lambda: stream.read(READ_CHUNK_BYTES), b""):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(_("{path}: cannot read: {reason}").format(
            path=path, reason=describe_read_error(error))) from error
    return digest.hexdigest()


def _fetch(url, destination, timeout):
    """Copy url into the open file destination, with a progress bar; raise OSError on failure."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        content_type = response.headers.get("Content-Type", "")
        if "html" in content_type:
            raise OSError(_("the server sent an HTML page ({content_type}), not the file").format(
                content_type=content_type))
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                  desc=url.rsplit("/", 1)[-1], file=sys.stderr) as bar:
            while True:
                chunk = response.read(DOWNLOAD_CHUNK_BYTES)
                if not chunk:
                    break
                destination.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if expected is not None and received != expected:
            raise OSError(_("the transfer stopped after {received} of {expected} bytes").format(
                received=received, expected=expected))


def download_file(name, data_dir, mirrors, timeout=TIMEOUT_SECONDS, checksums=SHA256):
    """Download name + ".gz" from the first mirror that serves it intact, into data_dir.

    Each attempt writes a temporary file in data_dir, checks that it is gzip and that its content
    has the expected SHA-256, and only then renames it to its final name; the temporary file is
    removed on any failure, Ctrl-C included. A failed mirror is reported in one line on stderr and
    the next one is tried. Raises UserError, listing every attempt, when all mirrors fail.
    """
    data_dir = Path(data_dir)
    failures = []
    for base in mirrors:
        url = base + name + ".gz"
        print(_("downloading {url}").format(url=url), file=sys.stderr, flush=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=data_dir)
        try:
            with os.fdopen(descriptor, "wb") as destination:
                _fetch(url, destination, timeout)
            with open(temporary, "rb") as probe:
                if probe.read(len(GZIP_MAGIC)) != GZIP_MAGIC:
                    raise OSError(_("the file is not gzip-compressed"))
            digest = content_sha256(temporary)
            if digest != checksums[name]:
                raise OSError(_("wrong SHA-256 of the content ({found}..., expected "
                                "{expected}...)").format(found=digest[:12],
                                                         expected=checksums[name][:12]))
            set_default_permissions(temporary)
            os.replace(temporary, data_dir / (name + ".gz"))
            return data_dir / (name + ".gz")
        except (OSError, UserError, ValueError) as error:
            # urllib raises URLError and HTTPError (both OSError), or a timeout (OSError too), and
            # ValueError for a malformed URL.
            reason = describe_os_error(error)
            if isinstance(getattr(error, "reason", None), OSError):  # URLError wraps the cause
                reason = describe_os_error(error.reason)
            failures.append(f"{url}: {reason}")
            print(_("download failed: {url}: {reason}").format(url=url, reason=reason),
                  file=sys.stderr, flush=True)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    raise UserError(_("could not download {name}.gz from any mirror ({failures}); {advice}")
                    .format(name=name, failures="; ".join(failures),
                            advice=missing_files_message(data_dir, [name])), exit_status=1)


def ensure_files(data_dir, names=FILE_NAMES, offline=False, verify=False):
    """Make sure data_dir contains the MNIST files in names, downloading the missing ones.

    offline, or MNIST_OFFLINE=1, forbids the download: a missing file then raises UserError with
    the message for placing the files by hand. verify checks the SHA-256 of files already there.
    """
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(_("the data folder {folder} is a file, not a folder").format(
            folder=data_dir))
    missing = [name for name in names if find_idx_file(data_dir, name) is None]
    if verify:
        for name in names:
            path = find_idx_file(data_dir, name)
            if path is not None and content_sha256(path) != SHA256[name]:
                raise UserError(_("{path}: wrong SHA-256 of the content: the file is damaged or "
                                  "is not the official {name}; delete it and run again to "
                                  "download it").format(path=path, name=name))
    if not missing:
        return
    if offline or os.environ.get(OFFLINE_VARIABLE) == "1":
        raise UserError(missing_files_message(data_dir, missing))
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(_("cannot create the data folder {folder}: {reason}").format(
            folder=data_dir, reason=describe_os_error(error)), exit_status=1) from error
    mirrors = resolve_mirrors()
    for name in missing:
        download_file(name, data_dir, mirrors)


def add_data_arguments(parser):
    """Add the --data-dir and --offline flags, which every program that reads MNIST takes."""
    parser.add_argument("--data-dir", default=None, metavar=_("FOLDER"),
                        help=_("folder with the MNIST files, where missing ones are downloaded "
                               "(default: ${variable} if set, else ./{folder})").format(
                                   variable=DATA_DIR_VARIABLE, folder=DEFAULT_DATA_DIR))
    parser.add_argument("--offline", action="store_true",
                        help=_("never download: fail if a MNIST file is missing (also "
                               "{variable}=1)").format(variable=OFFLINE_VARIABLE))


def main(argv=None):
    parser = ArgumentParser(
        description=_("Download the MNIST files that are missing from the data folder, and "
                      "check them."))
    parser.add_argument("command", choices=["download"], metavar=_("COMMAND"),
                        help=_("what to do: download"))
    add_data_arguments(parser)
    parser.add_argument("--verify", action="store_true",
                        help=_("also check the SHA-256 of the files already there"))
    args = parser.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    ensure_files(data_dir, offline=args.offline, verify=args.verify)
    if args.verify:
        print(_("the four MNIST files are in {folder}/, and their content matches the official "
                "SHA-256").format(folder=data_dir))
    else:
        print(_("the four MNIST files are in {folder}/").format(folder=data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
