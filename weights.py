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
from i18n import _
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
        raise UserError(_("a {size}x{size} filter with {pool}x{pool} pooling leaves nothing of a "
                          "{image}x{image} image").format(size=filter_size, pool=pool,
                                                          image=IMAGE_SIZE))
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
            raise UserError(_("cannot save {key}: it contains NaN or infinite values").format(
                key=key),
                            exit_status=1)
    fields = [f'"{key}":{_format_array(np.asarray(array, DTYPE))}' for key, array in arrays.items()]
    for key, value in (extra or {}).items():
        fields.append(f"{json.dumps(key)}:{json.dumps(value, allow_nan=False)}")
    return "{" + ",\n".join(fields) + "}\n"


def write_atomic(path, text):
    """Write text to path so that path contains either its old content or all of text, never a part.

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


def _short_repr(value):
    # A number of thousands of digits would make the message unreadable.
    text = repr(value)
    return text if len(text) <= 40 else text[:20] + "..." + text[-10:]


def _parse_array(path, document, key):
    """Return document[key], a serialised ndarray, as a float32 array; raise UserError if invalid."""
    if key not in document:
        raise UserError(_("{path}: key {key} is missing").format(path=path, key=repr(key)))
    value = document[key]
    if not isinstance(value, dict) or not {"v", "dim", "data"} <= value.keys():
        raise UserError(_("{path}: {key} must be an object with the keys v, dim and data").format(
            path=path, key=key))
    if value["v"] != ARRAY_VERSION:
        raise UserError(_("{path}: {key} has array version {found}; only version {known} is "
                          "known").format(path=path, key=key, found=repr(value["v"]),
                                          known=ARRAY_VERSION))
    dims, data = value["dim"], value["data"]
    if (not isinstance(dims, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims)):
        raise UserError(_("{path}: {key}.dim must be a list of positive integers, found {dims}")
                        .format(path=path, key=key, dims=repr(dims)))
    if not isinstance(data, list):
        raise UserError(_("{path}: {key}.data must be a list of numbers").format(path=path,
                                                                                  key=key))
    expected = math.prod(dims)
    if len(data) != expected:
        raise UserError(_("{path}: {key}.data has {found} numbers, but dim {dims} needs "
                          "{expected}").format(path=path, key=key, found=len(data), dims=dims,
                                               expected=expected))
    for position, number in enumerate(data):
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise UserError(_("{path}: {key}.data[{position}] is {value}, not a number").format(
                path=path, key=key, position=position, value=repr(number)))
    try:
        array = np.array(data, dtype=np.float64)
    except OverflowError:  # an integer beyond float64's range
        array = np.array([float(n) if abs(n) < 1e308 else math.inf for n in data])
    with np.errstate(over="ignore"):
        array = array.astype(DTYPE)
    if not np.all(np.isfinite(array)):
        position = int(np.argmin(np.isfinite(array)))
        raise UserError(_("{path}: {key}.data[{position}] is {value}, which is not a finite "
                          "float32 number").format(path=path, key=key, position=position,
                                                   value=_short_repr(data[position])))
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
        raise UserError(_("{path}: fc_weights has {inputs} inputs, which no pooling of {maps} "
                          "maps of {side}x{side} gives (the network takes {image}x{image} "
                          "images)").format(path=path, inputs=n_features, maps=n_filters,
                                            side=conv_side, image=IMAGE_SIZE))
    raise UserError(_("{path}: the pool size is ambiguous ({candidates}) for {side}x{side} pooled "
                      "maps; add {hint} to the file to choose").format(
                          path=path, candidates=candidates, side=side,
                          hint='"training": {"pool": N}'))


def describe_json_value(value):
    """Return what kind of JSON value value is, in words of the user's language."""
    if isinstance(value, list):
        return _("a list")
    if isinstance(value, str):
        return _("a string")
    if isinstance(value, bool):
        return _("true or false")
    if isinstance(value, (int, float)):
        return _("a number")
    return _("null")


