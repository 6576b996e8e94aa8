"""Quiet by default: the libraries' own logs silenced at their source, so a run prints what a person needs.

TensorFlow, absl, the TFLite converter and LiteRT write for their own developers: absl's warning that it
logs before its initialisation and CUDA probing at import (on a CPU-only machine too), checkpoint sharding
timings, SavedModel's "Assets written to", the converter's settings (``fully_quantize: 0, ...``) and the
XNNPACK delegate banner. A run prints what runs on what data, one line per epoch, the final numbers and the
run directory instead.

Each is switched off where it comes from: the environment TensorFlow's C++ side reads when it is first
imported (``TF_CPP_MIN_LOG_LEVEL``), the Python loggers of ``tensorflow`` and ``absl`` (the run's Hydra
logging shows INFO), and, for native code that prints whatever the log level (absl before its
initialisation, the converter, LiteRT), a file-descriptor redirect around exactly those calls whose text is
kept in the error when the call fails. ``trainer.verbose=3`` (``LOUD``) silences nothing. Nothing happens
on import: the entry point calls ``configure``; ``native_output`` is quiet until told otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

LOUD = 3  # trainer.verbose from which TensorFlow's, absl's, the converter's and LiteRT's own output is shown

_state = {"quiet": True}


def configure(verbose: int) -> None:
    """Silence the libraries' logs for a run at ``trainer.verbose`` below ``LOUD``; call before TensorFlow's import.

    TensorFlow's C++ logs are cut to fatal ones (its errors reach Python as exceptions; a value the user
    exported is kept), the ``tensorflow`` and ``absl`` Python loggers to errors, and TensorFlow is imported
    here with the absl lines its libraries print while loading (before absl is initialised, at any level)
    held back. At ``LOUD`` or above nothing is changed.
    """
    _state["quiet"] = verbose < LOUD
    if not _state["quiet"]:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules:
        with native_output("importing TensorFlow"):
            import tensorflow  # noqa: F401


def is_quiet() -> bool:
    """Whether the libraries' own output is held back (True unless ``configure`` was told ``verbose >= LOUD``)."""
    return _state["quiet"]


class Captured:
    """What a :func:`captured_output` block wrote to file descriptors 1 and 2 (``text``, set when it ends)."""

    text = ""


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Send what is written to file descriptors 1 and 2 during the block (Python's streams, C's stdio and native
    code alike) to a temporary file (a pipe could fill up and block the writer); its text is in the yielded
    object's ``text`` afterwards, whether the block raised or not."""
    captured = Captured()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as held:
        try:
            os.dup2(held.fileno(), 1)
            os.dup2(held.fileno(), 2)
            yield captured
        finally:
            ctypes.CDLL(None).fflush(None)  # C stdio buffers, before the descriptors go back
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            held.seek(0)
            captured.text = held.read().decode(errors="replace")


@contextlib.contextmanager
def native_output(what: str) -> Iterator[None]:
    """Hold back what is written to file descriptors 1 and 2 during the block; on an exception, keep it in the error.

    Native code (absl before its initialisation, the TFLite converter, LiteRT's delegate banner) writes to
    the descriptors directly, past ``sys.stdout`` and any log level. The text (:func:`captured_output`) is
    dropped when the block succeeds; when it raises, the text is added to the exception as a note (``what``
    wrote: ...) so a real converter error keeps its diagnostics. Does nothing after ``configure`` at ``LOUD``.
    """
    if not _state["quiet"]:
        yield
        return
    try:
        with captured_output() as captured:
            yield
    except BaseException as error:
        text = captured.text.strip()
        if text:
            _add_note(error, f"{what} wrote:\n{text}")
        raise


def _add_note(error: BaseException, note: str) -> None:
    """Attach ``note`` to ``error`` (shown with its traceback); before Python 3.11, print it to stderr."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:
        print(note, file=sys.stderr)
