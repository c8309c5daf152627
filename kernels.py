"""Compiled kernels of the network: each layer's forward and backward pass, and the loops that train
and evaluate the whole network on many images without returning to Python.

Shapes, with the defaults in brackets:
    image      (H, W)          [28, 28], uint8 pixels scaled here to [0, 1]
    filters    (F, K, K)       [8, 3, 3], one input channel
    conv out   (F, Ho, Wo)     Ho = H - K + 1 [8, 26, 26], pre-activations
    pooled     (F, Hp, Wp)     Hp = Ho // P [8, 13, 13], flattened in C order to D = F * Hp * Wp [1352]
    argmax     (2, F, Hp, Wp)  row and column of each window's maximum inside the window
    patches    (4, 4, Hp, Wp)  the 4 x 4 pixels under each 2 x 2 window, for 3 x 3 filters only
    dense      weights (C, D), biases (C,), outputs (C,) with C = 10 classes

The parameters travel as one tuple (filters, conv biases, dense weights, dense biases). The kernels
compile without type signatures, so the tests run them in float64; real runs hand them float32.
They trust their inputs: shapes and dtypes are checked by the Python code that calls them. Every
kernel writes its results into arrays that the caller allocated and that its docstring names, so the
training loop allocates nothing per sample.

Every kernel uses error_model="numpy": a float division by zero gives inf instead of raising, which
removes a branch from each division and lets LLVM vectorise the loops that divide.
"""

import math
import os
import sys
import tempfile

import numpy as np
from numba import config, njit, prange, types
from numba.core.caching import FunctionCache
from numba.extending import overload

from mnist_io import PIXEL_MAX


def _cache_available():
    """Return whether numba can write a cache for this file, as it finds the cache folder."""
    try:
        FunctionCache(_cache_available)
    except RuntimeError:  # numba's "cannot cache function ...: no locator available"
        return False
    return True


def _choose_cache():
    """Return whether to cache the compiled kernels on disk, choosing a writable folder.

    numba writes its cache beside this file, in __pycache__, or else in the user's cache folder.
    When neither is writable (a read-only install with no home folder), the cache goes to the
    system's temporary folder; failing that, the kernels are compiled at every run.
    """
    if _cache_available():
        return True
    user = os.getuid() if hasattr(os, "getuid") else "user"
    config.CACHE_DIR = os.path.join(tempfile.gettempdir(), f"numba-cache-{user}")
    if _cache_available():
        return True
    config.CACHE_DIR = ""
    print("note: no writable folder for numba's cache, so the kernels are compiled at every run "
          "(set NUMBA_CACHE_DIR to a writable folder to keep them)", file=sys.stderr)
    return False


CACHE = _choose_cache()

# The float32 exponential below clamps its argument to this range, so that it never overflows
# and its result stays a normal float32.
EXP_MIN_ARG = -87.0
EXP_MAX_ARG = 88.0

# Constants for exp(x) = 2**n * exp(r) with n = round(x / ln 2) and |r| <= ln(2) / 2. ln 2 is split
# into a part with few significant bits and a correction, so n * LN2_HIGH is exact in float32.
LOG2_E = 1.4426950408889634
LN2_HIGH = 0.693359375
LN2_LOW = -2.12194440e-4
# Adding and subtracting 1.5 * 2**23 rounds a float32 of magnitude below 2**22 to an integer.
ROUND_MAGIC = 12582912.0
# Minimax polynomial for (exp(r) - 1 - r) / r**2 on [-ln(2) / 2, ln(2) / 2], highest degree first.
# These are the coefficients of the Cephes library's expf; the result is within one ulp of exp.
EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
            1.6666665459e-1, 5.0000001201e-1)


def exp(x):
    """Return e**x: math.exp in float64, a vectorisable polynomial in float32."""
    return math.exp(x)


@overload(exp)
def _exp_for_type(x):
    # numba's math.exp is a call into the C library, which stops LLVM from vectorising a loop.
    # The float32 version below is plain arithmetic, so a loop of sigmoids runs 8 lanes at a time.
    if x == types.float32:
        return _exp_float32
    return lambda x: math.exp(x)


