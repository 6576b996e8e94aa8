"""Measure the deployment report of zoo entries published before it existed, on their published bytes.

    python scripts/zoo_deployment.py [--zoo zoo] [--data-dir DIR] [NAME@VERSION ...]   # default: every entry without one

For each entry: the file's sha256 is checked against the index, then LiteRT CPU latency (int8 only: the
float model is not in the zoo), TensorFlow Lite Micro on the full test split (metric, agreement with
LiteRT, arena) and Vela's Ethos-U55 estimates are measured (``qatzoo.deploy.report``) and written into the
entry as ``deployment``. The index is rewritten under its lock; nothing else in an entry changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    from qatzoo import quiet
    from qatzoo.deploy.report import build
    from qatzoo.zoo.index import ZooError, locked_index, write_index
    from qatzoo.zoo.publish import sha256_file, write_readme
    from qatzoo.zoo.verify import load_test_data

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="NAME@VERSION (default: every entry without a deployment report)")
    parser.add_argument("--zoo", default=str(REPO / "zoo"), help="zoo directory (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory (default: each entry's config)")
    args = parser.parse_args()
    quiet.configure(verbose=0)
    zoo = Path(args.zoo)
    try:
        with locked_index(zoo) as index:
            for entry in index["models"]:
                spec = f"{entry['name']}@{entry['version']}"
                if (args.models and spec not in args.models) or (not args.models and "deployment" in entry):
                    continue
                path = zoo / entry["location"]
                if sha256_file(path) != entry["sha256"]:
                    raise ZooError(f"{path} is not the file the index lists (sha256 differs)")
                config = entry["config"]["data"]
                data = load_test_data(entry["dataset"]["name"], config, args.data_dir or config.get("data_dir"))
                entry["deployment"] = build(
                    path.read_bytes(), None, data.x_test, lambda y, d=data: d.task.score(d.y_test, y)
                )
                print(f"{spec}: {entry['deployment']['tflm']}")
            write_index(zoo, index)
            write_readme(zoo)
    except ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
