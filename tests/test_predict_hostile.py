"""Hostile input files for ``qatzoo predict`` and ``Model.predict`` from many threads: real files (a stand-in
Ghostscript, images of other formats named .png, a PNG header claiming a huge size, gaps in a CSV, empty and
huge-shape .npy), each one ``error:`` line and exit 2, never a traceback, a decoder outside PNG, or a
dropped value."""

from __future__ import annotations

import json
import struct
import threading
import zlib

import numpy as np
import pytest

from qatzoo.cli import main
from qatzoo.contract import ContractError
from qatzoo.model import Model
from tests.conftest import REPO

CNN = REPO / "zoo" / "mnist_cnn_int8" / "2"
FORECASTER = REPO / "zoo" / "attention_int8" / "4"


def refused(capsys, model_dir, path) -> str:
    """The one error line ``qatzoo predict`` gives for ``path`` (asserting exit 2 and a single line)."""
    assert main(["predict", str(model_dir), str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and not captured.out, captured
    return err[0]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def digit() -> np.ndarray:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 13:16] = 255
    return pixels


# ---- images: PNG only, the model's size, checked before decoding


def test_postscript_named_png_never_reaches_ghostscript(capsys, tmp_path, monkeypatch):
    bin_dir, marker = tmp_path / "bin", tmp_path / "gs-was-called"
    bin_dir.mkdir()
    gs = bin_dir / "gs"
    gs.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexit 1\n')
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    eps = tmp_path / "digit.png"
    eps.write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n%%EndComments\n"
        b"newpath 0 0 moveto 28 28 lineto stroke showpage\n%%EOF\n"
    )
    assert "not a PNG" in refused(capsys, CNN, eps)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "BMP", "JPEG"])
def test_other_formats_named_png_are_refused(capsys, tmp_path, fmt):
    from PIL import Image

    path = tmp_path / "digit.png"
    Image.fromarray(digit()).save(path, format=fmt)
    assert "not a PNG" in refused(capsys, CNN, path)


@pytest.mark.parametrize("size", [(9000, 9000), (20000, 20000), (28, 29)])
def test_a_png_of_another_size_is_refused_from_its_header(capsys, tmp_path, size):
    """The header's size is checked before any pixel is decoded: a 400-megapixel claim costs nothing."""
    width, height = size
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    row = b"\x00" + b"\x00" * width
    path = tmp_path / "huge.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(row * 4))  # a few rows only: the rest would be zeros
        + png_chunk(b"IEND", b"")
    )
    line = refused(capsys, CNN, path)
    assert "the model takes 28 x 28" in line
    assert f"{width} x {height} pixels" in line or f"({width * height} pixels)" in line  # Pillow's cap, past 179 M


def test_a_truncated_png_is_one_line(capsys, tmp_path):
    from PIL import Image

    whole = tmp_path / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert "not a readable image" in refused(capsys, CNN, cut)
    assert main(["predict", str(CNN), str(whole)]) == 0  # the whole file is fine
    capsys.readouterr()


# ---- series: no value dropped


def weeks(values) -> str:
    return "week,ppm\n" + "".join(f"2020-w{i},{v}\n" for i, v in enumerate(values))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (weeks([*range(400, 450), "", *range(450, 520)]), "row 52, column 2 (ppm): empty"),
        (weeks([*range(400, 450), "nan", *range(450, 520)]), "row 52, column 2 (ppm): 'nan' is not a finite number"),
        (weeks([*range(400, 520), "inf"]), "row 122, column 2 (ppm): 'inf' is not a finite number"),
        (weeks([*range(400, 450), "n/a", *range(450, 520)]), "row 52, column 2 (ppm): 'n/a' is not a number"),
        (weeks(range(400, 520)) + "\n" + weeks(range(4))[9:], "row 122 is empty"),
        ("week,ppm\n" + "w1\n" + weeks(range(400, 520))[9:], "row 2 has 1 columns, row 1 has 2"),
        ("".join(f"{v}\n" for v in [*range(400, 450), "nan", *range(450, 520)]), "row 51, column 1: 'nan'"),
        ("2020-w0,\n" + weeks(range(400, 520))[9:], "row 1, column 2: empty"),
        ("week,ppm\n", "holds no values"),
        ("", "holds no values"),
        (b"\xff\xfe4\x000\x000\x00", "not a readable series (UnicodeDecodeError"),
    ],
)
def test_a_csv_with_a_gap_or_a_bad_cell_is_refused_by_row_and_column(capsys, tmp_path, text, words):
    path = tmp_path / "series.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert words in refused(capsys, FORECASTER, path)


def test_a_csv_over_the_size_cap_is_not_read(capsys, tmp_path):
    from qatzoo.inputs import MAX_CSV_BYTES

    path = tmp_path / "series.csv"
    with open(path, "wb") as f:
        f.truncate(MAX_CSV_BYTES + 1)  # sparse: no disk or time spent
    assert f"larger than {MAX_CSV_BYTES} bytes" in refused(capsys, FORECASTER, path)


