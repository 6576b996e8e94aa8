"""Deployment runtimes for the int8 files, one module each: LiteRT on this CPU (``litert_cpu``), TensorFlow
Lite Micro on a microcontroller (``tflm``), an Arm Ethos-U NPU through Vela (``vela``).

Each module declares a :class:`~qatzoo.deploy.runtime.Runtime`; :data:`RUNTIMES` lists them, in the order
of the deployment report, the card and the summary. Adding a runtime: write its module, add it here.
"""

from qatzoo.deploy import litert_cpu, tflm, vela
from qatzoo.deploy.runtime import ModelFile, Registry, Runtime, ZooColumn
from qatzoo.deploy.tflm import TflmError, TflmLoad, agreement, load, run
from qatzoo.deploy.vela import VelaError, VelaReport, compile

#: The registered runtimes (the one place that lists them).
RUNTIMES = Registry(litert_cpu.RUNTIME, tflm.RUNTIME, vela.RUNTIME)

__all__ = [
    "RUNTIMES",
    "ModelFile",
    "Registry",
    "Runtime",
    "TflmError",
    "TflmLoad",
    "VelaError",
    "VelaReport",
    "ZooColumn",
    "agreement",
    "compile",
    "load",
    "run",
]
