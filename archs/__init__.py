"""CNN architectures for MNIST: pure builders and the registry that lists them."""

from archs.registry import NOTEBOOK_IDS, REGISTRY, ArchSpec, LayerDoc, get

__all__ = ["NOTEBOOK_IDS", "REGISTRY", "ArchSpec", "LayerDoc", "get"]
