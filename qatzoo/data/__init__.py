"""Datasets: TFDS builders for the offline sources, and loaders that return ready splits.

Each ``conf/data/*.yaml`` names a loader (``_target_``) that returns a :class:`qatzoo.data.splits.Splits`.
"""
