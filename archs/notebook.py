"""The six architectures of the reference notebook, exactly as it ran them.

Each plan is transcribed from the notebook's code cells, quirks included: the pooling
padding differs between 1.1 and 1.2, 2.1 and 2.2 have different widths, and no model has the
BatchNormalization its section title announces. The registry documents these quirks; they are
not fixed here, because these six exist to reproduce the published numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archs._blocks import Conv, Drop, Plan, Pool, build_sequential

if TYPE_CHECKING:
    import keras

MNIST_SHAPE = (28, 28, 1)
MNIST_CLASSES = 10

PLAN_1_A: Plan = (
    Conv(32, 3), Pool("same"),
    Conv(64, 3),
    Conv(128, 3), Pool("valid"),
)  # fmt: skip
PLAN_1_B: Plan = (
    Conv(32, 3), Pool("valid"), Drop(0.5),
    Conv(64, 3),
    Conv(128, 3), Pool("same"), Drop(0.5),
)  # fmt: skip
PLAN_2_A: Plan = (
    Conv(128, 2),
    Conv(256, 2), Pool("same"),
    Conv(512, 2),
    Conv(256, 2), Pool("same"),
    Conv(128, 2),
)  # fmt: skip
PLAN_2_B: Plan = (
    Conv(32, 2), Pool("same"), Drop(0.5),
    Conv(64, 2),
    Conv(128, 2), Pool("valid"), Drop(0.5),
    Conv(256, 2),
    Conv(512, 2), Pool("same"), Drop(0.5),
)  # fmt: skip
PLAN_3_A: Plan = (
    Conv(64, 2),
    Conv(128, 2), Pool("same"),
    Conv(256, 2),
    Conv(512, 2), Pool("same"),
    Conv(256, 2),
    Conv(128, 2), Pool("same"),
    Conv(64, 2),
)  # fmt: skip
PLAN_3_B: Plan = (
    Conv(64, 2), Drop(0.2),
    Conv(128, 2), Pool("same"), Drop(0.3),
    Conv(256, 2), Drop(0.4),
    Conv(512, 2), Pool("same"), Drop(0.5),
    Conv(256, 2), Drop(0.4),
    Conv(128, 2), Pool("same"), Drop(0.3),
    Conv(64, 2), Drop(0.2),
)  # fmt: skip


def model_1_a(
    *, input_shape: tuple[int, int, int] = MNIST_SHAPE, num_classes: int = MNIST_CLASSES
) -> keras.Sequential:
    """Notebook 1.1: three 3x3 convs, no dropout (pools 'same' then 'valid')."""
    return build_sequential("model_1_a", PLAN_1_A, input_shape, num_classes)


def model_1_b(
    *, input_shape: tuple[int, int, int] = MNIST_SHAPE, num_classes: int = MNIST_CLASSES
) -> keras.Sequential:
    """Notebook 1.2: three 3x3 convs with dropout 0.5 (pools 'valid' then 'same')."""
    return build_sequential("model_1_b", PLAN_1_B, input_shape, num_classes)


def model_2_a(
    *, input_shape: tuple[int, int, int] = MNIST_SHAPE, num_classes: int = MNIST_CLASSES
) -> keras.Sequential:
    """Notebook 2.1: five 2x2 convs, widths 128-256-512-256-128, no dropout."""
    return build_sequential("model_2_a", PLAN_2_A, input_shape, num_classes)


def model_2_b(
    *, input_shape: tuple[int, int, int] = MNIST_SHAPE, num_classes: int = MNIST_CLASSES
) -> keras.Sequential:
    """Notebook 2.2: five 2x2 convs, widths 32-64-128-256-512, dropout 0.5."""
    return build_sequential("model_2_b", PLAN_2_B, input_shape, num_classes)


def model_3_a(
    *, input_shape: tuple[int, int, int] = MNIST_SHAPE, num_classes: int = MNIST_CLASSES
) -> keras.Sequential:
    """Notebook 3.1: seven 2x2 convs, widths 64-128-256-512-256-128-64, no dropout."""
    return build_sequential("model_3_a", PLAN_3_A, input_shape, num_classes)


def model_3_b(
    *, input_shape: tuple[int, int, int] = MNIST_SHAPE, num_classes: int = MNIST_CLASSES
) -> keras.Sequential:
    """Notebook 3.2: 3.1's stack with dropout 0.2-0.5 after every conv."""
    return build_sequential("model_3_b", PLAN_3_B, input_shape, num_classes)
