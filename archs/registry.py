"""The one registry of architectures: stable id -> builder and the facts the notebook documents.

Everything else (tests, training, benchmarks, reports) imports `REGISTRY` from here; nothing
keeps its own list. The documented facts are read off the notebook's `model.summary()` tables,
so the contract tests compare what the builders make with what the notebook printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archs import controlled, notebook
from archs._blocks import Plan, plan_params, smallest_input

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class LayerDoc:
    """One row of a notebook summary table, with the stable name our builder gives the layer."""

    name: str
    notebook_name: str
    output_shape: tuple[int, ...]
    params: int


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: its builder and what the notebook documents about it."""

    arch_id: str
    builder: Callable[..., keras.Sequential]
    plan: Plan
    section: str
    title: str
    conv_layers: int
    dropout: bool
    batch_norm: bool
    params: int
    layers: tuple[LayerDoc, ...]
    quirks: tuple[str, ...] = ()
    faithful: bool = True
    """True for the notebook's six; False for the controlled variants."""

    @property
    def min_input_side(self) -> int:
        """The smallest square input side (pixels) this architecture accepts."""
        return smallest_input(self.plan)

    def build(self, **kwargs: object) -> keras.Sequential:
        """Build a fresh, uncompiled model (keyword arguments go to the builder)."""
        return self.builder(**kwargs)


def _rows(*rows: tuple[str, str, tuple[int, ...], int]) -> tuple[LayerDoc, ...]:
    return tuple(LayerDoc(*row) for row in rows)


_NO_BATCH_NORM = (
    "The section title says 'Batch Normalization', but the notebook never adds a "
    "BatchNormalization layer; neither does this builder."
)

