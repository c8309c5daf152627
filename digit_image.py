"""Turn a photo or a drawing of one digit into a 28x28 input like MNIST's own images.

The description that comes with the MNIST database explains how its digits were made. Each digit
was scaled to fit a 20x20 box, keeping its aspect ratio, with anti-aliasing that leaves grey
edges. It was then placed in a 28x28 frame so that the centre of mass of its pixels is at the
centre of the frame, as light ink on black. to_mnist() does the same with any image that Pillow
reads (PNG, JPEG, BMP, PGM and more).
"""

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from errors import UserError
from i18n import _
from mnist_io import IMAGE_SIZE

DIGIT_BOX = 20  # side of the box that the digit is scaled into, as in MNIST
# Centre of mass of MNIST's digits, as pixel indices: the mean over the first 2000 test images is
# row 13.99, column 14.00.
CENTRE = IMAGE_SIZE / 2
LEVELS = 256


def otsu_threshold(pixels):
    """Return the grey level that best splits pixels (uint8) into two classes, by Otsu's method:
    the threshold that maximises the variance between the classes below and above it."""
    histogram = np.bincount(pixels.ravel(), minlength=LEVELS).astype(np.float64)
    levels = np.arange(LEVELS)
    weight_below = np.cumsum(histogram)
    weight_above = weight_below[-1] - weight_below
    sum_below = np.cumsum(histogram * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_below = sum_below / weight_below
        mean_above = (sum_below[-1] - sum_below) / weight_above
        between = weight_below * weight_above * (mean_below - mean_above) ** 2
    return int(np.argmax(np.nan_to_num(between)))


def to_mnist(image):
    """Return image (a Pillow image) as a 28x28 uint8 array in MNIST's style.

    Raises UserError when no ink differs from the background.
    """
    grey = np.asarray(ImageOps.exif_transpose(image).convert("L"), dtype=np.uint8)

    # Dark ink on light paper is the common case: MNIST has light ink on black, so invert when
    # the border, which is mostly background, is light.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > LEVELS // 2:
        grey = LEVELS - 1 - grey

    # The digit's bounding box contains the pixels above Otsu's threshold. Inside it the
    # grey levels are kept, with the background's level moved to black, so that the anti-aliased
    # edges of the strokes survive as they do in MNIST.
    threshold = otsu_threshold(grey)
    rows = np.flatnonzero((grey > threshold).any(axis=1))
    columns = np.flatnonzero((grey > threshold).any(axis=0))
    if len(rows) == 0 or threshold == grey.max():
        raise UserError(_("no digit found: no ink in the image differs from its background"))
    background = np.median(border if np.median(border) <= LEVELS // 2 else LEVELS - 1 - border)
    box = grey[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1].astype(np.float64)
    ink = np.clip((box - background) / max(box.max() - background, 1.0), 0, 1) * (LEVELS - 1)
    ink = ink.astype(np.uint8)

    # Scale the longer side to 20 pixels, keeping the aspect ratio, with anti-aliasing.
    height, width = ink.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # BOX resampling averages the pixels each output pixel covers, the usual anti-aliasing.
    digit = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BOX),
                       dtype=np.float64)
    digit = np.clip(digit * (LEVELS - 1) / max(digit.max(), 1.0), 0, LEVELS - 1)

    # Place it in the 28x28 frame with its centre of mass at the centre, clipped to the frame.
    frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    total = digit.sum()
    centre_row = (digit.sum(axis=1) @ np.arange(digit.shape[0])) / total
    centre_column = (digit.sum(axis=0) @ np.arange(digit.shape[1])) / total
    top = int(round(CENTRE - centre_row))
    left = int(round(CENTRE - centre_column))
    top = min(max(top, 0), IMAGE_SIZE - digit.shape[0])
    left = min(max(left, 0), IMAGE_SIZE - digit.shape[1])
    frame[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    return np.round(frame).astype(np.uint8)


def load_digit(path):
    """Read the image file at path and return it as a 28x28 uint8 array; see to_mnist."""
    try:
        with Image.open(path) as image:
            return to_mnist(image)
    except FileNotFoundError as error:
        raise UserError(_("{path}: file not found").format(path=path)) from error
    except UnidentifiedImageError as error:
        raise UserError(_("{path}: not an image that Pillow can read (PNG, JPEG, BMP, PGM, ...)")
                        .format(path=path)) from error
    except OSError as error:
        raise UserError(_("{path}: cannot read: {reason}").format(
            path=path, reason=_(error.strerror or str(error)))) from error
    except UserError as error:
        raise UserError(_("{path}: {message}").format(path=path, message=error)) from error


def save_digit(digit, path):
    """Write digit (28x28 uint8) to path as a greyscale image, in the format its suffix names."""
    try:
        Image.fromarray(digit, mode="L").save(path)
    except (OSError, ValueError) as error:
        raise UserError(_("cannot write {path}: {reason}").format(
            path=path, reason=_(getattr(error, "strerror", None) or str(error))),
            exit_status=1) from error
