"""The project's error classes: each ``str()`` is the one line shown to the user.

They live here, importing nothing but re, so any module can raise them without importing the module that
catches them (the config, the data loaders, the trainer and the zoo client all do).
"""

from __future__ import annotations

import re


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


#: What would break an error line or rewrite a terminal: control characters (line feeds, NEL), Unicode line and
#: paragraph separators, bidi overrides.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def error_line(message: object) -> str:
    """``error: <message>`` as exactly one printable line: whatever a message quotes from a hostile file (a CSV
    header with a NEL, an escape sequence) is shown escaped (``\\x85``), never acted on."""
    return "error: " + _BREAKS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(message))
