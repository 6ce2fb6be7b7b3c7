"""The Keras dtype policies a run may use; Keras-free so option parsing needs no backend."""

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DEFAULT_PRECISION = "float32"