def _exp_float32(x):
    x = min(max(x, np.float32(EXP_MIN_ARG)), np.float32(EXP_MAX_ARG))
    n = (x * np.float32(LOG2_E) + np.float32(ROUND_MAGIC)) - np.float32(ROUND_MAGIC)
    r = x - n * np.float32(LN2_HIGH)
    r = r - n * np.float32(LN2_LOW)
    p = np.float32(EXP_POLY[0])
    p = p * r + np.float32(EXP_POLY[1])
    p = p * r + np.float32(EXP_POLY[2])
    p = p * r + np.float32(EXP_POLY[3])
    p = p * r + np.float32(EXP_POLY[4])
    p = p * r + np.float32(EXP_POLY[5])
    exp_r = p * r * r + r + np.float32(1.0)
    # 2**n built from its bits: the biased exponent n + 127 in bits 23 to 30 of a float32.
    two_to_n = np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(np.float32)
    return exp_r * two_to_n


@njit(cache=CACHE, error_model="numpy")
def sigmoid(x):
    """Return 1 / (1 + e**-x) without overflow for any finite or infinite x.

    In float32 the exponential's argument is clamped, so the result lies in [6e-39, 1]. In float64
    e**-x may be inf, and 1 / inf is 0.
    """
    one = type(x)(1.0)
    return one / (one + exp(-x))


@njit(cache=CACHE, error_model="numpy")
def scale_image(pixels, out):
    """Write pixels (H, W), uint8, into out (H, W) as floats in [0, 1], each byte divided by 255."""
    height, width = pixels.shape
    pixel_max = out.dtype.type(PIXEL_MAX)  # a float32 division is faster than a float64 one
    for i in range(height):
        for j in range(width):
            out[i, j] = pixels[i, j] / pixel_max


@njit(cache=CACHE, error_model="numpy")
def conv_forward(image, filters, biases, out):
    """Write the valid cross-correlation of image (H, W) with filters (F, K, K), plus biases (F,),
    into out (F, H - K + 1, W - K + 1). These are pre-activations: the sigmoid comes after pooling.
    """
    n_filters, size, _ = filters.shape
    _, out_height, out_width = out.shape
    for f in range(n_filters):
        for i in range(out_height):
            for j in range(out_width):
                out[f, i, j] = biases[f]
            # The column loop is innermost so that it runs over contiguous memory.
            for u in range(size):
                for v in range(size):
                    weight = filters[f, u, v]
                    for j in range(out_width):
                        out[f, i, j] += weight * image[i + u, j + v]


@njit(cache=CACHE, error_model="numpy")
def conv_backward(image, grad_out, grad_filters, grad_biases):
    """Write the gradients of the filters (F, K, K) and biases (F,) into grad_filters and grad_biases,
    given image (H, W) and the gradient grad_out (F, Ho, Wo) with respect to the convolution's output.
    """
    n_filters, size, _ = grad_filters.shape
    _, out_height, out_width = grad_out.shape
    for f in range(n_filters):
        grad_biases[f] = grad_out[f].sum()
        for u in range(size):
            for v in range(size):
                total = grad_filters.dtype.type(0.0)
                for i in range(out_height):
                    for j in range(out_width):
                        total += grad_out[f, i, j] * image[i + u, j + v]
                grad_filters[f, u, v] = total


@njit(cache=CACHE, error_model="numpy")
def maxpool_forward(x, pool, out, argmax):
    """Max-pool x (F, H, W) over non-overlapping pool x pool windows into out (F, H // pool, W // pool).

    argmax (2, F, H // pool, W // pool), integer, receives where each window's maximum lies inside
    the window: its row in argmax[0] and its column in argmax[1], from 0 to pool - 1. The first
    maximum in row-major order wins a tie. Rows and columns beyond the last whole window are left
    out.
    """
    n_maps = x.shape[0]
    _, out_height, out_width = out.shape
    for f in range(n_maps):
        for r in range(out_height):
            for c in range(out_width):
                best = x[f, r * pool, c * pool]
                best_row = 0
                best_column = 0
                for u in range(pool):
                    for v in range(pool):
                        # Selects instead of an if: which value is largest depends on the image,
                        # so a branch here is mispredicted often, and that costs more than the
                        # arithmetic of the whole window.
                        value = x[f, r * pool + u, c * pool + v]
                        larger = value > best
                        best = value if larger else best
                        best_row = u if larger else best_row
                        best_column = v if larger else best_column
                out[f, r, c] = best
                argmax[0, f, r, c] = best_row
                argmax[1, f, r, c] = best_column


