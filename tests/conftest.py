"""Shared fixtures: the project's modules on the import path, and the real MNIST folder."""

import os
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

# The tests check English messages, whatever the machine's locale; the tests of the Portuguese
# catalog set their own locale variables.
os.environ["LANGUAGE"] = "en"

import mnist_io  # noqa: E402  (needs the path above)

# No test may reach a real mirror: unless a test names its own mirrors, downloads look in a folder
# that does not exist and fail at once.
os.environ[mnist_io.MIRRORS_VARIABLE] = "file:///nonexistent-mnist-mirror/"


@pytest.fixture(scope="session")
def mnist_dir():
    """The programs' data folder ($MNIST_DATA_DIR, else ./data), when it contains the MNIST files.

    Without them the test is skipped, or fails when REQUIRE_MNIST=1, as CI sets.
    """
    folder = mnist_io.resolve_data_dir(None)
    if all(mnist_io.find_idx_file(folder, name) for name in mnist_io.FILE_NAMES):
        return folder.resolve()
    reason = (f"real MNIST data not found in {folder}/: run train.py once to download it, or set "
              f"{mnist_io.DATA_DIR_VARIABLE} to a folder with the four MNIST files")
    if os.environ.get("REQUIRE_MNIST") == "1":
        pytest.fail(reason)
    pytest.skip(reason)
