"""Imported first by every module of qatzoo that imports TensorFlow (or Keras, tfmot, TFDS, which import it):
TensorFlow is imported here with the lines its native libraries print while loading held back (absl's
"before absl::InitializeLog()" warning, CUDA probing, the oneDNN and CPU-feature notices), so that using qatzoo
as a library - ``from qatzoo.export.tflite import to_int8_tflite`` - prints none of them. Their text is kept in
the error if the import fails; ``quiet.configure(verbose=3)`` before it shows everything. The zoo client never
imports this module (it runs without TensorFlow).
"""

import os
import sys

from qatzoo import quiet
from qatzoo.quiet import native_output

if "tensorflow" not in sys.modules:
    # Read by TensorFlow's C++ side once, as it loads: fatal only (its errors reach Python as exceptions; the
    # CUDA probe's "failed call to cuInit" on a CPU-only machine does not), or at verbose=3 what it was before.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if quiet.is_quiet() else "2")
    with native_output("importing TensorFlow"):
        import tensorflow  # noqa: F401
