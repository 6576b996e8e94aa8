"""Tools over finished runs, above every other layer: the per-layer and per-tensor sensitivity analysis
(:mod:`qatzoo.tools.sensitivity`, ``qatzoo sensitivity RUN_DIR``)."""
