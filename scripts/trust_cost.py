"""What verifying a signed zoo costs per download: unsigned and signed (--trust) side by side, over real HTTP.

    python scripts/trust_cost.py [--runs 20] [--model mnist_cnn_int8]

A copy of the committed model (its model, contract, card and sample) is served from a temporary zoo on 127.0.0.1
(tests/zoo_server.py), unsigned and signed with a fresh key. Each run downloads it with ``qatzoo.zoo.fetch`` into
a fresh cache ("cold": index, model, card, sample; signed also: TUF root/timestamp/snapshot/targets, contract,
bundle, and the bundle's ECDSA check), then again from that cache ("warm": the index re-read, the cached model
re-hashed; signed also: TUF refresh and the bundle check). Imports are paid once before timing; their cost is
printed separately (a fresh Python importing tuf and model_signing). Prints milliseconds and the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qatzoo.zoo import keys, signing  # noqa: E402
from qatzoo.zoo.download import Clock, Limits, fetch  # noqa: E402
from qatzoo.zoo.index import read_index  # noqa: E402
from qatzoo.zoo.trust import SignedZoo, verify_bundle  # noqa: E402
from tests.zoo_server import ZooServer  # noqa: E402


def cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU (no lscpu)"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown").strip()
    return f"{name}, {fields.get('CPU(s)', '?').strip()} CPUs"


def zoo_of(name: str, folder: Path) -> Path:
    entry = next(e for e in read_index(REPO / "zoo" / "index.json")["models"] if e["name"] == name)
    shutil.copytree(REPO / "zoo" / name / entry["version"], folder / name / entry["version"])
    (folder / "index.json").write_text(json.dumps({"schema": 2, "models": [entry]}, indent=2) + "\n")
    return folder


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def import_cost() -> float:
    code = "import time; t = time.perf_counter(); import tuf.ngclient, model_signing.verifying; print((time.perf_counter() - t) * 1000)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--model", default="mnist_cnn_int8")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="qatzoo-trust-cost-") as tmp:
        tmp = Path(tmp)
        unsigned = zoo_of(args.model, tmp / "unsigned")
        signed = zoo_of(args.model, tmp / "signed")
        private, _ = keys.new(tmp / "key")
        signing.sign_zoo(signed, private)
        root = tmp / "root.json"
        shutil.copyfile(signed / "metadata" / "root.json", root)
        size = (signed / args.model / "1" / "model_int8.tflite").stat().st_size
        times: dict[tuple[str, str], list[float]] = {}
        with ZooServer(unsigned) as plain_server, ZooServer(signed) as signed_server:
            modes = {
                "unsigned": dict(index=f"{plain_server.url}/index.json"),
                "signed (--trust)": dict(index=f"{signed_server.url}/index.json", trust=root),
            }
            for i in range(args.runs + 1):  # run 0 warms imports and the servers, not counted
                for mode, kwargs in modes.items():
                    os.environ["QATZOO_CACHE"] = str(tmp / f"cache-{i}-{mode[:6]}")
                    cold = timed(lambda kwargs=kwargs: fetch(args.model, progress=False, **kwargs))
                    warm = timed(lambda kwargs=kwargs: fetch(args.model, progress=False, **kwargs))
                    if i:
                        times.setdefault((mode, "cold"), []).append(cold)
                        times.setdefault((mode, "warm"), []).append(warm)
            requests = {"unsigned": len(plain_server.requests), "signed (--trust)": len(signed_server.requests)}
            folder = signed / args.model / "1"
            files, bundle = signing.bundle_files(folder), (folder / signing.BUNDLE).read_bytes()
            pem = keys.load_private(private).public_pem()
            bundle_ms = statistics.median(timed(lambda: verify_bundle(files, bundle, [pem])) for _ in range(args.runs))
            os.environ["QATZOO_CACHE"] = str(tmp / "cache-refresh")
            url = modes["signed (--trust)"]["index"]
            refresh_ms = statistics.median(
                timed(lambda: SignedZoo(url, Clock(Limits.resolve()), trust=root)) for _ in range(args.runs)
            )
    print(f"CPU: {cpu()}; Python {sys.version.split()[0]}; model {args.model} ({size:,} bytes), {args.runs} runs")
    print(
        f"{'':18s} {'cold median':>12s} {'cold p90':>9s} {'warm median':>12s} {'warm p90':>9s} {'requests (cold+warm)':>21s}"
    )
    for mode in ("unsigned", "signed (--trust)"):
        cold, warm = sorted(times[(mode, "cold")]), sorted(times[(mode, "warm")])
        p90 = lambda xs: xs[min(len(xs) - 1, int(0.9 * len(xs)))]  # noqa: E731
        per_run = requests[mode] / (args.runs + 1)
        print(
            f"{mode:18s} {statistics.median(cold):10.1f} ms {p90(cold):6.1f} ms {statistics.median(warm):10.1f} ms "
            f"{p90(warm):6.1f} ms {per_run:21.1f}"
        )
    extra_cold = statistics.median(times[("signed (--trust)", "cold")]) - statistics.median(times[("unsigned", "cold")])
    extra_warm = statistics.median(times[("signed (--trust)", "warm")]) - statistics.median(times[("unsigned", "warm")])
    print(f"verification adds {extra_cold:.1f} ms to a first download and {extra_warm:.1f} ms to a cached one")
    print(
        f"of which: the bundle check (model-signing, ECDSA P-256 over the model, contract and card) {bundle_ms:.1f} ms; "
        f"a TUF refresh with the metadata already cached (root probe, timestamp) {refresh_ms:.1f} ms"
    )
    print(f"one-off import of tuf.ngclient + model_signing in a fresh Python: {import_cost():.0f} ms")


if __name__ == "__main__":
    main()
