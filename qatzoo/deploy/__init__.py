"""Deployment targets for the int8 files: TensorFlow Lite Micro on a microcontroller, Arm Ethos-U through Vela.

``tflm`` loads and runs a .tflite with TFLM's own kernels on the host (missing ops named, arena measured,
outputs compared with LiteRT); ``vela`` compiles one for an Ethos-U NPU and reads Vela's estimates.
"""

from qatzoo.deploy.tflm import TflmError, TflmLoad, agreement, load, run
from qatzoo.deploy.vela import VelaError, VelaReport, compile

__all__ = ["TflmError", "TflmLoad", "VelaError", "VelaReport", "agreement", "compile", "load", "run"]
