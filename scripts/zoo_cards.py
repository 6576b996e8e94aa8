"""Backfill the zoo's cards: beside each published card, the test split's first input (``sample.png`` or
``sample.csv``); in the card, its "Use it" section naming its version and reading that file as written, and its
"Limitations" (the data's period, the input's conventions, changed inputs measured on the file in LiteRT).

    python scripts/zoo_cards.py [--data-dir D]

``qatzoo publish`` does the same for every new version; this script is for the versions published before it.
Only the cards and the samples change: no model file, no index entry (the zoo's sha256 values stay).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qatzoo.files import write_bytes, write_text
from qatzoo.zoo.index import read_index
from qatzoo.zoo.limitations import measure, section, with_limitations
from qatzoo.zoo.samples import sample, with_use_it
from qatzoo.zoo.verify import load_test_data

ZOO = Path(__file__).resolve().parents[1] / "zoo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="where the datasets are prepared (default: TFDS's)")
    args = parser.parse_args()
    built: dict = {}
    for entry in read_index(ZOO / "index.json")["models"]:
        params = entry["config"]["data"]
        key = (entry["dataset"]["name"], repr(sorted(params.items())))
        if key not in built:
            built[key] = load_test_data(entry["dataset"]["name"], params, args.data_dir)
        name, version = entry["name"], entry["version"]
        file_name, blob, words = sample(built[key], entry["contract"])
        folder = ZOO / name / version
        write_bytes(folder / file_name, blob)
        card = folder / "card.md"
        text = with_use_it(card.read_text(), f"{name}@{version}", entry["contract"], words)
        rows = measure((folder / "model_int8.tflite").read_bytes(), entry["contract"], built[key])
        text = with_limitations(text, section(rows, built[key], entry["contract"], entry["metric"], entry["unit"]))
        write_text(card, text)
        print(f"{name}@{version}: {file_name} ({len(blob):,} bytes); " + "; ".join(f"{w} {v:.4g}" for w, v in rows))


if __name__ == "__main__":
    main()
