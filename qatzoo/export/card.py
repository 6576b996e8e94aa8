"""Kept for ``qatzoo/zoo/publish.py``, which imports :data:`FIGURES` from here: the card is
:mod:`qatzoo.render.card` and the figures' names are :data:`qatzoo.export.plots.FIGURES`. Remove this module once
publish imports them from ``qatzoo.export.plots``.
"""

from qatzoo.export.plots import FIGURES  # noqa: F401 - re-exported for qatzoo.zoo.publish
