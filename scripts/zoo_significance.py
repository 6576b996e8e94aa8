"""Backfill the zoo's comparisons: every entry's baselines (with the full-training-set image baseline) and the
significance of its int8 model against each (Diebold-Mariano for forecasts, McNemar for classifiers), in the
index and the card's "## Baselines" section.

    python scripts/zoo_significance.py [--data-dir D] [NAME@VERSION ...]   # default: every entry

For each entry: the model file's sha256 is checked against the index, the file runs in LiteRT on the full test
split (its metric must equal the index's), the baselines are fitted again on the entry's training split (each
number the index already lists must come out the same, within :data:`SAME`: an optimizer's last digits differ
between CPUs; the index keeps its numbers), and
:func:`qatzoo.significance.against` compares the file's test losses with each baseline's. ``qatzoo publish``
does the same for every new version (from the run's metrics.json); this script is for those published before.
No model file changes (the zoo's sha256 values stay).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ZOO = Path(__file__).resolve().parents[1] / "zoo"
#: How far a refitted baseline's number may be from the index's and still be the same fit: an optimizer's last
#: digits differ between CPUs (ARIMA: 2e-9 ppm of 0.37; logistic regression: one test image). MAE: relative;
#: accuracy: test examples.
SAME = {"mae": 1e-6, "accuracy": 1}


def _same(metric: str, new: float, old: float, examples: int) -> bool:
    if metric == "accuracy":
        return abs(new - old) * examples / 100.0 <= SAME["accuracy"] + 1e-6
    return abs(new - old) <= SAME["mae"] * abs(old)


def main() -> int:
    from qatzoo import quiet
    from qatzoo.baselines import baselines
    from qatzoo.files import sha256_file, write_text
    from qatzoo.render.card import baseline_lines
    from qatzoo.significance import against, sentence
    from qatzoo.zoo.index import ZooError, locked_index, write_index
    from qatzoo.zoo.publish import write_readme
    from qatzoo.zoo.verify import TOLERANCE, gap, load_test_data, predictions

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="NAME@VERSION (default: every entry)")
    parser.add_argument("--zoo", default=str(ZOO), help="zoo directory (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="where the datasets are prepared (default: TFDS's)")
    args = parser.parse_args()
    quiet.configure(verbose=0)
    zoo = Path(args.zoo)
    built: dict = {}
    try:
        with locked_index(zoo) as index:
            for entry in index["models"]:
                spec = f"{entry['name']}@{entry['version']}"
                if args.models and spec not in args.models:
                    continue
                path = zoo / entry["location"]
                if sha256_file(path) != entry["sha256"]:
                    raise ZooError(f"{path} is not the file the index lists (sha256 differs)")
                params = entry["config"]["data"]
                key = (entry["dataset"]["name"], repr(sorted(params.items())))
                if key not in built:
                    data = load_test_data(entry["dataset"]["name"], params, args.data_dir)
                    built[key] = (data, baselines(data))
                data, fitted = built[key]
                y = predictions(path.read_bytes(), data)
                metric, value = entry["metric"], data.task.score(data.y_test, y)
                recorded = entry["metrics"][entry["int8_model"]]
                if gap(metric, value, recorded) > TOLERANCE[metric]:
                    raise ZooError(f"{spec}: the file measures {metric} {value:.4f}, the index says {recorded:.4f}")
                table = dict(fitted)
                for name, old in (entry.get("baselines") or {}).items():
                    if name in fitted and not _same(metric, fitted[name][metric], old[metric], len(data.y_test)):
                        raise ZooError(
                            f"{spec}: baseline {name} now gives {metric} {fitted[name][metric]:.6f}, the index "
                            f"says {old[metric]:.6f}"
                        )
                    table[name] = old  # the same fit (an optimizer's last digits differ between CPUs): kept
                entry["baselines"] = table
                entry["significance"] = against(data.task, data.task.losses(data.y_test, y), table, fitted.losses)
                card = zoo / entry["card"]
                lines = baseline_lines(
                    table, metric, entry["unit"], recorded, entry["higher_is_better"], entry["significance"]
                )
                write_text(card, _with_baselines(card.read_text(), lines))
                print(f"{spec}: {metric} {value:.4f}; {sentence(entry['significance'], metric)}")
            write_index(zoo, index)
            write_readme(zoo)
    except ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _with_baselines(text: str, lines: list[str]) -> str:
    """``text`` (a card) with its "## Baselines" section, up to the next heading or figure, replaced (a card
    published before baselines existed: inserted before "## Use it")."""
    rows = text.split("\n")
    if "## Baselines" not in rows:
        at = rows.index("## Use it")
        return "\n".join([*rows[:at], *lines, "", *rows[at:]])
    start = rows.index("## Baselines")
    end = next(i for i in range(start + 1, len(rows)) if rows[i].startswith("## ") or rows[i].startswith("!["))
    return "\n".join([*rows[:start], *lines, "", *rows[end:]])


if __name__ == "__main__":
    sys.exit(main())
