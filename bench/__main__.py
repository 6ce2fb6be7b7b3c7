"""Entry point for `python -m bench`."""

import os
import sys

# Before TensorFlow is imported (through the registry): its start-up chatter buries the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.cli.commands import main

sys.exit(main())
