"""The one private helper every builder uses: a plan of layers turned into a Sequential.

A plan is a tuple of small steps (conv, pool, dropout, batch norm). Keeping it as data lets
the registry compute, without building anything, the smallest input an architecture accepts,
and lets the controlled variants reuse a conv stack with only the regularisers changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class Conv:
    """A ReLU Conv2D with 'valid' padding and stride 1, as in every notebook model."""

    filters: int
    kernel: int


@dataclass(frozen=True)
class Pool:
    """A 2x2 MaxPooling2D; the notebook mixes 'same' and 'valid' padding."""

    padding: Literal["same", "valid"]


@dataclass(frozen=True)
class Drop:
    """A Dropout layer with the given rate."""

    rate: float


@dataclass(frozen=True)
class Norm:
    """A BatchNormalization layer (absent from all six notebook models).

    Momentum 0.9 rather than Keras' 0.99: with 0.99 the moving statistics used at test time
    had not settled after the 96 steps of the `ci` budget, and every BN variant scored 11.7%
    (one class) on the test set in all 3 seeds, while training accuracy rose.
    """

    momentum: float = 0.9


Step = Conv | Pool | Drop | Norm
Plan = tuple[Step, ...]


def spatial_size(plan: Plan, size: int) -> int:
    """Return the height (or width) after `plan` for an input of `size` pixels, or <= 0."""
    for step in plan:
        if size <= 0:
            return size
        if isinstance(step, Conv):
            size = size - step.kernel + 1
        elif isinstance(step, Pool):
            size = -(-size // 2) if step.padding == "same" else size // 2
    return size


def plan_params(plan: Plan, input_shape: tuple[int, int, int], num_classes: int) -> int:
    """Count the parameters a plan builds (BatchNormalization: 4 per channel), without Keras."""
    height, width, channels = input_shape
    total = 0
    for step in plan:
        if isinstance(step, Conv):
            total += (step.kernel * step.kernel * channels + 1) * step.filters
            channels = step.filters
        elif isinstance(step, Norm):
            total += 4 * channels
    flat = spatial_size(plan, height) * spatial_size(plan, width) * channels
    return total + (flat + 1) * num_classes


def smallest_input(plan: Plan) -> int:
    """Return the smallest square input side for which every layer keeps a positive size."""
    size = 1
    while spatial_size(plan, size) < 1:
        size += 1
    return size


def check_arguments(
    arch_id: str, plan: Plan, input_shape: tuple[int, int, int], num_classes: int
) -> None:
    """Raise ValueError naming `arch_id` when the arguments cannot build the model."""
    if len(input_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ValueError(
            f"{arch_id}: input_shape must be three positive ints (height, width, channels), "
            f"channels last. Received: input_shape={input_shape!r}"
        )
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"{arch_id}: num_classes must be an int >= 2. Received: num_classes={num_classes!r}"
        )
    height, width, _ = input_shape
    if spatial_size(plan, height) < 1 or spatial_size(plan, width) < 1:
        side = smallest_input(plan)
        raise ValueError(
            f"{arch_id}: input of {height}x{width} pixels is too small; the layers would "
            f"reach a negative or zero size. {arch_id} accepts inputs of at least "
            f"{side}x{side} pixels. Received: input_shape={input_shape!r}"
        )


def build_sequential(
    arch_id: str, plan: Plan, input_shape: tuple[int, int, int], num_classes: int
) -> keras.Sequential:
    """Build an uncompiled Sequential from `plan`, with stable layer names.

    Names count each kind of layer from 1 (conv1, pool1, drop1, norm1), then `flatten` and
    `predictions`, so weight plots and baselines never see Keras' global counters.
    """
    import keras  # here, not at import time: the registry is read by commands that train nothing
    from keras import layers

    check_arguments(arch_id, plan, input_shape, num_classes)
    counts = {"conv": 0, "pool": 0, "drop": 0, "norm": 0}
    stack: list[keras.layers.Layer] = [keras.Input(shape=input_shape, name="image")]
    for step in plan:
        if isinstance(step, Conv):
            counts["conv"] += 1
            stack.append(
                layers.Conv2D(
                    step.filters,
                    kernel_size=(step.kernel, step.kernel),
                    activation="relu",
                    name=f"conv{counts['conv']}",
                )
            )
        elif isinstance(step, Pool):
            counts["pool"] += 1
            stack.append(
                layers.MaxPooling2D(
                    pool_size=(2, 2), padding=step.padding, name=f"pool{counts['pool']}"
                )
            )
        elif isinstance(step, Drop):
            counts["drop"] += 1
            stack.append(layers.Dropout(step.rate, name=f"drop{counts['drop']}"))
        else:
            counts["norm"] += 1
            stack.append(
                layers.BatchNormalization(momentum=step.momentum, name=f"norm{counts['norm']}")
            )
    stack.append(layers.Flatten(name="flatten"))
    stack.append(layers.Dense(num_classes, activation="softmax", name="predictions"))
    return keras.Sequential(stack, name=arch_id)