@njit(cache=CACHE, error_model="numpy")
def maxpool_backward(grad_out, argmax, pool, grad_in):
    """Write into grad_in (F, H, W) the gradient of the max-pool input: each element of grad_out goes
    to the position that argmax recorded for its pool x pool window, and every other position gets
    zero.
    """
    n_maps, out_height, out_width = grad_out.shape
    grad_in[:] = 0.0
    for f in range(n_maps):
        for r in range(out_height):
            for c in range(out_width):
                i = r * pool + argmax[0, f, r, c]
                j = c * pool + argmax[1, f, r, c]
                grad_in[f, i, j] += grad_out[f, r, c]


@njit(cache=CACHE, error_model="numpy")
def conv_backward_at_argmax(image, grad_pooled, argmax, pool, grad_filters, grad_biases):
    """Write the filter and bias gradients into grad_filters (F, K, K) and grad_biases (F,), given the
    gradient grad_pooled (F, Hp, Wp) with respect to the max-pooled pre-activations, and argmax of
    the pool x pool windows as maxpool_forward wrote it.

    The same result as maxpool_backward followed by conv_backward, but it visits only the positions
    in argmax, where the pooling gradient is not zero: a quarter of the work with 2 x 2 windows.
    """
    n_filters, size, _ = grad_filters.shape
    _, pooled_height, pooled_width = grad_pooled.shape
    grad_filters[:] = 0.0
    grad_biases[:] = 0.0
    for f in range(n_filters):
        for r in range(pooled_height):
            for c in range(pooled_width):
                grad = grad_pooled[f, r, c]
                i = r * pool + argmax[0, f, r, c]
                j = c * pool + argmax[1, f, r, c]
                grad_biases[f] += grad
                for u in range(size):
                    for v in range(size):
                        grad_filters[f, u, v] += grad * image[i + u, j + v]


# The kernels above work for any filter and window size. The functions below compute the same
# layers for the default sizes, 3 x 3 filters and 2 x 2 pooling windows, in loops that LLVM
# vectorises: one instruction then works on 8 float32 numbers at once (with AVX2). For that, each
# loop runs over all pooling windows of a filter, reads memory that is contiguous from one window
# to the next, and has no branch: an "if" becomes a select, which computes both values and keeps
# one. Measured per 28 x 28 image on a 2-core x86_64 machine, forward: 3.1 us for gather_patches
# and conv3x3_maxpool2x2, 13 us for scale_image, conv_forward and maxpool_forward. Backward: 1.6 us
# for conv3x3_maxpool2x2_backward, 24 us for conv_backward_at_argmax.
#
# Why patches: the pooling window at (r, c) takes the maximum of 2 x 2 convolution outputs. The
# four 3 x 3 filter positions behind them cover the 4 x 4 pixels at rows 2r to 2r + 3 and columns
# 2c to 2c + 3. gather_patches copies those pixels so that patches[i, j, r, c] is the pixel at
# (2r + i, 2c + j). With the window index p = r * Wp + c, the sixteen numbers a window needs are
# then patches[i, j, p] for i, j in 0 to 3, and consecutive windows sit side by side in memory.

@njit(cache=CACHE)
def uses_patches(filters, pool):
    """Return whether the network's sizes are those of the fast kernels below."""
    return filters.shape[1] == 3 and filters.shape[2] == 3 and pool == 2


