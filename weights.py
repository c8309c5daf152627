"""The network's parameters: their initialisation, and the pesos.json file that stores them.

pesos.json has the layout that the original Rust program writes with serde_json and ndarray, so a
file moves between the two programs both ways. It is a JSON object with four arrays:

    conv_filters  dim [F, 1, K, K]   F filters of K x K over one input channel
    conv_biases   dim [F]
    fc_weights    dim [10, D]        D = F * Hp * Wp, the pooled maps flattened in C order
    fc_biases     dim [10]

each stored as {"v": 1, "dim": [...], "data": [numbers in C order]}. Other top-level keys are ours
(the training settings and history under "training"); the Rust program ignores them.
"""

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from errors import UserError
from mnist_io import IMAGE_SIZE, N_CLASSES, set_default_permissions

ARRAY_KEYS = ("conv_filters", "conv_biases", "fc_weights", "fc_biases")
ARRAY_VERSION = 1
DTYPE = np.float32


def pooled_size(image_size, filter_size, pool):
    """Return the side of a pooled map: the convolution's output side divided by pool, rounded down."""
    return (image_size - filter_size + 1) // pool


def init_params(n_filters, filter_size, pool, rng, scheme="glorot"):
    """Return new parameters (filters, conv biases, dense weights, dense biases) as float32 arrays.

    scheme "glorot": weights uniform in +-sqrt(6 / (fan_in + fan_out)), biases zero. "uniform": every
    weight and bias uniform in [-1, 1), as the original program starts. rng is a numpy Generator.
    """
    side = pooled_size(IMAGE_SIZE, filter_size, pool)
    if side < 1:
        raise UserError(f"a {filter_size}x{filter_size} filter with {pool}x{pool} pooling leaves "
                        f"nothing of a {IMAGE_SIZE}x{IMAGE_SIZE} image")
    n_features = n_filters * side * side
    shapes = [(n_filters, filter_size, filter_size), (n_filters,), (N_CLASSES, n_features),
              (N_CLASSES,)]
    if scheme == "uniform":
        return tuple(rng.uniform(-1.0, 1.0, shape).astype(DTYPE) for shape in shapes)

    # Fans of a convolution count the window times the channels: 1 in, n_filters out.
    conv_limit = math.sqrt(6.0 / (filter_size**2 + n_filters * filter_size**2))
    dense_limit = math.sqrt(6.0 / (n_features + N_CLASSES))
    return (
        rng.uniform(-conv_limit, conv_limit, shapes[0]).astype(DTYPE),
        np.zeros(shapes[1], DTYPE),
        rng.uniform(-dense_limit, dense_limit, shapes[2]).astype(DTYPE),
        np.zeros(shapes[3], DTYPE),
    )


def _format_array(array):
    # str() of a numpy float32 is the shortest decimal that reads back as the same float32, which
    # is also how the Rust program writes an f32.
    data = ",".join(str(value) for value in array.ravel())
    dims = ",".join(str(d) for d in array.shape)
    return f'{{"v":{ARRAY_VERSION},"dim":[{dims}],"data":[{data}]}}'


def format_weights(params, extra=None):
    """Return the text of a pesos.json file for params, with the keys of extra added at the top level."""
    filters, conv_biases, fc_weights, fc_biases = params
    # The file keeps the input-channel axis of the Rust layout: (F, K, K) -> (F, 1, K, K).
    arrays = {
        "conv_filters": filters.reshape(filters.shape[0], 1, *filters.shape[1:]),
        "conv_biases": conv_biases,
        "fc_weights": fc_weights,
        "fc_biases": fc_biases,
    }
    for key, array in arrays.items():
        if not np.all(np.isfinite(array)):
            raise UserError(f"cannot save {key}: it contains NaN or infinite values",
                            exit_status=1)
    fields = [f'"{key}":{_format_array(np.asarray(array, DTYPE))}' for key, array in arrays.items()]
    for key, value in (extra or {}).items():
        fields.append(f"{json.dumps(key)}:{json.dumps(value, allow_nan=False)}")
    return "{" + ",\n".join(fields) + "}\n"


