"""Controlled variants: for each depth, one conv stack with only the regularisers changed.

The notebook's pairs are confounded (1.1 vs 1.2 also changes pooling; 2.1 vs 2.2 are other
networks) and none has the BatchNormalization its titles promise. These variants answer the
notebook's question properly: per depth (3, 5, 7 conv layers), the same stack (a) plain,
(b) with the notebook's dropout, (c) with BatchNormalization after every conv, (d) with both.
They have their own ids and never change the six faithful models.

Stacks: depth 3 is 1.2's (its pooling, its dropout); depth 5 is 2.2's; depth 7 is 3.2's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from archs import notebook
from archs._blocks import Conv, Drop, Norm, Plan, build_sequential

if TYPE_CHECKING:
    import keras

VARIANTS = ("plain", "dropout", "bn", "bn_dropout")
_DEPTH_PLANS = {3: notebook.PLAN_1_B, 5: notebook.PLAN_2_B, 7: notebook.PLAN_3_B}


def variant_plan(depth: int, variant: str) -> Plan:
    """Return the plan of one controlled variant (see the module docstring)."""
    if depth not in _DEPTH_PLANS or variant not in VARIANTS:
        raise ValueError(
            f"no controlled variant depth={depth!r} variant={variant!r}; depths "
            f"{sorted(_DEPTH_PLANS)}, variants {VARIANTS}"
        )
    steps: list = []
    for step in _DEPTH_PLANS[depth]:
        if isinstance(step, Drop) and "dropout" not in variant:
            continue
        steps.append(step)
        if isinstance(step, Conv) and variant.startswith("bn"):
            steps.append(Norm())
    return tuple(steps)


def variant_id(depth: int, variant: str) -> str:
    """Return the registry id of a controlled variant, e.g. 'ctrl_5_bn_dropout'."""
    return f"ctrl_{depth}_{variant}"


def _build(
    arch_id: str,
    plan: Plan,
    *,
    input_shape: tuple[int, int, int] = notebook.MNIST_SHAPE,
    num_classes: int = notebook.MNIST_CLASSES,
) -> keras.Sequential:
    return build_sequential(arch_id, plan, input_shape, num_classes)


def builders() -> dict[str, tuple[int, str, Plan, Callable[..., keras.Sequential]]]:
    """Return id -> (depth, variant, plan, builder) for every controlled variant."""
    out = {}
    for depth in _DEPTH_PLANS:
        for variant in VARIANTS:
            arch_id, plan = variant_id(depth, variant), variant_plan(depth, variant)
            out[arch_id] = (depth, variant, plan, partial(_build, arch_id, plan))
    return out
