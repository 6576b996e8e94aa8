"""Raw input files, read the way ``qatzoo predict`` reads them and with the same bounds: a PNG image, a .npy
of numbers, a .csv series (its last column; a header row skipped; its first column's dates kept).

``read_input(path, raw)`` gives the array a model's ``predict`` takes (``raw``: the contract's ``input.raw``),
``read_dated`` the array and a .csv's dates, ``forecast_dates`` the dates a forecast is for. Nothing here
imports TensorFlow; a PNG is decoded by Pillow's PNG plugin only.
"""

from __future__ import annotations

from pathlib import Path

from qatzoo.contract import ContractError

#: A .npy holding more bytes of values than this is not read (the MNIST test split as uint8 is 8 MB).
MAX_INPUT_BYTES = 256 * 1024 * 1024
#: A .csv larger than this is not read (a million weeks, dated, are about 20 MB).
MAX_CSV_BYTES = 32 * 1024 * 1024


def read_dated(path: Path, raw) -> tuple[object, list[str] | None]:
    """A raw input file for ``raw`` (the contract's input.raw): an image (.png, .npy of uint8) or a series
    (.csv: the last column's numbers; .npy). Only PNG is decoded, and only at the model's size (checked from
    the header, before any pixel is); a .npy's dtype and size come from its header before its data; no cell
    of a .csv is skipped. Anything else is a ContractError (one line) naming the file. Beside the values: a .csv's dates, when
    its first column holds an ISO date (``YYYY-MM-DD``) on every row, else None."""
    import csv
    import struct
    import zlib

    if not path.is_file():
        raise ContractError(f"{path}: no such file")
    suffix, kind = path.suffix.lower(), raw.kind
    try:
        if suffix == ".npy":
            return _read_npy(path), None
        if suffix == ".png" and kind == "image":
            return _read_png(path, tuple(raw.shape)), None
        if suffix in (".csv", ".txt") and kind == "series":
            return _read_csv(path)
    except ContractError:  # already the one line naming the file
        raise
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, csv.Error) as error:
        raise ContractError(f"{path} is not a readable {kind} ({type(error).__name__}: {str(error)[:80]})") from None
    wanted = ".png or .npy" if kind == "image" else ".csv or .npy"
    raise ContractError(f"{path}: a {kind} input must be {wanted}")


def _read_npy(path: Path):
    """A .npy's array: its header (format version, dtype, shape) checked before the data is read."""
    import numpy as np
    from numpy.lib import format as npy

    with open(path, "rb") as f:
        version = npy.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format {version} is not read")
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = read_header(f)
        if dtype.kind not in "biuf" or dtype.fields is not None:  # objects (pickles), text, records, complex
            raise ContractError(f"{path}: input must be real numbers, got {dtype}")
        if 0 in shape:
            raise ContractError(f"{path}: the array is empty (shape {shape})")
        size = dtype.itemsize * int(np.prod(shape, dtype=object))
        if size > MAX_INPUT_BYTES:
            raise ContractError(f"{path}: the array is too large ({shape}, {size} bytes; at most {MAX_INPUT_BYTES})")
        f.seek(0)
        return npy.read_array(f, allow_pickle=False)  # the same open file: what was checked is what is read


def _read_png(path: Path, shape: tuple[int, int]):
    """A PNG's pixels as uint8 grey, decoded only by Pillow's PNG plugin and only if its header's size is the
    model's: a file of any other format (PostScript, which Pillow hands to Ghostscript; GIF; TIFF) named .png,
    or a header claiming a huge image, is refused before a pixel is decoded."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        opened = Image.open(path, formats=["PNG"])
    except UnidentifiedImageError:
        raise ContractError(f"{path}: not a PNG image") from None
    except Image.DecompressionBombError as error:  # Pillow's own cap, checked from the header too
        claim = str(error).split(" exceeds")[0].lower()  # "image size (400000000 pixels)"
        raise ContractError(f"{path}: {claim}; the model takes {shape[1]} x {shape[0]}") from None
    with opened as image:
        width, height = image.size
        if (height, width) != shape:
            raise ContractError(f"{path}: {width} x {height} pixels; the model takes {shape[1]} x {shape[0]}")
        image.load()
        return np.asarray(image.convert("L"), dtype=np.uint8)


def _read_csv(path: Path):
    """The last column of a .csv as float64, every row kept: a header row (a first row whose last cell is
    text) is skipped; an empty, NaN, infinite or non-numeric cell, a row of another width or an empty row
    before the end is refused by row and column. With them, the first column's dates when every row has one."""
    import array
    import csv
    import datetime
    import io
    import math

    import numpy as np

    from qatzoo.artifacts import read_bounded

    text = read_bounded(path, MAX_CSV_BYTES).decode("utf-8-sig")
    header, width, blank, values = None, 0, None, array.array("d")  # 8 bytes a value, not a list's 32
    dates: list[datetime.date] | None = []
    for number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not row:
            blank = blank or number  # refused below if a row follows: only the file's end may be blank
            continue
        if blank:
            raise ContractError(f"{path}: row {blank} is empty")
        if number == 1:
            width = len(row)
            if _is_text(row[-1]):
                header = row[-1].strip()[:40]
                continue
        if len(row) != width:
            raise ContractError(f"{path}: row {number} has {len(row)} columns, row 1 has {width}")
        where = f"{path}: row {number}, column {width}" + (f" ({header})" if header else "")
        cell = row[-1].strip()
        if not cell:
            raise ContractError(f"{where}: empty")
        try:
            value = float(cell)
        except ValueError:
            raise ContractError(f"{where}: {cell[:40]!r} is not a number") from None
        if not math.isfinite(value):
            raise ContractError(f"{where}: {cell[:40]!r} is not a finite number")
        values.append(value)
        if dates is not None and width > 1:
            try:
                dates.append(datetime.date.fromisoformat(row[0].strip()))
            except ValueError:
                dates = None  # a first column of something else (an index, a label): no dates
    if not values:
        raise ContractError(f"{path}: the file holds no values")
    return np.frombuffer(values, dtype=np.float64).copy(), [d.isoformat() for d in dates] if dates else None


def _is_text(cell: str) -> bool:
    """Whether a first row's last cell is a header (text), not a value (a number, NaN, or empty: refused)."""
    try:
        float(cell)
    except ValueError:
        return bool(cell.strip())
    return False


def read_input(path: str | Path, raw) -> object:
    """The raw input in ``path`` for a model whose contract's ``input.raw`` is ``raw``: ``model.read(path)``."""
    return read_dated(Path(path), raw)[0]


def forecast_dates(dates: list[str], horizon: int) -> list[str] | None:
    """The ``horizon`` dates after a series dated ``dates`` (ISO), at its last step (a week for weekly data):
    the dates a forecast "from the week after the last input value" is for; None for fewer than two dates, a
    last step that does not move forward, or dates past the calendar's end."""
    import datetime

    if len(dates) < 2:
        return None
    timed = "T" in dates[-1]  # hourly or half-hourly series: ISO times, 2000-08-15T09:30
    parse = datetime.datetime.fromisoformat if timed else datetime.date.fromisoformat
    try:
        last, before = parse(dates[-1]), parse(dates[-2])
    except ValueError:  # a mix of dates and times: the forecast stands, undated
        return None
    step = last - before
    if step <= datetime.timedelta(0):
        return None
    try:
        if timed:
            return [(last + step * k).isoformat(timespec="minutes") for k in range(1, horizon + 1)]
        return [(last + step * k).isoformat() for k in range(1, horizon + 1)]
    except OverflowError:  # weeks past the year 9999: the forecast stands, undated
        return None
