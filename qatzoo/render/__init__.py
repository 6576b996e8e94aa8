"""Renderings of a run's results: the model card (:mod:`qatzoo.render.card`).

They read the run report, the contract and the deployment report, so they sit above ``export/`` and ``deploy/``;
nothing below imports them.
"""
