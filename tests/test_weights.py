"""pesos.json: round trips, the Rust program's layout, and rejected files."""

import json

import numpy as np
import pytest

import weights
from errors import UserError


def random_params(n_filters=8, size=3, pool=2, seed=0):
    return weights.init_params(n_filters, size, pool, np.random.default_rng(seed))


def rust_layout(params):
    """Return params as the Rust program's serde_json writes them, built without weights.py."""
    filters, conv_biases, fc_weights, fc_biases = params
    def array(values, dims):
        return {"v": 1, "dim": list(dims), "data": [float(x) for x in values.ravel()]}
    return {
        "conv_filters": array(filters, (filters.shape[0], 1) + filters.shape[1:]),
        "conv_biases": array(conv_biases, conv_biases.shape),
        "fc_weights": array(fc_weights, fc_weights.shape),
        "fc_biases": array(fc_biases, fc_biases.shape),
    }


def test_round_trip_is_exact(tmp_path):
    params = random_params()
    path = tmp_path / "pesos.json"
    weights.save(path, params, {"training": {"epochs": 3}})
    loaded, pool, extra = weights.load(path)
    assert pool == 2
    assert extra == {"training": {"epochs": 3}}
    for original, read in zip(params, loaded):
        assert read.dtype == np.float32
        np.testing.assert_array_equal(read, original)


def test_saved_file_has_rust_layout(tmp_path):
    params = random_params()
    path = tmp_path / "pesos.json"
    weights.save(path, params)
    document = json.loads(path.read_text())
    assert document["conv_filters"]["v"] == 1
    assert document["conv_filters"]["dim"] == [8, 1, 3, 3]
    assert document["fc_weights"]["dim"] == [10, 1352]
    assert document["fc_biases"]["dim"] == [10]
    assert np.float32(document["fc_weights"]["data"][5]) == params[2].ravel()[5]


@pytest.mark.parametrize("n_filters, size, pool", [(8, 3, 2), (6, 5, 3), (4, 7, 2)])
def test_rust_file_loads_with_architecture(tmp_path, n_filters, size, pool):
    params = random_params(n_filters, size, pool)
    path = tmp_path / "pesos.json"
    path.write_text(json.dumps(rust_layout(params)))
    loaded, loaded_pool, extra = weights.load(path)
    assert loaded_pool == pool
    assert loaded[0].shape == (n_filters, size, size)
    assert extra == {}
    for original, read in zip(params, loaded):
        np.testing.assert_array_equal(read, original)


def test_integer_values_accepted(tmp_path):
    document = rust_layout(random_params())
    document["conv_biases"]["data"] = [0] * 8
    path = tmp_path / "pesos.json"
    path.write_text(json.dumps(document))
    assert weights.load(path)[0][1].tolist() == [0.0] * 8


def mutate(document, key, field, value):
    document[key][field] = value
    return document


BAD_FILES = {
    "empty": ("", "file is empty"),
    "not json": ("hello", "not valid JSON"),
    "cut short": ('{"conv_filters": {"v": 1, "dim": [8, 1, 3', "not valid JSON"),
    "list": ("[1, 2]", "expected a JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_text_rejected(tmp_path, case):
    text, expected = BAD_FILES[case]
    path = tmp_path / "pesos.json"
    path.write_text(text)
    with pytest.raises(UserError, match=expected):
        weights.load(path)
    assert path.read_text() == text


BAD_DOCUMENTS = {
    "missing key": (lambda d: d.pop("fc_biases") and d, "'fc_biases' is missing"),
    "unknown version": (lambda d: mutate(d, "conv_biases", "v", 2), "array version 2"),
    "length mismatch": (lambda d: mutate(d, "conv_biases", "data", [0.0] * 7),
                        "has 7 numbers, but dim \\[8\\] needs 8"),
    "string value": (lambda d: mutate(d, "fc_biases", "data", ["x"] + [0.0] * 9),
                     "fc_biases.data\\[0\\] is 'x'"),
    "nan": (lambda d: mutate(d, "fc_biases", "data", [float("nan")] + [0.0] * 9),
            "not a finite"),
    "too large for float32": (lambda d: mutate(d, "fc_biases", "data", [1e39] + [0.0] * 9),
                              "not a finite float32"),
    "bias shape": (lambda d: mutate(d, "conv_biases", "dim", [2, 4]), "conv_biases.dim must be"),
    "dense shape": (lambda d: mutate(mutate(d, "fc_weights", "dim", [10, 1351]), "fc_weights",
                                     "data", [0.0] * 13510), "1351 inputs"),
    "filter shape": (lambda d: mutate(d, "conv_filters", "dim", [8, 3, 3]),
                     "must be \\[F, 1, K, K\\]"),
    "ten classes": (lambda d: mutate(mutate(d, "fc_biases", "dim", [5]), "fc_biases", "data",
                                     [0.0] * 5), "fc_biases.dim must be \\[10\\]"),
}


@pytest.mark.parametrize("case", sorted(BAD_DOCUMENTS))
def test_bad_document_rejected(tmp_path, case):
    change, expected = BAD_DOCUMENTS[case]
    text = json.dumps(change(rust_layout(random_params())))
    path = tmp_path / "pesos.json"
    path.write_text(text)
    with pytest.raises(UserError, match=expected):
        weights.load(path)
    assert path.read_text() == text


def test_failed_save_keeps_old_file(tmp_path):
    path = tmp_path / "pesos.json"
    path.write_text("old content")
    params = random_params()
    broken = (params[0], params[1], params[2].copy(), params[3])
    broken[2][0, 0] = np.nan
    with pytest.raises(UserError):
        weights.save(path, broken)
    assert path.read_text() == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["pesos.json"]


def test_interrupted_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "pesos.json"
    path.write_text("old content")

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(weights.os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        weights.save(path, random_params())
    assert path.read_text() == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["pesos.json"]
