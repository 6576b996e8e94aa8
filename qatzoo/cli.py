"""The ``qatzoo`` command: look at recipes and check exported models.

qatzoo recipes                 # the shipped recipes and the command that runs each
qatzoo check MODEL.tflite      # is it full integer? which ops, which input/output quantization
"""

from __future__ import annotations

import argparse
import sys

from qatzoo.config import RECIPES_DIR, recipe_names


def _recipes(_args) -> int:
    for name in recipe_names():
        lines = (RECIPES_DIR / f"{name}.yaml").read_text().splitlines()
        about = next((line.lstrip("# ").strip() for line in lines[1:] if line.startswith("#")), "")
        print(f"{name:20s} {about}\n{'':20s} python train.py recipe={name}")
    return 0


def _check(args) -> int:
    from qatzoo.export.checks import full_integer
    from qatzoo.export.litert import interpreter, io_quant

    report = full_integer(args.model)
    inp, out = io_quant(interpreter(args.model))
    print(f"ops: {', '.join(report.ops)}")
    print(f"input: {inp.dtype} scale {inp.scale:.8g} zero point {inp.zero_point}")
    print(f"output: {out.dtype} scale {out.scale:.8g} zero point {out.zero_point}")
    if report.ok:
        print("full integer: yes")
        return 0
    print(
        f"full integer: NO ({len(report.non_integer)} tensors): " + ", ".join(t["name"] for t in report.non_integer[:5])
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qatzoo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("recipes", help="list the shipped recipes").set_defaults(func=_recipes)
    check = sub.add_parser("check", help="full-integer check of a .tflite model")
    check.add_argument("model", help="path to a .tflite file")
    check.set_defaults(func=_check)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
