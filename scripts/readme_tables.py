"""Rewrite README.md's generated tables (``<!-- generated: NAME -->`` blocks) from zoo/index.json.

    python scripts/readme_tables.py            # rewrite them
    python scripts/readme_tables.py --check    # exit 1 if README.md differs from what the index gives

tests/test_zoo.py runs the check, so a publish that is not followed by this script fails the suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qatzoo.zoo.index import read_index
from qatzoo.zoo.readme import render

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when README.md is stale")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = render(text, read_index(ROOT / "zoo" / "index.json"))
    if args.check:
        if new != text:
            print("README.md's generated tables differ from zoo/index.json: python scripts/readme_tables.py")
            return 1
        return 0
    if new != text:
        readme.write_text(new)
        print("README.md: generated tables rewritten from zoo/index.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
