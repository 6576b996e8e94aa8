"""The one place that picks Keras 2 (tf_keras), which tensorflow-model-optimization needs.

Every module that builds or runs models imports ``keras`` from here, so the choice is made once.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tf_keras as keras  # noqa: E402

__all__ = ["keras"]
