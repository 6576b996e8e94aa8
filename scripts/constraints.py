"""Write constraints.txt: the exact version of every distribution ``qatzoo[all,dev]`` brings, as installed here.

    python scripts/constraints.py        # after changing pyproject.toml and installing with pip install -e ".[all,dev]"

pyproject.toml says which versions qatzoo works with (compatible ranges); constraints.txt says which ones CI
tests together (``pip install -e ".[all,dev]" -c constraints.txt``, the README's install line and .ci/run).
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.installs import REPO, _key, requirements  # noqa: E402

HEAD = """\
# The exact versions CI tests together (CPython 3.11, 2-core CPU, no GPU): the closure of qatzoo[all,dev] as pip
# resolved it. pyproject.toml holds the compatible ranges. Use: pip install -e ".[all,dev]" -c constraints.txt
# Regenerate after changing pyproject.toml: python scripts/constraints.py
"""


def main() -> None:
    wanted = requirements(("all", "dev")) - {"qatzoo"}
    versions = {_key(d.metadata["Name"]): f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()}
    absent = sorted(wanted - versions.keys())
    if absent:
        sys.exit(f"error: not installed here: {', '.join(absent)}; pip install -e '.[all,dev]' first")
    lines = sorted((versions[name] for name in wanted), key=str.lower)
    (REPO / "constraints.txt").write_text(HEAD + "\n".join(lines) + "\n")
    print(f"wrote constraints.txt ({len(lines)} distributions)")


if __name__ == "__main__":
    main()