def test_a_csv_header_is_skipped_and_every_value_kept(capsys, tmp_path):
    values = 410 + 0.05 * np.arange(130)
    (tmp_path / "s.csv").write_text(weeks(values) + "\n\n")  # trailing blank lines: the end of the file
    (tmp_path / "plain.csv").write_text("".join(f"{v}\n" for v in values))
    assert main(["predict", str(FORECASTER), str(tmp_path / "s.csv"), "--json"]) == 0
    with_header = json.loads(capsys.readouterr().out)["forecast"]
    assert main(["predict", str(FORECASTER), str(tmp_path / "plain.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["forecast"] == with_header
    model = Model.from_run(FORECASTER)
    assert with_header == pytest.approx(model.predict(values).tolist())


# ---- arrays: the header read before the data


def npy_header(shape, descr="|u1") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


@pytest.mark.parametrize(
    ("model_dir", "make", "words"),
    [
        (CNN, lambda p: np.save(p, np.zeros((0, 28, 28), np.uint8)), "is empty"),
        (CNN, lambda p: np.save(p, np.zeros((28, 0), np.uint8)), "is empty"),
        (FORECASTER, lambda p: np.save(p, np.zeros(0)), "is empty"),
        (FORECASTER, lambda p: np.save(p, np.zeros((3, 0))), "is empty"),
        (CNN, lambda p: p.write_bytes(npy_header((10**6, 28, 28))), "too large"),  # 784 GB claimed, none there
        (CNN, lambda p: p.write_bytes(npy_header((10**12, 10**12))), "too large"),
        (FORECASTER, lambda p: p.write_bytes(npy_header((2**40,), "<f8")), "too large"),
        (CNN, lambda p: p.write_bytes(npy_header((2, 28, 28)) + b"\x00" * 100), "not a readable image"),
        (CNN, lambda p: p.write_bytes(npy_header((28, 28), "<c16")), "must be real numbers"),
        (CNN, lambda p: p.write_bytes(npy_header((28, 28), "<U3")), "must be real numbers"),
        (CNN, lambda p: p.write_bytes(b"\x93NUMPY\x01\x00\xff"), "not a readable image"),
        (CNN, lambda p: p.write_bytes(b"not numpy at all"), "not a readable image"),
        (CNN, lambda p: np.save(p, np.zeros((28, 28, 3), np.uint8)), "one image (28, 28)"),
        (CNN, lambda p: np.save(p, np.array([{"x": 1}], dtype=object), allow_pickle=True), "must be real numbers"),
    ],
)
def test_bad_npy_is_one_line_from_its_header(capsys, tmp_path, model_dir, make, words):
    path = tmp_path / "x.npy"
    make(path)
    assert words in refused(capsys, model_dir, path)


def test_model_predict_refuses_empty_batches():
    cnn, forecaster = Model.from_run(CNN), Model.from_run(FORECASTER)
    with pytest.raises(ContractError, match="the batch is empty"):
        cnn.predict(np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(ContractError, match="the batch is empty"):
        forecaster.predict(np.zeros((0, 104)))
    with pytest.raises(ContractError, match="must be numbers"):
        forecaster.predict(np.ones(104, np.complex128))  # the imaginary part would be dropped


# ---- one model, many threads


def test_predict_from_many_threads_gives_the_single_threaded_answers():
    model = Model.from_files(CNN / "model_int8.tflite", CNN / "contract.json")
    images = np.random.default_rng(0).integers(0, 256, (400, 28, 28), dtype=np.uint8)
    images[::2, 6:22, 13:16] = 255  # half of them a bar: answers that differ from image to image
    expected = [model.predict(image, probabilities=True) for image in images]
    answers, errors = [None] * len(images), []

    def work(start: int) -> None:
        try:
            for i in range(start, len(images), 8):  # 8 threads x 50 calls
                answers[i] = model.predict(images[i], probabilities=True)
        except Exception as error:  # noqa: BLE001 - any failure in a thread fails the test
            errors.append(repr(error))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    wrong = [i for i, (a, e) in enumerate(zip(answers, expected, strict=True)) if not np.array_equal(a, e)]
    assert not wrong, f"{len(wrong)} of {len(images)} answers differ"


def test_a_dated_csv_dates_the_forecast_and_an_undated_one_does_not(capsys, tmp_path):
    """A first column of ISO dates on every row dates each forecast week (CLI and --json); a first column of
    anything else (an index), or one date that is not, gives the plain forecast."""
    from qatzoo.inputs import forecast_dates

    weeks = np.datetime64("2000-01-01") + 7 * np.arange(120)
    values = 370 + 0.04 * np.arange(120)
    dated, undated = tmp_path / "dated.csv", tmp_path / "undated.csv"
    dated.write_text("date,ppm\n" + "".join(f"{w},{v:.2f}\n" for w, v in zip(weeks, values, strict=True)))
    undated.write_text("".join(f"{i},{v:.2f}\n" for i, v in enumerate(values)))
    assert main(["predict", str(FORECASTER), str(dated)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == forecast_dates([str(w) for w in weeks], 4)
    assert lines[0].startswith("2002-04-20: 37") and lines[0].endswith(" ppm")  # the week after 2002-04-13
    assert main(["predict", str(FORECASTER), str(dated), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dates"][-1] == "2002-05-11"
    assert main(["predict", str(FORECASTER), str(undated), "--json"]) == 0
    assert "dates" not in json.loads(capsys.readouterr().out)
    broken = dated.read_text().replace("2001-01-06", "week 53")
    dated.write_text(broken)
    assert main(["predict", str(FORECASTER), str(dated), "--json"]) == 0
    assert "dates" not in json.loads(capsys.readouterr().out)
    assert forecast_dates(["2000-01-08", "2000-01-01"], 4) is None and forecast_dates(["2000-01-01"], 4) is None
    assert forecast_dates(["9999-12-24", "9999-12-31"], 4) is None  # past the calendar: undated, no traceback