def parse_weights(path, text):
    """Return (params, pool, extra) from the text of a pesos.json file; raise UserError if invalid.

    extra contains the top-level keys other than the four arrays.
    """
    if not text.strip():
        raise UserError(_("{path}: file is empty").format(path=path))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        # error.msg is one of the json module's fixed phrases; the catalog translates them.
        raise UserError(_("{path}: not valid JSON ({reason} at line {line}, column {column}); "
                          "the file may be cut short").format(
                              path=path, reason=_(error.msg), line=error.lineno,
                              column=error.colno)) from error
    except ValueError as error:  # an integer literal longer than Python converts (4300 digits)
        raise UserError(_("{path}: not a valid pesos.json ({reason})").format(
            path=path, reason=error)) from error
    except RecursionError as error:
        raise UserError(_("{path}: not a valid pesos.json (nested too deeply)").format(
            path=path)) from error
    if not isinstance(document, dict):
        raise UserError(_("{path}: expected a JSON object with the keys {keys}, found {kind}")
                        .format(path=path, keys=", ".join(ARRAY_KEYS),
                                kind=describe_json_value(document)))
    filters, conv_biases, fc_weights, fc_biases = (
        _parse_array(path, document, key) for key in ARRAY_KEYS)

    if filters.ndim != 4 or filters.shape[1] != 1 or filters.shape[2] != filters.shape[3]:
        raise UserError(_("{path}: conv_filters.dim must be [F, 1, K, K], found {dims}").format(
            path=path, dims=list(filters.shape)))
    n_filters, size = filters.shape[0], filters.shape[2]
    if size > IMAGE_SIZE:
        raise UserError(_("{path}: {size}x{size} filters do not fit a {image}x{image} image")
                        .format(path=path, size=size, image=IMAGE_SIZE))
    if conv_biases.shape != (n_filters,):
        raise UserError(_("{path}: conv_biases.dim must be [{filters}] for {filters} filters, "
                          "found {dims}").format(path=path, filters=n_filters,
                                                 dims=list(conv_biases.shape)))
    if fc_weights.ndim != 2 or fc_weights.shape[0] != N_CLASSES:
        raise UserError(_("{path}: fc_weights.dim must be [{classes}, D], found {dims}").format(
            path=path, classes=N_CLASSES, dims=list(fc_weights.shape)))
    if fc_biases.shape != (N_CLASSES,):
        raise UserError(_("{path}: fc_biases.dim must be [{classes}], found {dims}").format(
            path=path, classes=N_CLASSES, dims=list(fc_biases.shape)))

    extra = {key: value for key, value in document.items() if key not in ARRAY_KEYS}
    training = extra.get("training")
    stored_pool = training.get("pool") if isinstance(training, dict) else None
    pool = _infer_pool(path, size, n_filters, fc_weights.shape[1], stored_pool)
    params = (filters.reshape(n_filters, size, size), conv_biases, fc_weights, fc_biases)
    return params, pool, extra


def training_history(extra):
    """Return the per-epoch history stored in a weights file's extra keys, or [] if it has none."""
    training = extra.get("training")
    history = training.get("history") if isinstance(training, dict) else None
    if isinstance(history, list) and all(isinstance(entry, dict) for entry in history):
        return history
    return []


def load(path):
    """Read the pesos.json file at path and return (params, pool, extra); see parse_weights."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise UserError(_("{path}: file not found").format(path=path)) from error
    except IsADirectoryError as error:
        raise UserError(_("{path} is a folder, not a weights file").format(path=path)) from error
    except UnicodeDecodeError as error:
        raise UserError(_("{path}: not a text file (byte {position} is not UTF-8)").format(
            path=path, position=error.start)) from error
    except OSError as error:
        raise UserError(_("{path}: cannot read: {reason}").format(
            path=path, reason=_(error.strerror or str(error)))) from error
    return parse_weights(path, text)