@njit(cache=CACHE, error_model="numpy")
def gather_patches(pixels, patches):
    """Write into patches (4, 4, Hp, Wp) the pixels (H, W), uint8, scaled to [0, 1], of each 2 x 2
    pooling window's 4 x 4 patch: patches[i, j, r, c] = pixels[2r + i, 2c + j] / 255.
    """
    size, _, pooled_height, pooled_width = patches.shape
    pixel_max = patches.dtype.type(PIXEL_MAX)
    for i in range(size):
        for r in range(pooled_height):
            for j in range(size):
                for c in range(pooled_width):
                    patches[i, j, r, c] = pixels[2 * r + i, 2 * c + j] / pixel_max


@njit(cache=CACHE, error_model="numpy", fastmath={"contract"})
def conv3x3_maxpool2x2(patches, filters, biases, pooled, argmax):
    """Write into pooled (F, Hp, Wp) and argmax (2, F, Hp, Wp) what conv_forward with filters
    (F, 3, 3) and biases (F,), followed by maxpool_forward with 2 x 2 windows, would write. The
    image comes as the patches that gather_patches wrote.

    Each multiply and the add that follows may run as one fused multiply-add instruction (fastmath
    "contract"), rounded once instead of twice. So the values may differ from conv_forward's in the
    last bit, and the argmax too where two outputs of a window are that close.
    """
    n_filters = filters.shape[0]
    n_windows = pooled.shape[1] * pooled.shape[2]
    x = patches.reshape(4, 4, n_windows)
    out = pooled.reshape(n_filters, n_windows)
    best_row = argmax[0].reshape(n_filters, n_windows)
    best_column = argmax[1].reshape(n_filters, n_windows)
    for f in range(n_filters):
        w00, w01, w02 = filters[f, 0, 0], filters[f, 0, 1], filters[f, 0, 2]
        w10, w11, w12 = filters[f, 1, 0], filters[f, 1, 1], filters[f, 1, 2]
        w20, w21, w22 = filters[f, 2, 0], filters[f, 2, 1], filters[f, 2, 2]
        bias = biases[f]
        for p in range(n_windows):
            x00, x01, x02, x03 = x[0, 0, p], x[0, 1, p], x[0, 2, p], x[0, 3, p]
            x10, x11, x12, x13 = x[1, 0, p], x[1, 1, p], x[1, 2, p], x[1, 3, p]
            x20, x21, x22, x23 = x[2, 0, p], x[2, 1, p], x[2, 2, p], x[2, 3, p]
            x30, x31, x32, x33 = x[3, 0, p], x[3, 1, p], x[3, 2, p], x[3, 3, p]
            # The four convolution outputs of the window. z0 is the filter laid on the top-left
            # 3 x 3 of the patch, z1 one column right, z2 one row down, z3 both.
            z0 = (bias + w00 * x00 + w01 * x01 + w02 * x02 + w10 * x10 + w11 * x11 + w12 * x12
                  + w20 * x20 + w21 * x21 + w22 * x22)
            z1 = (bias + w00 * x01 + w01 * x02 + w02 * x03 + w10 * x11 + w11 * x12 + w12 * x13
                  + w20 * x21 + w21 * x22 + w22 * x23)
            z2 = (bias + w00 * x10 + w01 * x11 + w02 * x12 + w10 * x20 + w11 * x21 + w12 * x22
                  + w20 * x30 + w21 * x31 + w22 * x32)
            z3 = (bias + w00 * x11 + w01 * x12 + w02 * x13 + w10 * x21 + w11 * x22 + w12 * x23
                  + w20 * x31 + w21 * x32 + w22 * x33)
            # The maximum and its row and column in the window, with selects, in the order of
            # maxpool_forward so that ties go the same way.
            best, row, column = z0, 0, 0
            larger = z1 > best
            best = z1 if larger else best
            column = 1 if larger else column
            larger = z2 > best
            best = z2 if larger else best
            row = 1 if larger else row
            column = 0 if larger else column
            larger = z3 > best
            best = z3 if larger else best
            row = 1 if larger else row
            column = 1 if larger else column
            out[f, p] = best
            best_row[f, p] = row
            best_column[f, p] = column


