"""The network written plainly in NumPy, one sample at a time, as the tests' reference.

It follows the description of the network literally: sigmoid after the convolution, then max-pool
of the activations, and separate backward and update steps. It shares no code with kernels.py.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def forward(image, params, pool):
    """Return every intermediate value of the forward pass for image (H, W) in [0, 1]."""
    filters, conv_biases, fc_weights, fc_biases = params
    size = filters.shape[1]
    windows = sliding_window_view(image, (size, size))  # (Ho, Wo, K, K)
    conv = np.einsum("ijuv,fuv->fij", windows, filters) + conv_biases[:, None, None]
    activated = sigmoid(conv)
    n_filters, height, width = activated.shape
    side_h, side_w = height // pool, width // pool
    blocks = activated[:, :side_h * pool, :side_w * pool]
    blocks = blocks.reshape(n_filters, side_h, pool, side_w, pool).transpose(0, 1, 3, 2, 4)
    blocks = blocks.reshape(n_filters, side_h, side_w, pool * pool)
    position = np.argmax(blocks, axis=-1)  # first maximum wins, as required
    pooled = np.take_along_axis(blocks, position[..., None], axis=-1)[..., 0]
    flat = pooled.reshape(-1)
    output = sigmoid(fc_weights @ flat + fc_biases)
    return {"windows": windows, "activated": activated, "position": position, "flat": flat,
            "output": output}


def train_step(image, label, params, pool, learning_rate):
    """Apply one SGD step for one sample to params in place; return the loss mean((o - t)**2)."""
    filters, conv_biases, fc_weights, fc_biases = params
    values = forward(image, params, pool)
    output, flat = values["output"], values["flat"]
    target = np.zeros_like(output)
    target[label] = 1

    # Loss 0.5 * sum((o - t)**2): its gradient at the output is o - t.
    delta_out = (output - target) * output * (1 - output)
    grad_fc_weights = np.outer(delta_out, flat)
    grad_fc_biases = delta_out
    grad_flat = fc_weights.T @ delta_out  # with the weights before this step's update

    # Route each pooled gradient to its window's maximum, then through the sigmoid.
    n_filters, height, width = values["activated"].shape
    grad_pooled = grad_flat.reshape(values["position"].shape)
    grad_activated = np.zeros((n_filters, height, width), dtype=flat.dtype)
    for f, r, c in np.ndindex(grad_pooled.shape):
        i, j = divmod(int(values["position"][f, r, c]), pool)
        grad_activated[f, r * pool + i, c * pool + j] = grad_pooled[f, r, c]
    grad_conv = grad_activated * values["activated"] * (1 - values["activated"])
    grad_filters = np.einsum("fij,ijuv->fuv", grad_conv, values["windows"])
    grad_conv_biases = grad_conv.sum(axis=(1, 2))

    fc_weights -= learning_rate * grad_fc_weights
    fc_biases -= learning_rate * grad_fc_biases
    filters -= learning_rate * grad_filters
    conv_biases -= learning_rate * grad_conv_biases
    return float(np.mean((output - target) ** 2))
