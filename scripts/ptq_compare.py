"""PTQ of finished runs' float models, before and after the switch to LiteRT's quantizer, side by side.

For each run directory: its float Keras model, data and representative sample (the run's config), made into
the converter's post-training int8 file (``TFLiteConverter``, the path used before), LiteRT's quantizer's
static int8 file with its default calibration (moving average) and with min/max calibration (the PTQ baseline now) and its int16-activation file (``quant=ptq_a16w8``); each measured in
LiteRT on the full test split, with the full-integer check and agreement with the float .tflite.

    python scripts/ptq_compare.py RUN_DIR [RUN_DIR ...]     # prints a markdown table
"""

from __future__ import annotations

import argparse
from pathlib import Path


def compare(run_dir: Path) -> dict:
    from qatzoo.export import checks, evaluate, ptq
    from qatzoo.export.tflite import strip_names, to_float_tflite, to_int8_tflite
    from qatzoo.tools.sensitivity import _load_run

    cfg, data, model = _load_run(run_dir, None)
    representative = data.representative(cfg.trainer.representative_samples, cfg.trainer.seed)
    float_file = to_float_tflite(model)
    files = {
        "float": float_file,
        "converter int8": to_int8_tflite(model, lambda: representative),
        "quantizer int8, moving average": ptq.quantize(float_file, representative, "a8w8", "moving_average"),
        "quantizer int8": ptq.quantize(float_file, representative, "a8w8"),
        "quantizer a16w8": ptq.quantize(float_file, representative, "a16w8"),
    }
    wide = ("int8", "int16", "int32", "int64")
    predictions = {name: evaluate.predict(strip_names(blob), data.x_test) for name, blob in files.items()}
    return {
        "run": cfg.name,
        "data": f"{data.name} ({len(data.x_test):,} test)",
        "epochs": cfg.schedule.float_epochs,
        "metric": data.task.metric,
        "models": {
            name: {
                "score": evaluate.score(data, predictions[name]),
                "full_integer": name == "float"
                or checks.full_integer(files[name], wide if "a16" in name else checks.INTEGER_TYPES).ok,
                "agreement": evaluate.agreement(data, predictions[name], predictions["float"]),
                "bytes": len(strip_names(files[name])),
            }
            for name in files
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    names = ("float", "converter int8", "quantizer int8, moving average", "quantizer int8", "quantizer a16w8")
    print(f"| run | data | float epochs | metric | {' | '.join(names)} |")
    print("|" + "---|" * (4 + len(names)))
    for run in args.runs:
        r = compare(run)
        cells = []
        for name in names:
            m = r["models"][name]
            text = f"{m['score']:.4f}" if r["metric"] == "mae" else f"{m['score']:.2f}%"
            if name != "float":
                text += f" (agree {m['agreement']:.4g}{'' if m['full_integer'] else ', NOT full integer'})"
            cells.append(text)
        print(f"| {r['run']} | {r['data']} | {r['epochs']} | {r['metric']} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
