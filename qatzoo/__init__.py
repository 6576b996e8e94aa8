"""qatzoo: a declarative zoo of quantization-aware-training recipes for TensorFlow.

Importing this package imports nothing heavy; TensorFlow is imported by the modules that need it.
"""

__version__ = "0.1.0"
