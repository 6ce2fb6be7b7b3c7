"""How close one convolution gets to the matmul peak: the ceiling a whole model can reach.

A training step of a conv layer is three convolutions (forward, input gradient, weight
gradient). Timing that for a model's largest layers, in float32 and bfloat16, against the
matmul peak of the same process says how much of a model's shortfall from the peak belongs to
the backend's convolution kernels rather than to the harness. TensorFlow only.

Run: ``python bench/investigations/conv_ceiling.py`` (2.1's two largest convolutions, batch 128).
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from bench.measurement.peak import matmul_peak


class ConvShape(NamedTuple):
    """One 'valid' stride-1 convolution: input side, channels in and out, kernel side."""

    name: str
    side: int
    channels_in: int
    channels_out: int
    kernel: int


LARGEST_2_1 = (
    ConvShape("2.1 conv2", 26, 128, 256, 2),
    ConvShape("2.1 conv3", 13, 256, 512, 2),
)


def training_flops(shape: ConvShape, batch: int) -> int:
    """Forward, input-gradient and weight-gradient FLOPs (2 per multiply-add)."""
    out = shape.side - shape.kernel + 1
    forward = 2 * batch * out * out * shape.channels_out * shape.kernel**2 * shape.channels_in
    return 3 * forward


def conv_training_flops_per_second(
    shape: ConvShape, dtype: str, batch: int = 128, repeats: int = 5
) -> float:
    """Return the best FLOP/s of conv + ReLU forward and both gradients, in `dtype`."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch, shape.side, shape.side, shape.channels_in)), dtype)
    kernel = rng.random((shape.kernel, shape.kernel, shape.channels_in, shape.channels_out))
    w = tf.Variable(kernel.astype(np.float32))

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.relu(tf.nn.conv2d(x, tf.cast(w, dtype), 1, "VALID"))
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        grad_x, grad_w = tape.gradient(loss, [x, w])
        return tf.reduce_sum(tf.cast(grad_x, tf.float32)) + tf.reduce_sum(grad_w)

    step().numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        step().numpy()
        best = min(best, time.perf_counter() - started)
    return training_flops(shape, batch) / best


def main(shapes: tuple[ConvShape, ...] = LARGEST_2_1, batch: int = 128) -> list[dict]:
    """Print and return each shape's FLOP/s and fraction of the matmul peak, per dtype."""
    rows = []
    for dtype in ("float32", "bfloat16"):
        peak = matmul_peak(dtype)
        for shape in shapes:
            achieved = conv_training_flops_per_second(shape, dtype, batch)
            rows.append({"conv": shape.name, "dtype": dtype, "flops": achieved,
                         "peak_flops": peak, "fraction_of_peak": achieved / peak})  # fmt: skip
            print(f"{shape.name} {dtype}: {achieved / 1e9:.0f} GFLOP/s = "
                  f"{achieved / peak:.2f} of the {peak / 1e9:.0f} GFLOP/s matmul peak")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