_SPECS = (
    ArchSpec(
        arch_id="model_1_a",
        builder=notebook.model_1_a,
        plan=notebook.PLAN_1_A,
        section="1.1",
        title="Architecture 1, without dropout",
        conv_layers=3,
        dropout=False,
        batch_norm=False,
        params=113_162,
        layers=_rows(
            ("conv1", "conv2d_1", (26, 26, 32), 320),
            ("pool1", "max_pooling2d_1", (13, 13, 32), 0),
            ("conv2", "conv2d_2", (11, 11, 64), 18_496),
            ("conv3", "conv2d_3", (9, 9, 128), 73_856),
            ("pool2", "max_pooling2d_2", (4, 4, 128), 0),
            ("flatten", "flatten_1", (2048,), 0),
            ("predictions", "dense_1", (10,), 20_490),
        ),
        quirks=(
            _NO_BATCH_NORM,
            "Pools 'same' then 'valid', the reverse of 1.2: the last feature map is 4x4 here "
            "and 5x5 in 1.2, so 1.1 vs 1.2 changes the dense layer as well as dropout.",
        ),
    ),
    ArchSpec(
        arch_id="model_1_b",
        builder=notebook.model_1_b,
        plan=notebook.PLAN_1_B,
        section="1.2",
        title="Architecture 1, with dropout",
        conv_layers=3,
        dropout=True,
        batch_norm=False,
        params=124_682,
        layers=_rows(
            ("conv1", "conv2d_4", (26, 26, 32), 320),
            ("pool1", "max_pooling2d_3", (13, 13, 32), 0),
            ("drop1", "dropout_1", (13, 13, 32), 0),
            ("conv2", "conv2d_5", (11, 11, 64), 18_496),
            ("conv3", "conv2d_6", (9, 9, 128), 73_856),
            ("pool2", "max_pooling2d_4", (5, 5, 128), 0),
            ("drop2", "dropout_2", (5, 5, 128), 0),
            ("flatten", "flatten_2", (3200,), 0),
            ("predictions", "dense_2", (10,), 32_010),
        ),
        quirks=(
            "Pools 'valid' then 'same', the reverse of 1.1 (see model_1_a).",
            "The notebook prints the total as '124.682' in one place and '124,682' in another.",
        ),
    ),
    ArchSpec(
        arch_id="model_2_a",
        builder=notebook.model_2_a,
        plan=notebook.PLAN_2_A,
        section="2.1",
        title="Architecture 2, without dropout",
        conv_layers=5,
        dropout=False,
        batch_norm=False,
        params=1_344_522,
        layers=_rows(
            ("conv1", "conv2d_32", (27, 27, 128), 640),
            ("conv2", "conv2d_33", (26, 26, 256), 131_328),
            ("pool1", "max_pooling2d_17", (13, 13, 256), 0),
            ("conv3", "conv2d_34", (12, 12, 512), 524_800),
            ("conv4", "conv2d_35", (11, 11, 256), 524_544),
            ("pool2", "max_pooling2d_18", (6, 6, 256), 0),
            ("conv5", "conv2d_36", (5, 5, 128), 131_200),
            ("flatten", "flatten_3", (3200,), 0),
            ("predictions", "dense_3", (10,), 32_010),
        ),
        quirks=(
            "Widths 128-256-512-256-128 with two pools; 2.2 uses 32-64-128-256-512 with three "
            "pools, so 2.1 vs 2.2 compares two different networks, not dropout alone.",
        ),
    ),
    ArchSpec(
        arch_id="model_2_b",
        builder=notebook.model_2_b,
        plan=notebook.PLAN_2_B,
        section="2.2",
        title="Architecture 2, with dropout ('and Batch Normalization' in the notebook)",
        conv_layers=5,
        dropout=True,
        batch_norm=False,
        params=717_930,
        layers=_rows(
            ("conv1", "conv2d_37", (27, 27, 32), 160),
            ("pool1", "max_pooling2d_19", (14, 14, 32), 0),
            ("drop1", "dropout_3", (14, 14, 32), 0),
            ("conv2", "conv2d_38", (13, 13, 64), 8_256),
            ("conv3", "conv2d_39", (12, 12, 128), 32_896),
            ("pool2", "max_pooling2d_20", (6, 6, 128), 0),
            ("drop2", "dropout_4", (6, 6, 128), 0),
            ("conv4", "conv2d_40", (5, 5, 256), 131_328),
            ("conv5", "conv2d_41", (4, 4, 512), 524_800),
            ("pool3", "max_pooling2d_21", (2, 2, 512), 0),
            ("drop3", "dropout_5", (2, 2, 512), 0),
            ("flatten", "flatten_4", (2048,), 0),
            ("predictions", "dense_4", (10,), 20_490),
        ),
        quirks=(
            _NO_BATCH_NORM,
            "A different network from 2.1 (other widths, an extra pool): see model_2_a.",
        ),
    ),
    ArchSpec(
        arch_id="model_3_a",
        builder=notebook.model_3_a,
        plan=notebook.PLAN_3_A,
        section="3.1",
        title="Architecture 3, without dropout",
        conv_layers=7,
        dropout=False,
        batch_norm=False,
        params=1_378_570,
        layers=_rows(
            ("conv1", "conv2d_101", (27, 27, 64), 320),
            ("conv2", "conv2d_102", (26, 26, 128), 32_896),
            ("pool1", "max_pooling2d_47", (13, 13, 128), 0),
            ("conv3", "conv2d_103", (12, 12, 256), 131_328),
            ("conv4", "conv2d_104", (11, 11, 512), 524_800),
            ("pool2", "max_pooling2d_48", (6, 6, 512), 0),
            ("conv5", "conv2d_105", (5, 5, 256), 524_544),
            ("conv6", "conv2d_106", (4, 4, 128), 131_200),
            ("pool3", "max_pooling2d_49", (2, 2, 128), 0),
            ("conv7", "conv2d_107", (1, 1, 64), 32_832),
            ("flatten", "flatten_6", (64,), 0),
            ("predictions", "dense_6", (10,), 650),
        ),
        quirks=(
            "2x2 kernels throughout: the notebook notes that larger kernels hit a 'negative "
            "shape' error on 28x28 inputs. The last conv leaves a 1x1 map.",
        ),
    ),
    ArchSpec(
        arch_id="model_3_b",
        builder=notebook.model_3_b,
        plan=notebook.PLAN_3_B,
        section="3.2",
        title="Architecture 3, with dropout ('and Batch Normalization' in the notebook)",
        conv_layers=7,
        dropout=True,
        batch_norm=False,
        params=1_378_570,
        layers=_rows(
            ("conv1", "conv2d_113", (27, 27, 64), 320),
            ("drop1", "dropout_14", (27, 27, 64), 0),
            ("conv2", "conv2d_114", (26, 26, 128), 32_896),
            ("pool1", "max_pooling2d_54", (13, 13, 128), 0),
            ("drop2", "dropout_15", (13, 13, 128), 0),
            ("conv3", "conv2d_115", (12, 12, 256), 131_328),
            ("drop3", "dropout_16", (12, 12, 256), 0),
            ("conv4", "conv2d_116", (11, 11, 512), 524_800),
            ("pool2", "max_pooling2d_55", (6, 6, 512), 0),
            ("drop4", "dropout_17", (6, 6, 512), 0),
            ("conv5", "conv2d_117", (5, 5, 256), 524_544),
            ("drop5", "dropout_18", (5, 5, 256), 0),
            ("conv6", "conv2d_118", (4, 4, 128), 131_200),
            ("pool3", "max_pooling2d_56", (2, 2, 128), 0),
            ("drop6", "dropout_19", (2, 2, 128), 0),
            ("conv7", "conv2d_119", (1, 1, 64), 32_832),
            ("drop7", "dropout_20", (1, 1, 64), 0),
            ("flatten", "flatten_7", (64,), 0),
            ("predictions", "dense_7", (10,), 650),
        ),
        quirks=(
            _NO_BATCH_NORM,
            "The only pair that differs by dropout alone: same stack as 3.1.",
        ),
    ),
)


def _controlled_specs() -> tuple[ArchSpec, ...]:
    specs = []
    for arch_id, (depth, variant, plan, builder) in controlled.builders().items():
        specs.append(
            ArchSpec(
                arch_id=arch_id,
                builder=builder,
                plan=plan,
                section=f"controlled, depth {depth}",
                title=f"Controlled variant: {depth} conv layers, {variant.replace('_', ' + ')}",
                conv_layers=depth,
                dropout="dropout" in variant,
                batch_norm=variant.startswith("bn"),
                params=plan_params(plan, notebook.MNIST_SHAPE, notebook.MNIST_CLASSES),
                layers=(),
                faithful=False,
            )
        )
    return tuple(specs)


REGISTRY: dict[str, ArchSpec] = {spec.arch_id: spec for spec in (*_SPECS, *_controlled_specs())}
"""Every registered architecture by stable id: the notebook's six, then controlled variants."""

NOTEBOOK_IDS: tuple[str, ...] = tuple(spec.arch_id for spec in _SPECS)
"""The six faithful notebook models, in the notebook's order."""


def get(arch_id: str) -> ArchSpec:
    """Return the spec for `arch_id`, or raise KeyError listing the valid ids."""
    try:
        return REGISTRY[arch_id]
    except KeyError:
        raise KeyError(
            f"Unknown architecture {arch_id!r}. Valid ids: {', '.join(REGISTRY)}"
        ) from None
