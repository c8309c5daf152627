"""Property-based tests: the IDX reader and the pesos.json loader, given random bytes and random
damage to valid files, either return something valid or raise UserError, and nothing else."""

import gzip
import json
import math
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mnist_io
import weights
from errors import UserError

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

VALID_IDX = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 3, 4) + bytes(range(24))


def check_idx(path, ndim):
    """Read path; if the reader accepts it, the array must match the file exactly."""
    try:
        array = mnist_io.read_idx(path, ndim)
    except UserError:
        return
    raw = path.read_bytes()
    if raw[:2] == mnist_io.GZIP_MAGIC:
        raw = gzip.decompress(raw)
    assert array.dtype == np.uint8
    assert array.ndim == ndim
    header = bytes([0, 0, 8, ndim]) + struct.pack(f">{ndim}I", *array.shape)
    assert raw == header + array.tobytes()


@SETTINGS
@given(data=st.binary(max_size=80), ndim=st.sampled_from([1, 3]), name=st.sampled_from(
    ["x-idx3-ubyte", "x-idx3-ubyte.gz"]))
def test_idx_random_bytes(tmp_path, data, ndim, name):
    path = tmp_path / name
    path.write_bytes(data)
    check_idx(path, ndim)


def mutate(data, kind, position, value, length):
    position %= len(data) + 1
    if kind == "flip" and position < len(data):
        return data[:position] + bytes([data[position] ^ (value or 1)]) + data[position + 1:]
    if kind == "delete":
        return data[:position] + data[position + length:]
    if kind == "insert":
        return data[:position] + bytes([value]) * length + data[position:]
    return data[:position]  # truncate


MUTATION = st.tuples(st.sampled_from(["flip", "delete", "insert", "truncate"]),
                     st.integers(0, 10_000), st.integers(0, 255), st.integers(1, 8))


@SETTINGS
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3), compress=st.booleans())
def test_idx_damaged_file(tmp_path, mutations, compress):
    data = gzip.compress(VALID_IDX) if compress else VALID_IDX
    for mutation in mutations:
        data = mutate(data, *mutation)
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(data)
    check_idx(path, 3)


def valid_weights_text():
    params = weights.init_params(2, 3, 2, np.random.default_rng(0))
    return weights.format_weights(params, {"training": {"pool": 2}})


VALID_TEXT = valid_weights_text()


def check_weights(text):
    """Parse text; if the loader accepts it, the parameters must form a valid network."""
    try:
        params, pool, _ = weights.parse_weights("pesos.json", text)
    except UserError:
        return
    filters, conv_biases, fc_weights, fc_biases = params
    n_filters, size, width = filters.shape
    assert size == width
    assert conv_biases.shape == (n_filters,)
    side = weights.pooled_size(mnist_io.IMAGE_SIZE, size, pool)
    assert fc_weights.shape == (mnist_io.N_CLASSES, n_filters * side * side)
    assert fc_biases.shape == (mnist_io.N_CLASSES,)
    for array in params:
        assert array.dtype == weights.DTYPE
        assert np.all(np.isfinite(array))


@SETTINGS
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_weights_damaged_text(mutations):
    data = VALID_TEXT.encode()
    for mutation in mutations:
        data = mutate(data, *mutation)
    check_weights(data.decode("utf-8", errors="replace"))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**40, 10**40) | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5),
                                                                      children, max_size=4),
    max_leaves=10)


@SETTINGS
@given(choice=st.data())
def test_weights_replaced_values(choice):
    document = json.loads(VALID_TEXT)
    # Walk down a random path of keys and indices, and replace the value where it stops.
    parent, key = None, None
    node = document
    for _ in range(choice.draw(st.integers(1, 4))):
        if isinstance(node, dict) and node:
            child_key = choice.draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            child_key = choice.draw(st.integers(0, len(node) - 1))
        else:
            break
        parent, key, node = node, child_key, node[child_key]
    if parent is not None:
        parent[key] = choice.draw(JSON_VALUES)
    check_weights(json.dumps(document))


@SETTINGS
@given(key=st.sampled_from(weights.ARRAY_KEYS), field=st.sampled_from(["data", "dim", "v"]),
       position=st.integers(0, 10_000),
       value=st.floats() | st.integers(-10**40, 10**40) | JSON_VALUES)
def test_weights_replaced_array_element(key, field, position, value):
    document = json.loads(VALID_TEXT)
    target = document[key]
    if field == "v":
        target["v"] = value
    else:
        target[field][position % len(target[field])] = value
    check_weights(json.dumps(document))


@SETTINGS
@given(text=st.text(max_size=200))
def test_weights_random_text(text):
    check_weights(text)


def test_valid_text_accepted():
    params, pool, _ = weights.parse_weights("pesos.json", VALID_TEXT)
    assert pool == 2
    assert math.prod(params[2].shape) == 10 * 2 * 13 * 13