@njit(cache=CACHE, error_model="numpy", fastmath={"reassoc", "contract"})
def conv3x3_maxpool2x2_backward(patches, grad_pooled, argmax, grad_filters, grad_biases):
    """Write into grad_filters (F, 3, 3) and grad_biases (F,) what conv_backward_at_argmax with
    2 x 2 windows would write. The image comes as the patches that gather_patches wrote.

    The sums over windows may run in any order (fastmath "reassoc"), so that partial sums run side
    by side in vector registers. That changes the gradients only by rounding.
    """
    n_filters = grad_filters.shape[0]
    n_windows = grad_pooled.shape[1] * grad_pooled.shape[2]
    x = patches.reshape(4, 4, n_windows)
    grads = grad_pooled.reshape(n_filters, n_windows)
    best_row = argmax[0].reshape(n_filters, n_windows)
    best_column = argmax[1].reshape(n_filters, n_windows)
    zero = grad_filters.dtype.type(0.0)
    for f in range(n_filters):
        g00 = g01 = g02 = g10 = g11 = g12 = g20 = g21 = g22 = bias = zero
        for p in range(n_windows):
            # All sixteen values are loaded whatever the argmax, and selects pick among them: a
            # load inside a condition would keep LLVM from vectorising the loop.
            x00, x01, x02, x03 = x[0, 0, p], x[0, 1, p], x[0, 2, p], x[0, 3, p]
            x10, x11, x12, x13 = x[1, 0, p], x[1, 1, p], x[1, 2, p], x[1, 3, p]
            x20, x21, x22, x23 = x[2, 0, p], x[2, 1, p], x[2, 2, p], x[2, 3, p]
            x30, x31, x32, x33 = x[3, 0, p], x[3, 1, p], x[3, 2, p], x[3, 3, p]
            grad = grads[f, p]
            # The maximum's 3 x 3 input starts one row lower when it is in the window's bottom
            # row, and one column further right when it is in its right column. The y are the
            # three patch rows that input covers, and the columns are picked below.
            down = best_row[f, p] == 1
            right = best_column[f, p] == 1
            y00, y01 = x10 if down else x00, x11 if down else x01
            y02, y03 = x12 if down else x02, x13 if down else x03
            y10, y11 = x20 if down else x10, x21 if down else x11
            y12, y13 = x22 if down else x12, x23 if down else x13
            y20, y21 = x30 if down else x20, x31 if down else x21
            y22, y23 = x32 if down else x22, x33 if down else x23
            bias += grad
            g00 += grad * (y01 if right else y00)
            g01 += grad * (y02 if right else y01)
            g02 += grad * (y03 if right else y02)
            g10 += grad * (y11 if right else y10)
            g11 += grad * (y12 if right else y11)
            g12 += grad * (y13 if right else y12)
            g20 += grad * (y21 if right else y20)
            g21 += grad * (y22 if right else y21)
            g22 += grad * (y23 if right else y22)
        grad_biases[f] = bias
        grad_filters[f, 0, 0], grad_filters[f, 0, 1], grad_filters[f, 0, 2] = g00, g01, g02
        grad_filters[f, 1, 0], grad_filters[f, 1, 1], grad_filters[f, 1, 2] = g10, g11, g12
        grad_filters[f, 2, 0], grad_filters[f, 2, 1], grad_filters[f, 2, 2] = g20, g21, g22


@njit(cache=CACHE, error_model="numpy")
def sigmoid_inplace(x):
    """Replace every element of the 1-D array x with its sigmoid."""
    for i in range(x.shape[0]):
        x[i] = sigmoid(x[i])


@njit(cache=CACHE, error_model="numpy", fastmath={"reassoc", "contract"})
def dense_forward(x, weights, biases, out):
    """Write sigmoid(weights @ x + biases) into out (C,), given x (D,), weights (C, D), biases (C,).

    The dot products may be summed in any order (fastmath "reassoc") so that they vectorise; that
    changes results only by rounding.
    """
    n_out, n_in = weights.shape
    for k in range(n_out):
        total = weights.dtype.type(0.0)
        for j in range(n_in):
            total += weights[k, j] * x[j]
        out[k] = sigmoid(total + biases[k])


