"""Backfill the zoo's cards: beside each published card, the test split's first input (``sample.png`` or
``sample.csv``); in the card, its "Use it" section naming its version and reading that file as written, and its
"Limitations" (the data's period, the input's conventions, changed inputs measured on the file in LiteRT).

    python scripts/zoo_cards.py [--data-dir D]
    python scripts/zoo_cards.py --index-only      # only record the samples already there in the index

``qatzoo publish`` does the same for every new version; this script is for the versions published before it.
Only the cards, the samples and each entry's ``sample`` field (location, size, sha256: what ``download``
checks) change: no model file and no other field (the zoo's sha256 values stay).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from qatzoo.files import write_bytes, write_text
from qatzoo.zoo.index import SAMPLE_SUFFIXES, locked_index, read_index, write_index
from qatzoo.zoo.limitations import measure, section, with_limitations
from qatzoo.zoo.samples import sample, with_use_it
from qatzoo.zoo.verify import load_test_data

ZOO = Path(__file__).resolve().parents[1] / "zoo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="where the datasets are prepared (default: TFDS's)")
    parser.add_argument("--index-only", action="store_true", help="only record the samples in the index")
    args = parser.parse_args()
    if not args.index_only:
        write_cards(args.data_dir)
    record_samples(ZOO)


def record_samples(zoo: Path) -> None:
    """Each entry's ``sample`` field, from the sample file beside its card (an entry without one is left alone)."""
    with locked_index(zoo) as index:
        for entry in index["models"]:
            folder = zoo / entry["name"] / entry["version"]
            found = [folder / f"sample{suffix}" for suffix in SAMPLE_SUFFIXES if (folder / f"sample{suffix}").is_file()]
            if len(found) == 1:
                blob = found[0].read_bytes()
                entry["sample"] = {
                    "location": f"{entry['name']}/{entry['version']}/{found[0].name}",
                    "size": len(blob),
                    "sha256": hashlib.sha256(blob).hexdigest(),
                }
        write_index(zoo, index)


def write_cards(data_dir: str | None) -> None:
    built: dict = {}
    for entry in read_index(ZOO / "index.json")["models"]:
        params = entry["config"]["data"]
        key = (entry["dataset"]["name"], repr(sorted(params.items())))
        if key not in built:
            built[key] = load_test_data(entry["dataset"]["name"], params, data_dir)
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
