"""The compiled training loop against the plain NumPy reference, on real MNIST images."""

import numpy as np

import kernels
import mnist_io
import numpy_reference
import predict
import weights

N_SAMPLES = 300
LEARNING_RATE = 0.1


def run_both(images, labels, params, pool, order):
    compiled = tuple(array.copy() for array in params)
    work = kernels.allocate_workspace(compiled, pool, *images.shape[1:])
    compiled_loss = kernels.train_samples(images, labels, order, compiled, pool, LEARNING_RATE,
                                          work)

    reference = tuple(array.copy() for array in params)
    scaled = images.astype(np.float32) / np.float32(255)
    reference_loss = sum(
        numpy_reference.train_step(scaled[i], labels[i], reference, pool, np.float32(LEARNING_RATE))
        for i in order)
    return compiled, compiled_loss, reference, reference_loss


def test_epoch_matches_numpy_reference(mnist_dir):
    images, labels = mnist_io.load_split(mnist_dir, "train")
    images, labels = images[:N_SAMPLES], labels[:N_SAMPLES]
    params = weights.init_params(8, 3, 2, np.random.default_rng(0))
    order = np.random.default_rng(1).permutation(N_SAMPLES)

    compiled, compiled_loss, reference, reference_loss = run_both(images, labels, params, 2, order)
    for name, ours, theirs in zip(weights.ARRAY_KEYS, compiled, reference):
        assert ours.dtype == np.float32, name
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5, err_msg=name)
    assert abs(compiled_loss - reference_loss) < 1e-6 * N_SAMPLES
    # The parameters must have moved, or the comparison above would prove nothing.
    assert np.abs(compiled[2] - params[2]).max() > 1e-3


def test_other_architecture_matches_numpy_reference(mnist_dir):
    images, labels = mnist_io.load_split(mnist_dir, "train")
    images, labels = images[:100], labels[:100]
    params = weights.init_params(6, 5, 3, np.random.default_rng(2))
    order = np.arange(100)

    compiled, _, reference, _ = run_both(images, labels, params, 3, order)
    for name, ours, theirs in zip(weights.ARRAY_KEYS, compiled, reference):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5, err_msg=name)


def test_inference_matches_numpy_reference(mnist_dir):
    images, _ = mnist_io.load_split(mnist_dir, "test")
    images = images[:200]
    params = weights.init_params(8, 3, 2, np.random.default_rng(3))
    outputs = np.empty((200, 10), np.float32)
    kernels.predict_images(images, params, 2, outputs, 7)
    scaled = images.astype(np.float32) / np.float32(255)
    expected = np.array([numpy_reference.forward(image, params, 2)["output"] for image in scaled])
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=1e-6)


def test_numpy_forward_matches_kernels(mnist_dir):
    images, _ = mnist_io.load_split(mnist_dir, "test")
    images = images[:40]
    for n_filters, size, pool in ((8, 3, 2), (6, 5, 3)):
        params = weights.init_params(n_filters, size, pool, np.random.default_rng(4))
        compiled = np.empty((40, 10), np.float32)
        kernels.predict_images(images, params, pool, compiled, 3)
        np.testing.assert_allclose(predict.forward_numpy(images, params, pool), compiled,
                                   rtol=0, atol=1e-6)
    assert len(images) > predict.NUMPY_MAX_IMAGES  # so predict() below runs the kernels
    np.testing.assert_allclose(predict.predict(params, pool, images), compiled, rtol=0, atol=0)
