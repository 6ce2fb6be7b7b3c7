"""Which Keras backend a run uses. The backends and their libraries: `bench.vocabulary`.

Keras-free: option parsing, provenance and the gate's version crossings read the vocabulary.
"""

from __future__ import annotations

import os

from bench.vocabulary import BACKENDS, DEFAULT_BACKEND, LIBRARIES, relevant_libraries

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "LIBRARIES", "relevant_libraries", "requested"]


def requested() -> str:
    """Return the backend Keras will use: $KERAS_BACKEND, else TensorFlow (Keras' default)."""
    return os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