def write_atomic(path, text):
    """Write text to path so that path holds either its old content or all of text, never a part.

    The text goes to a temporary file in the same folder, which is flushed to disk and then renamed
    over path; a rename within one file system is atomic. On any failure, including Ctrl-C, the
    temporary file is removed and path is left as it was.
    """
    path = Path(path)
    folder = path.parent
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        set_default_permissions(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    # Make the rename itself durable: flush the folder's entry too, where the system allows it.
    try:
        folder_descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(folder_descriptor)
    except OSError:
        pass
    finally:
        os.close(folder_descriptor)


def save(path, params, extra=None):
    """Write params, and the keys of extra, to the pesos.json file at path, atomically."""
    write_atomic(path, format_weights(params, extra))


def _parse_array(path, document, key):
    """Return document[key], a serialised ndarray, as a float32 array; raise UserError if invalid."""
    if key not in document:
        raise UserError(f"{path}: key {key!r} is missing")
    value = document[key]
    if not isinstance(value, dict) or not {"v", "dim", "data"} <= value.keys():
        raise UserError(f"{path}: {key} must be an object with the keys v, dim and data")
    if value["v"] != ARRAY_VERSION:
        raise UserError(f"{path}: {key} has array version {value['v']!r}; only version "
                        f"{ARRAY_VERSION} is known")
    dims, data = value["dim"], value["data"]
    if (not isinstance(dims, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims)):
        raise UserError(f"{path}: {key}.dim must be a list of positive integers, found {dims!r}")
    if not isinstance(data, list):
        raise UserError(f"{path}: {key}.data must be a list of numbers")
    expected = math.prod(dims)
    if len(data) != expected:
        raise UserError(f"{path}: {key}.data has {len(data)} numbers, but dim {dims} needs "
                        f"{expected}")
    for position, number in enumerate(data):
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise UserError(f"{path}: {key}.data[{position}] is {number!r}, not a number")
    try:
        array = np.array(data, dtype=np.float64)
    except OverflowError:  # an integer beyond float64's range
        array = np.array([float(n) if abs(n) < 1e308 else math.inf for n in data])
    with np.errstate(over="ignore"):
        array = array.astype(DTYPE)
    if not np.all(np.isfinite(array)):
        position = int(np.argmin(np.isfinite(array)))
        raise UserError(f"{path}: {key}.data[{position}] is {data[position]!r}, which is not a "
                        f"finite float32 number")
    return array.reshape(dims)


def _infer_pool(path, filter_size, n_filters, n_features, stored_pool):
    """Return the pool size that makes n_filters maps of a 28x28 image flatten to n_features."""
    conv_side = IMAGE_SIZE - filter_size + 1
    side = math.isqrt(n_features // n_filters)
    candidates = [pool for pool in range(1, conv_side + 1)
                  if n_filters * pooled_size(IMAGE_SIZE, filter_size, pool) ** 2 == n_features]
    if stored_pool in candidates:
        return stored_pool
    # Several window sizes can give the same pooled side (24 // 5 == 24 // 6): prefer the one that
    # tiles the convolution's output exactly.
    exact = [pool for pool in candidates if conv_side % pool == 0]
    if len(candidates) == 1:
        return candidates[0]
    if len(exact) == 1:
        return exact[0]
    if not candidates:
        raise UserError(f"{path}: fc_weights has {n_features} inputs, which no pooling of "
                        f"{n_filters} maps of {conv_side}x{conv_side} gives "
                        f"(the network takes {IMAGE_SIZE}x{IMAGE_SIZE} images)")
    raise UserError(f"{path}: the pool size is ambiguous ({candidates}) for {side}x{side} pooled "
                    f"maps; add \"training\": {{\"pool\": N}} to the file to choose")


def parse_weights(path, text):
    """Return (params, pool, extra) from the text of a pesos.json file; raise UserError if invalid.

    extra holds the top-level keys other than the four arrays.
    """
    if not text.strip():
        raise UserError(f"{path}: file is empty")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column "
                        f"{error.colno}); the file may be cut short") from error
    except ValueError as error:  # an integer literal longer than Python converts (4300 digits)
        raise UserError(f"{path}: not a valid pesos.json ({error})") from error
    except RecursionError as error:
        raise UserError(f"{path}: not valid pesos.json (nested too deeply)") from error
    if not isinstance(document, dict):
        raise UserError(f"{path}: expected a JSON object with the keys {', '.join(ARRAY_KEYS)}, "
                        f"found a {type(document).__name__}")
    filters, conv_biases, fc_weights, fc_biases = (
        _parse_array(path, document, key) for key in ARRAY_KEYS)

    if filters.ndim != 4 or filters.shape[1] != 1 or filters.shape[2] != filters.shape[3]:
        raise UserError(f"{path}: conv_filters.dim must be [F, 1, K, K], found "
                        f"{list(filters.shape)}")
    n_filters, _, size, _ = filters.shape
    if size > IMAGE_SIZE:
        raise UserError(f"{path}: {size}x{size} filters do not fit a {IMAGE_SIZE}x{IMAGE_SIZE} "
                        f"image")
    if conv_biases.shape != (n_filters,):
        raise UserError(f"{path}: conv_biases.dim must be [{n_filters}] for {n_filters} filters, "
                        f"found {list(conv_biases.shape)}")
    if fc_weights.ndim != 2 or fc_weights.shape[0] != N_CLASSES:
        raise UserError(f"{path}: fc_weights.dim must be [{N_CLASSES}, D], found "
                        f"{list(fc_weights.shape)}")
    if fc_biases.shape != (N_CLASSES,):
        raise UserError(f"{path}: fc_biases.dim must be [{N_CLASSES}], found "
                        f"{list(fc_biases.shape)}")

    extra = {key: value for key, value in document.items() if key not in ARRAY_KEYS}
    training = extra.get("training")
    stored_pool = training.get("pool") if isinstance(training, dict) else None
    pool = _infer_pool(path, size, n_filters, fc_weights.shape[1], stored_pool)
    params = (filters.reshape(n_filters, size, size), conv_biases, fc_weights, fc_biases)
    return params, pool, extra


def load(path):
    """Read the pesos.json file at path and return (params, pool, extra); see parse_weights."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise UserError(f"{path}: file not found") from error
    except IsADirectoryError as error:
        raise UserError(f"{path} is a folder, not a weights file") from error
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not a text file ({error.reason} at byte {error.start})") from error
    except OSError as error:
        raise UserError(f"{path}: cannot read: {error.strerror}") from error
    return parse_weights(path, text)