@njit(cache=CACHE, error_model="numpy")
def dense_backward(x, weights, out, grad_out, grad_weights, grad_biases, grad_x):
    """Write the gradients of the dense sigmoid layer into grad_weights (C, D), grad_biases (C,) and
    grad_x (D,), given its input x (D,), weights (C, D), its output out (C,), and the gradient grad_out
    (C,) with respect to that output.
    """
    n_out, n_in = weights.shape
    one = weights.dtype.type(1.0)
    grad_x[:] = 0.0
    for k in range(n_out):
        delta = grad_out[k] * out[k] * (one - out[k])
        grad_biases[k] = delta
        for j in range(n_in):
            grad_weights[k, j] = delta * x[j]
            grad_x[j] += weights[k, j] * delta


@njit(cache=CACHE, error_model="numpy")
def dense_backward_sgd(x, weights, biases, out, grad_out, learning_rate, grad_x):
    """Write grad_x (D,) as dense_backward does, and apply the SGD step to weights and biases in place.

    Each weight contributes to grad_x before it is updated, so grad_x is the gradient at the weights
    that produced out, in one pass over the weights instead of two.
    """
    n_out, n_in = weights.shape
    one = weights.dtype.type(1.0)
    grad_x[:] = 0.0
    for k in range(n_out):
        delta = grad_out[k] * out[k] * (one - out[k])
        step = learning_rate * delta
        biases[k] -= step
        for j in range(n_in):
            grad_x[j] += weights[k, j] * delta
            weights[k, j] -= step * x[j]


