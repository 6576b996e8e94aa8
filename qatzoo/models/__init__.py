"""Architectures: plain factories that return functional tf_keras models.

Each factory has a Keras-Applications-like signature ``f(*, input_shape, num_outputs, ...)`` and is
named by ``_target_`` in ``conf/arch/*.yaml``.
"""
