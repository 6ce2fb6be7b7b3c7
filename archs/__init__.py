"""CNN architectures for MNIST: pure builders and the registry that lists them."""

from archs.registry import REGISTRY, ArchSpec, LayerDoc, get

__all__ = ["REGISTRY", "ArchSpec", "LayerDoc", "get"]