@njit(cache=CACHE)
def allocate_forward_buffers(params, pool, height, width):
    """Allocate the buffers forward_pass fills for an image of height x width pixels: the scaled image,
    the convolution's pre-activations, the pooled values, the argmax of each window, the output, and
    the patches of gather_patches. They take the dtype of the parameters.
    """
    filters, _, fc_weights, _ = params
    n_filters, size, _ = filters.shape
    conv_height = height - size + 1
    conv_width = width - size + 1
    pooled_shape = (n_filters, conv_height // pool, conv_width // pool)
    dtype = fc_weights.dtype
    return (
        np.empty((height, width), dtype),
        np.empty((n_filters, conv_height, conv_width), dtype),
        np.empty(pooled_shape, dtype),
        np.empty((2,) + pooled_shape, np.int32),
        np.empty(fc_weights.shape[0], dtype),
        np.empty((4, 4) + pooled_shape[1:], dtype),
    )


def allocate_workspace(params, pool, height, width):
    """Allocate the buffers train_samples reuses for every sample: those of forward_pass, then the
    gradients at the output, at the pooled values, of the filters and of the conv biases.
    """
    forward = allocate_forward_buffers(params, pool, height, width)
    filters, conv_biases, _, _ = params
    out, pooled = forward[4], forward[2]
    return forward + (
        np.empty_like(out),
        np.empty_like(pooled),
        np.empty_like(filters),
        np.empty_like(conv_biases),
    )


@njit(cache=CACHE, error_model="numpy")
def forward_pass(pixels, params, pool, work):
    """Run the network on one image pixels (H, W), uint8, and leave its output in work[4].

    work starts with the buffers of allocate_forward_buffers, in that order. With 3 x 3 filters
    and 2 x 2 windows (uses_patches) the patches are filled, and the scaled image and the
    convolution's output are left as they were.

    The sigmoid is strictly increasing, so max-pooling the pre-activations and then applying the
    sigmoid to the pooled values gives the same numbers as the sigmoid followed by max-pooling, with
    one exponential per window instead of one per position. The argmax may differ only where two
    different pre-activations round to the same sigmoid value, so that both are maxima.
    """
    filters, conv_biases, fc_weights, fc_biases = params
    image, conv_z, pooled, argmax, out = work[0], work[1], work[2], work[3], work[4]
    patches = work[5]
    if uses_patches(filters, pool):
        gather_patches(pixels, patches)
        conv3x3_maxpool2x2(patches, filters, conv_biases, pooled, argmax)
    else:
        scale_image(pixels, image)
        conv_forward(image, filters, conv_biases, conv_z)
        maxpool_forward(conv_z, pool, pooled, argmax)
    flat = pooled.reshape(pooled.size)  # (F, Hp, Wp) -> (D,), a view in C order
    sigmoid_inplace(flat)
    dense_forward(flat, fc_weights, fc_biases, out)


@njit(cache=CACHE, error_model="numpy")
def train_samples(images, labels, order, params, pool, learning_rate, work):
    """Train on images[order] one sample at a time with SGD, updating params in place.

    images (N, H, W) uint8, labels (N,) integers in [0, C), order (M,) integer indices into images.
    Returns the sum over the M samples of the loss, mean((output - one_hot)**2). The gradient that
    enters the backward pass is output - one_hot, the gradient of half the sum of squares.
    """
    filters, conv_biases, fc_weights, fc_biases = params
    image, pooled, argmax, out, patches = work[0], work[2], work[3], work[4], work[5]
    grad_out, grad_pooled, grad_filters, grad_conv_biases = work[6], work[7], work[8], work[9]
    fast = uses_patches(filters, pool)
    flat = pooled.reshape(pooled.size)  # (F, Hp, Wp) -> (D,), views of the same buffers
    grad_flat = grad_pooled.reshape(grad_pooled.size)
    n_classes = out.shape[0]
    dtype = fc_weights.dtype
    one = dtype.type(1.0)
    rate = dtype.type(learning_rate)
    total_loss = 0.0
    for sample in order:
        forward_pass(images[sample], params, pool, work)

        loss = 0.0
        for k in range(n_classes):
            target = one if k == labels[sample] else dtype.type(0.0)
            grad_out[k] = out[k] - target
            loss += grad_out[k] * grad_out[k]
        total_loss += loss / n_classes

        dense_backward_sgd(flat, fc_weights, fc_biases, out, grad_out, rate, grad_flat)

        # Back through the sigmoid that followed the pooling: d sigmoid(z) / dz = s * (1 - s).
        for j in range(flat.shape[0]):
            grad_flat[j] *= flat[j] * (one - flat[j])
        if fast:
            conv3x3_maxpool2x2_backward(patches, grad_pooled, argmax, grad_filters,
                                        grad_conv_biases)
        else:
            conv_backward_at_argmax(image, grad_pooled, argmax, pool, grad_filters,
                                    grad_conv_biases)

        for f in range(filters.shape[0]):
            conv_biases[f] -= rate * grad_conv_biases[f]
            for u in range(filters.shape[1]):
                for v in range(filters.shape[2]):
                    filters[f, u, v] -= rate * grad_filters[f, u, v]
    return total_loss


@njit(cache=CACHE, parallel=True, error_model="numpy")
def predict_images(images, params, pool, outputs, n_chunks):
    """Write the network's outputs for images (N, H, W), uint8, into outputs (N, C).

    Samples are independent here, so they are split into n_chunks chunks that run in parallel, each
    with its own buffers. A few chunks per thread balance the load.
    """
    n_images = images.shape[0]
    for chunk in prange(n_chunks):
        work = allocate_forward_buffers(params, pool, images.shape[1], images.shape[2])
        start = chunk * n_images // n_chunks
        stop = (chunk + 1) * n_images // n_chunks
        for sample in range(start, stop):
            forward_pass(images[sample], params, pool, work)
            outputs[sample, :] = work[4]


def is_cache_warm():
    """Return whether numba's on-disk cache has an index for each entry point of this module.

    It reads a private attribute of numba's dispatcher (checked with numba 0.68), so any other
    layout counts as cold. An index left by an older kernels.py still counts as warm.
    """
    for function in (train_samples, predict_images):
        try:
            index_path = function._cache._cache_file._index_path
        except AttributeError:
            return False
        if not os.path.exists(index_path):
            return False
    return True


def numba_version():
    """Return the version of numba that compiles these kernels."""
    import numba

    return numba.__version__
