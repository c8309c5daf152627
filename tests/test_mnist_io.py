"""Reading IDX files: round trips, name variants, and every kind of broken file."""

import gzip
import struct

import numpy as np
import pytest

import mnist_io
from errors import UserError


def idx_bytes(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(folder, n_images=5, images=None, labels=None, compress=True, dotted=False):
    """Write a small test split into folder and return its images and labels."""
    rng = np.random.default_rng(0)
    if images is None:
        images = rng.integers(0, 256, (n_images, 28, 28), dtype=np.uint8)
    if labels is None:
        labels = rng.integers(0, 10, n_images, dtype=np.uint8)
    for name, array in zip(mnist_io.SPLITS["test"], (images, labels)):
        if dotted:
            name = name.replace("-idx", ".idx")
        data = idx_bytes(array)
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dotted", [True, False])
def test_split_round_trip(tmp_path, compress, dotted):
    images, labels = write_split(tmp_path, compress=compress, dotted=dotted)
    read_images, read_labels = mnist_io.load_split(tmp_path, "test")
    assert read_images.dtype == np.uint8
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)


def test_missing_files_message_names_folder_and_files(tmp_path):
    with pytest.raises(UserError) as caught:
        mnist_io.load_split(tmp_path, "train")
    message = str(caught.value)
    assert str(tmp_path) in message
    for name in mnist_io.FILE_NAMES:
        assert name in message
    assert mnist_io.resolve_mirrors()[0] in message


def test_missing_files_message_names_default_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv(mnist_io.MIRRORS_VARIABLE)
    message = mnist_io.missing_files_message(tmp_path, ["t10k-labels-idx1-ubyte"])
    assert "Download it from https://ossci-datasets.s3.amazonaws.com/mnist/" in message


def test_data_dir_resolution(monkeypatch):
    monkeypatch.delenv(mnist_io.DATA_DIR_VARIABLE, raising=False)
    assert str(mnist_io.resolve_data_dir(None)) == "data"
    monkeypatch.setenv(mnist_io.DATA_DIR_VARIABLE, "/somewhere")
    assert str(mnist_io.resolve_data_dir(None)) == "/somewhere"
    assert str(mnist_io.resolve_data_dir("given")) == "given"


def read_bad(tmp_path, data, name="file-idx1-ubyte", ndim=1):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UserError) as caught:
        mnist_io.read_idx(path, ndim)
    assert str(path) in str(caught.value)
    return str(caught.value)


LABELS = np.arange(10, dtype=np.uint8)


def test_wrong_magic_rejected(tmp_path):
    assert "magic number" in read_bad(tmp_path, b"\x01\x02" + idx_bytes(LABELS)[2:])


def test_wrong_type_code_rejected(tmp_path):
    assert "type code 0x0d" in read_bad(tmp_path, idx_bytes(LABELS, type_code=0x0D))


def test_wrong_dimension_count_rejected(tmp_path):
    assert "expected 3 dimensions, found 1" in read_bad(tmp_path, idx_bytes(LABELS), ndim=3)


def test_short_file_rejected(tmp_path):
    message = read_bad(tmp_path, idx_bytes(LABELS)[:-1])
    assert "need 10 data bytes, but the file has 9" in message


def test_long_file_rejected(tmp_path):
    assert "has more" in read_bad(tmp_path, idx_bytes(LABELS) + b"\x00")


def test_huge_claimed_count_rejected(tmp_path):
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 4_000_000_000, 28, 28)
    assert "but the file has 3" in read_bad(tmp_path, header + b"abc", ndim=3)


def test_empty_file_rejected(tmp_path):
    assert "ends inside the header" in read_bad(tmp_path, b"")


def test_html_saved_as_gz_rejected(tmp_path):
    message = read_bad(tmp_path, b"<!DOCTYPE html><html>Not Found</html>", name="x-idx1-ubyte.gz")
    assert "not a gzip file" in message


def test_cut_gzip_rejected(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(5000, dtype=np.uint8) % 7))
    assert "cannot read" in read_bad(tmp_path, data[: len(data) // 2], name="x-idx1-ubyte.gz")


def test_count_mismatch_rejected(tmp_path):
    images = np.zeros((5, 28, 28), np.uint8)
    write_split(tmp_path, images=images, labels=np.zeros(4, np.uint8))
    with pytest.raises(UserError, match="5 images but .* 4 labels"):
        mnist_io.load_split(tmp_path, "test")


def test_label_out_of_range_rejected(tmp_path):
    write_split(tmp_path, labels=np.array([1, 2, 10, 3, 4], np.uint8))
    with pytest.raises(UserError, match="label 10 at position 2"):
        mnist_io.load_split(tmp_path, "test")


def test_wrong_image_size_rejected(tmp_path):
    write_split(tmp_path, images=np.zeros((5, 20, 20), np.uint8))
    with pytest.raises(UserError, match="expected 28x28 images, found 20x20"):
        mnist_io.load_split(tmp_path, "test")


def test_real_files_read(mnist_dir):
    images, labels = mnist_io.load_split(mnist_dir, "test")
    assert images.shape == (10000, 28, 28)
    assert labels[0] == 7
    train_images, _ = mnist_io.load_split(mnist_dir, "train")
    assert train_images.shape == (60000, 28, 28)
