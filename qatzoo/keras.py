"""The one place that picks the Keras this process runs, by its quantization engine (:mod:`qatzoo.engine`).

* ``tfmot``: Keras 2 (``tf_keras``), which tensorflow-model-optimization needs.
* ``keras3``: Keras 3 (``keras``, TensorFlow backend); tf_keras is never imported.

Every module that builds or runs models imports ``keras`` from here, so the choice is made once.
"""

import os

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)
from qatzoo.engine import current

ENGINE = current()
if ENGINE == "keras3":
    os.environ["KERAS_BACKEND"] = "tensorflow"  # the TFLite converter reads TensorFlow graphs
    import keras  # noqa: E402
else:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras as keras  # noqa: E402

#: ``keras.__version__`` of the Keras in use (2.x: tf_keras, 3.x: Keras 3); written in metrics and the card.
KERAS_VERSION = keras.__version__
KERAS3 = ENGINE == "keras3"

__all__ = ["ENGINE", "KERAS3", "KERAS_VERSION", "keras"]
