"""What 4-bit weights buy and cost on each runtime: a low-bit run's int8 file in the storage each runtime takes.

    python scripts/lowbit_deploy.py RUN_DIR [RUN_DIR ...] [--out FILE.json]   # a quant=w4a8 run (any QAT run)

For each run directory (a QAT run whose kernels lie on a 4-bit grid, e.g. ``quant=w4a8``): the file the
converter wrote (kernels packed as INT4), the same file with every kernel stored as INT8
(:func:`qatzoo.export.lowbit.int8_storage`: the same values), with only its convolutions stored as INT8 (INT4
kept for FULLY_CONNECTED), and the run's PTQ int8 file (8-bit weights, the same float model) for reference.
Each goes through the deployment report (:mod:`qatzoo.deploy.report`: LiteRT on this CPU with XNNPACK, TensorFlow
Lite Micro's interpreter on the test split, Vela for an Ethos-U55), side by side in one process; the table
names the CPU. The test metric is LiteRT's on the full test split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def variants(run_dir: Path) -> dict[str, bytes]:
    from qatzoo.export.lowbit import int8_storage
    from qatzoo.export.scheme_files import STORED_AS_INT8

    converted = (run_dir / "model_int8.tflite").read_bytes()
    out = {
        "as the run wrote it": converted,
        "INT8 storage (quant=w4a8_npu)": int8_storage(converted, STORED_AS_INT8["int8"]),
        "INT8 convolutions, INT4 FULLY_CONNECTED (quant=w4a8_cpu)": int8_storage(
            converted, STORED_AS_INT8["int4_dense"]
        ),
    }
    ptq = run_dir / "model_ptq_int8.tflite"
    if ptq.is_file():
        out["PTQ int8 (8-bit weights, reference)"] = ptq.read_bytes()
    return out


def measure(run_dir: Path) -> dict:
    from qatzoo.artifacts import read_yaml
    from qatzoo.deploy.report import build
    from qatzoo.export import evaluate
    from qatzoo.export.lowbit import weight_levels
    from qatzoo.report import RunReport
    from qatzoo.zoo.verify import load_test_data

    report = RunReport.read(run_dir)
    saved = read_yaml(run_dir / "config.yaml")
    params = {k: v for k, v in saved["data"].items() if k != "task"}
    data = load_test_data(params["name"], params, params.get("data_dir"))
    float_blob = (run_dir / "model_float.tflite").read_bytes()
    rows = {}
    for name, blob in variants(run_dir).items():
        predictions = evaluate.predict(blob, data.x_test)
        rows[name] = {
            "bytes": len(blob),
            "storage": sorted({k["storage"] for k in weight_levels(blob)}),
            "metric": evaluate.score(data, predictions),
            "deployment": build(
                blob, float_blob, data.x_test, lambda y: data.task.score(data.y_test, y), predictions=predictions
            ),
        }
    return {"run": str(run_dir), "name": report.name, "scheme": report.quant, "metric": report.metric, "rows": rows}


def table(result: dict) -> list[str]:
    lines = [
        f"{result['name']} ({result['scheme']}), {result['metric']} on the test split:",
        "",
        "| file | bytes | kernels | LiteRT metric | LiteRT int8 us (x float), CPU | XNNPACK outside | TFLite Micro "
        "arena / flash | Ethos-U55 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["rows"].items():
        d = row["deployment"]
        cpu, micro, npu = d["litert_cpu"], d["tflm"], d["ethos_u55"]
        outside = ", ".join(sorted(set(cpu["xnnpack"]["int8"]["outside"]))) or "none"
        tflm = f"{micro['arena_bytes']:,} / {micro['flash_bytes']:,} B" if micro["runs"] else f"no ({micro['error']})"
        u55 = (
            f"does not compile: {npu['error'][:120]}"
            if "error" in npu
            else f"{npu['npu_share']:.0%} NPU, {npu['inference_ms']:.3f} ms, SRAM {npu['sram_bytes']:,} B, "
            f"flash {npu['flash_bytes']:,} B"
        )
        latency = f"{cpu['int8_us']:.1f}" + (f" ({cpu['int8_over_float']:.2f}x)" if "int8_over_float" in cpu else "")
        lines.append(
            f"| {name} | {row['bytes']:,} | {'/'.join(row['storage'])} | {row['metric']:.4g} | {latency}, "
            f"{cpu['cpu']} | {outside} | {tflm} | {u55} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="also write the measurements as JSON")
    args = parser.parse_args()
    from qatzoo import quiet

    quiet.configure(verbose=0)
    results = [measure(run) for run in args.runs]
    for result in results:
        print("\n".join(table(result)) + "\n")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
