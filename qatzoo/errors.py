"""The project's error classes: each ``str()`` is the one line shown to the user.

They live here, importing nothing, so any module can raise them without importing the module that
catches them (the config, the data loaders, the trainer and the zoo client all do).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that cannot work; ``str()`` is the one line shown to the user.

    Raised inside a schema validator, its text is the whole line (it names the field itself).
    """


class DataSourceMissing(RuntimeError):
    """A local data source is not installed; the message says how to get it."""


class DataError(ValueError):
    """Data that cannot be trained or measured on (e.g. NaN in a split); ``str()`` is one line."""


class TrainingError(RuntimeError):
    """Training could not go on (e.g. the loss became NaN); the message is one line."""
