"""Each kernel's gradients against central finite differences, in float64."""

import numpy as np
import pytest
from numba import njit

import kernels

STEP = 1e-6
TOLERANCE = 1e-6


def numeric_gradient(loss, array):
    """Return d loss() / d array by central differences, perturbing array in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + STEP
        above = loss()
        array[index] = saved - STEP
        below = loss()
        array[index] = saved
        grad[index] = (above - below) / (2 * STEP)
    return grad


def conv_output(image, filters, biases):
    size = filters.shape[1]
    out = np.empty((filters.shape[0], image.shape[0] - size + 1, image.shape[1] - size + 1))
    kernels.conv_forward(image, filters, biases, out)
    return out


def pooled_output(x, pool):
    shape = (x.shape[0], x.shape[1] // pool, x.shape[2] // pool)
    out = np.empty(shape)
    argmax = np.empty((2,) + shape, np.int64)
    kernels.maxpool_forward(x, pool, out, argmax)
    return out, argmax


@pytest.mark.parametrize("size", [3, 5])
def test_conv_forward_matches_direct_sum(size):
    rng = np.random.default_rng(1)
    image = rng.random((12, 11))
    filters = rng.standard_normal((4, size, size))
    biases = rng.standard_normal(4)
    out = conv_output(image, filters, biases)
    for f, i, j in np.ndindex(out.shape):
        expected = biases[f] + np.sum(filters[f] * image[i:i + size, j:j + size])
        assert out[f, i, j] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("size", [3, 5])
def test_conv_backward_finite_differences(size):
    rng = np.random.default_rng(2)
    image = rng.random((10, 9))
    filters = rng.standard_normal((3, size, size))
    biases = rng.standard_normal(3)
    grad_out = rng.standard_normal((3, 10 - size + 1, 9 - size + 1))

    def loss():
        return np.sum(grad_out * conv_output(image, filters, biases))

    grad_filters = np.empty_like(filters)
    grad_biases = np.empty_like(biases)
    kernels.conv_backward(image, grad_out, grad_filters, grad_biases)
    np.testing.assert_allclose(grad_filters, numeric_gradient(loss, filters), atol=TOLERANCE)
    np.testing.assert_allclose(grad_biases, numeric_gradient(loss, biases), atol=TOLERANCE)


@pytest.mark.parametrize("pool", [2, 3])
def test_maxpool_forward_values_and_argmax(pool):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 8))
    out, argmax = pooled_output(x, pool)
    assert out.shape == (2, 7 // pool, 8 // pool)
    for f, r, c in np.ndindex(out.shape):
        window = x[f, r * pool:(r + 1) * pool, c * pool:(c + 1) * pool]
        assert out[f, r, c] == window.max()
        assert window[argmax[0, f, r, c], argmax[1, f, r, c]] == window.max()


def test_maxpool_first_maximum_wins_tie():
    x = np.array([[[1.0, 5.0], [5.0, 5.0]]])
    _, argmax = pooled_output(x, 2)
    assert argmax[0, 0, 0, 0] == 0  # row
    assert argmax[1, 0, 0, 0] == 1  # column


@pytest.mark.parametrize("pool", [2, 3])
def test_maxpool_backward_finite_differences(pool):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 7))
    grad_out = rng.standard_normal((2, 6 // pool, 7 // pool))
    _, argmax = pooled_output(x, pool)

    def loss():
        return np.sum(grad_out * pooled_output(x, pool)[0])

    grad_in = np.empty_like(x)
    kernels.maxpool_backward(grad_out, argmax, pool, grad_in)
    np.testing.assert_allclose(grad_in, numeric_gradient(loss, x), atol=TOLERANCE)


@pytest.mark.parametrize("size, pool", [(3, 2), (5, 3)])
def test_conv_backward_at_argmax_finite_differences(size, pool):
    rng = np.random.default_rng(5)
    image = rng.random((14, 14))
    filters = rng.standard_normal((3, size, size))
    biases = rng.standard_normal(3)
    conv_side = 14 - size + 1
    grad_pooled = rng.standard_normal((3, conv_side // pool, conv_side // pool))

    def loss():
        return np.sum(grad_pooled * pooled_output(conv_output(image, filters, biases), pool)[0])

    _, argmax = pooled_output(conv_output(image, filters, biases), pool)
    grad_filters = np.empty_like(filters)
    grad_biases = np.empty_like(biases)
    kernels.conv_backward_at_argmax(image, grad_pooled, argmax, pool, grad_filters, grad_biases)
    np.testing.assert_allclose(grad_filters, numeric_gradient(loss, filters), atol=TOLERANCE)
    np.testing.assert_allclose(grad_biases, numeric_gradient(loss, biases), atol=TOLERANCE)


def dense_output(x, weights, biases):
    out = np.empty(weights.shape[0])
    kernels.dense_forward(x, weights, biases, out)
    return out


def test_dense_forward_is_sigmoid_of_affine():
    rng = np.random.default_rng(6)
    x, weights, biases = rng.random(7), rng.standard_normal((4, 7)), rng.standard_normal(4)
    expected = 1 / (1 + np.exp(-(weights @ x + biases)))
    np.testing.assert_allclose(dense_output(x, weights, biases), expected, rtol=1e-12)


def test_dense_backward_finite_differences():
    rng = np.random.default_rng(7)
    x, weights, biases = rng.random(6), rng.standard_normal((4, 6)), rng.standard_normal(4)
    grad_out = rng.standard_normal(4)

    def loss():
        return np.sum(grad_out * dense_output(x, weights, biases))

    out = dense_output(x, weights, biases)
    grad_weights, grad_biases, grad_x = np.empty_like(weights), np.empty(4), np.empty(6)
    kernels.dense_backward(x, weights, out, grad_out, grad_weights, grad_biases, grad_x)
    np.testing.assert_allclose(grad_weights, numeric_gradient(loss, weights), atol=TOLERANCE)
    np.testing.assert_allclose(grad_biases, numeric_gradient(loss, biases), atol=TOLERANCE)
    np.testing.assert_allclose(grad_x, numeric_gradient(loss, x), atol=TOLERANCE)


def test_dense_backward_sgd_matches_backward_then_step():
    rng = np.random.default_rng(8)
    x, weights, biases = rng.random(6), rng.standard_normal((4, 6)), rng.standard_normal(4)
    grad_out = rng.standard_normal(4)
    out = dense_output(x, weights, biases)
    grad_weights, grad_biases, grad_x = np.empty_like(weights), np.empty(4), np.empty(6)
    kernels.dense_backward(x, weights, out, grad_out, grad_weights, grad_biases, grad_x)

    new_weights, new_biases, sgd_grad_x = weights.copy(), biases.copy(), np.empty(6)
    kernels.dense_backward_sgd(x, new_weights, new_biases, out, grad_out, 0.5, sgd_grad_x)
    np.testing.assert_allclose(sgd_grad_x, grad_x, rtol=1e-12)
    np.testing.assert_allclose(new_weights, weights - 0.5 * grad_weights, rtol=1e-12)
    np.testing.assert_allclose(new_biases, biases - 0.5 * grad_biases, rtol=1e-12)


# (3, 2) runs the fast kernels for 3 x 3 filters and 2 x 2 windows. The others run the general ones.
@pytest.mark.parametrize("size, pool", [(3, 2), (5, 2), (3, 3)])
def test_whole_network_step_follows_loss_gradient(size, pool):
    # One SGD step with rate lr moves every parameter by -lr times the gradient at the old
    # parameters, so (before - after) / lr must equal the loss's finite-difference gradient.
    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, (1, 13, 12), dtype=np.uint8)
    labels = np.array([3], np.uint8)
    n_inputs = 2 * ((13 - size + 1) // pool) * ((12 - size + 1) // pool)
    params = (rng.standard_normal((2, size, size)) * 0.5, rng.standard_normal(2) * 0.1,
              rng.standard_normal((10, n_inputs)) * 0.3, rng.standard_normal(10) * 0.1)
    assert kernels.uses_patches(params[0], pool) == ((size, pool) == (3, 2))

    def loss():
        work = kernels.allocate_forward_buffers(params, pool, 13, 12)
        kernels.forward_pass(images[0], params, pool, work)
        return 0.5 * np.sum((work[4] - np.eye(10)[3]) ** 2)

    expected = [numeric_gradient(loss, array) for array in params]
    before = [array.copy() for array in params]
    work = kernels.allocate_workspace(params, pool, 13, 12)
    kernels.train_samples(images, labels, np.array([0]), params, pool, 1e-3, work)
    for old, new, grad in zip(before, params, expected):
        np.testing.assert_allclose((old - new) / 1e-3, grad, atol=1e-7)


def fast_output(pixels, filters, biases):
    """Return the pooled pre-activations and argmax of the fast 3 x 3, 2 x 2 kernels."""
    pooled_shape = (filters.shape[0], (pixels.shape[0] - 2) // 2, (pixels.shape[1] - 2) // 2)
    patches = np.empty((4, 4) + pooled_shape[1:], filters.dtype)
    kernels.gather_patches(pixels, patches)
    pooled = np.empty(pooled_shape, filters.dtype)
    argmax = np.empty((2,) + pooled_shape, np.int32)
    kernels.conv3x3_maxpool2x2(patches, filters, biases, pooled, argmax)
    return pooled, argmax, patches


def test_gather_patches_copies_window_pixels():
    pixels = np.random.default_rng(10).integers(0, 256, (15, 14), dtype=np.uint8)
    patches = np.empty((4, 4, 6, 6))
    kernels.gather_patches(pixels, patches)
    for r, c in np.ndindex(6, 6):
        np.testing.assert_array_equal(patches[:, :, r, c],
                                      pixels[2 * r:2 * r + 4, 2 * c:2 * c + 4] / 255.0)


@pytest.mark.parametrize("shape", [(12, 12), (15, 14)])
def test_fast_forward_matches_conv_then_maxpool(shape):
    rng = np.random.default_rng(11)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    filters, biases = rng.standard_normal((5, 3, 3)), rng.standard_normal(5)
    pooled, argmax, _ = fast_output(pixels, filters, biases)
    expected, expected_argmax = pooled_output(conv_output(pixels / 255.0, filters, biases), 2)
    np.testing.assert_allclose(pooled, expected, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(argmax, expected_argmax)


def test_fast_forward_first_maximum_wins_tie():
    # With only the centre tap of the filter, the window's four outputs are the four centre
    # pixels of its 4 x 4 patch. Three of them tie for the maximum, and the first in row-major
    # order wins.
    pixels = np.zeros((4, 4), np.uint8)
    pixels[1:3, 1:3] = [[5, 7], [7, 7]]
    filters = np.zeros((1, 3, 3))
    filters[0, 1, 1] = 1.0
    pooled, argmax, _ = fast_output(pixels, filters, np.zeros(1))
    assert pooled[0, 0, 0] == 7 / 255
    assert argmax[0, 0, 0, 0] == 0  # row
    assert argmax[1, 0, 0, 0] == 1  # column

    _, argmax, _ = fast_output(pixels, np.zeros((1, 3, 3)), np.zeros(1))  # four equal outputs
    assert argmax[0, 0, 0, 0] == 0
    assert argmax[1, 0, 0, 0] == 0


def test_fast_backward_finite_differences():
    rng = np.random.default_rng(12)
    pixels = rng.integers(0, 256, (13, 12), dtype=np.uint8)
    filters, biases = rng.standard_normal((3, 3, 3)), rng.standard_normal(3)
    grad_pooled = rng.standard_normal((3, 5, 5))

    def loss():
        return np.sum(grad_pooled * fast_output(pixels, filters, biases)[0])

    _, argmax, patches = fast_output(pixels, filters, biases)
    grad_filters, grad_biases = np.empty_like(filters), np.empty_like(biases)
    kernels.conv3x3_maxpool2x2_backward(patches, grad_pooled, argmax, grad_filters, grad_biases)
    np.testing.assert_allclose(grad_filters, numeric_gradient(loss, filters), atol=TOLERANCE)
    np.testing.assert_allclose(grad_biases, numeric_gradient(loss, biases), atol=TOLERANCE)

    slow_filters, slow_biases = np.empty_like(filters), np.empty_like(biases)
    kernels.conv_backward_at_argmax(pixels / 255.0, grad_pooled, argmax, 2, slow_filters,
                                    slow_biases)
    np.testing.assert_allclose(grad_filters, slow_filters, rtol=1e-12)
    np.testing.assert_allclose(grad_biases, slow_biases, rtol=1e-12)


def test_sigmoid_extreme_inputs_stay_finite():
    for dtype in (np.float32, np.float64):
        for x in (-1e30, -1000.0, -88.0, 0.0, 88.0, 1000.0, 1e30, np.inf, -np.inf):
            value = kernels.sigmoid(dtype(x))
            assert 0.0 <= value <= 1.0, (dtype, x, value)
        assert kernels.sigmoid(dtype(0.0)) == 0.5


@njit
def exp_array(x, out):
    for i in range(x.shape[0]):
        out[i] = kernels.exp(x[i])


def test_float32_exp_within_two_ulp():
    x = np.linspace(-87, 88, 200001).astype(np.float32)
    values = np.empty_like(x)
    exp_array(x, values)
    expected = np.exp(x.astype(np.float64))
    relative = np.abs(values - expected) / expected
    assert relative.max() < 2 * np.finfo(np.float32).eps


def test_cache_falls_back_to_temporary_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels.config, "CACHE_DIR", "")
    monkeypatch.setattr(kernels.tempfile, "gettempdir", lambda: str(tmp_path))
    answers = iter([False, True])
    monkeypatch.setattr(kernels, "_cache_available", lambda: next(answers))
    assert kernels._choose_cache() is True
    assert kernels.config.CACHE_DIR.startswith(str(tmp_path))


def test_cache_disabled_with_notice(monkeypatch, capsys):
    monkeypatch.setattr(kernels.config, "CACHE_DIR", "")
    monkeypatch.setattr(kernels, "_cache_available", lambda: False)
    assert kernels._choose_cache() is False
    assert kernels.config.CACHE_DIR == ""
    assert "compiled at every run" in capsys.readouterr().err
