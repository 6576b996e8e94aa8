"""Add what zoo entries published before them lack: the deployment report, the model contract, the baselines.

    python scripts/zoo_backfill.py [--zoo zoo] [--data-dir DIR] [NAME@VERSION ...]   # default: every entry lacking one

For each entry: the file's sha256 is checked against the index, then every registered deployment runtime
(``qatzoo.deploy.RUNTIMES``) measures it on the full test split (``qatzoo.deploy.report.build``; int8 only: the
float model is not in the zoo), and the report is written into the entry as ``deployment``. The contract (``qatzoo.contract``) comes from the dataset's code and the file's
input/output quantization; it goes into the entry and beside the model as ``contract.json``. The index is
rewritten under its lock; nothing else in an entry changes. The baselines (``qatzoo.baselines``: classical
models fitted on the entry's training split) do not depend on the model file; they are computed when missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    from qatzoo import quiet
    from qatzoo.baselines import baselines
    from qatzoo.contract import contract
    from qatzoo.deploy.report import build, summary
    from qatzoo.export.litert import interpreter, io_quant
    from qatzoo.files import sha256_file, write_json
    from qatzoo.zoo.index import ZooError, locked_index, write_index
    from qatzoo.zoo.publish import write_readme
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
                complete = all(key in entry for key in ("deployment", "contract", "baselines"))
                if (args.models and spec not in args.models) or (not args.models and complete):
                    continue
                path = zoo / entry["location"]
                if sha256_file(path) != entry["sha256"]:
                    raise ZooError(f"{path} is not the file the index lists (sha256 differs)")
                config = entry["config"]["data"]
                data = load_test_data(entry["dataset"]["name"], config, args.data_dir or config.get("data_dir"))
                blob = path.read_bytes()
                if "deployment" not in entry or args.models:
                    entry["deployment"] = build(blob, None, data.x_test, lambda y, d=data: d.task.score(d.y_test, y))
                    print(f"{spec}: {summary(entry['deployment'])}")
                if "baselines" not in entry:
                    entry["baselines"] = baselines(data)
                in_q, out_q = io_quant(interpreter(blob))
                entry["contract"] = contract(
                    entry["task"], data.contract["input"], data.contract["output"], in_q, out_q
                )
                write_json(path.with_name("contract.json"), entry["contract"])
            write_index(zoo, index)
            write_readme(zoo)
    except ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
