"""Analytic FLOPs of the architectures, per sample, for forward and training steps.

Rule: a multiply-add counts as 2 FLOPs; only Conv2D and Dense contractions are counted
(bias adds, ReLU, pooling, dropout and softmax are under 1% here and are left out).
Forward FLOPs of a conv: 2 * H_out * W_out * C_out * (k_h * k_w * C_in); of a dense:
2 * inputs * outputs. A training step is the forward pass, the weight gradients (the same
FLOPs again) and the input gradients (the same again, except for the first layer, whose input
needs no gradient): train = 3 * forward - forward(first layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import keras

from archs import REGISTRY


@dataclass(frozen=True)
class LayerFlops:
    """Forward FLOPs of one contraction layer, per sample."""

    name: str
    forward: int


def layer_flops(model: keras.Model) -> list[LayerFlops]:
    """Return the forward FLOPs per sample of every Conv2D and Dense layer of a built model."""
    counted = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, c_in, c_out = layer.kernel.shape
            _, h_out, w_out, _ = layer.output.shape
            counted.append(LayerFlops(layer.name, 2 * h_out * w_out * c_out * kh * kw * c_in))
        elif isinstance(layer, keras.layers.Dense):
            counted.append(LayerFlops(layer.name, 2 * prod(layer.kernel.shape)))
    return counted


def forward_flops(model: keras.Model) -> int:
    """Return forward FLOPs per sample."""
    return sum(item.forward for item in layer_flops(model))


def training_flops(model: keras.Model) -> int:
    """Return training FLOPs per sample (forward + weight grads + input grads)."""
    layers = layer_flops(model)
    if not layers:
        return 0
    forward = sum(item.forward for item in layers)
    return 3 * forward - layers[0].forward


def arch_flops(arch_id: str) -> dict[str, int]:
    """Return {'forward': ..., 'training': ...} FLOPs per sample for a registered architecture."""
    model = REGISTRY[arch_id].build()
    return {"forward": forward_flops(model), "training": training_flops(model)}
