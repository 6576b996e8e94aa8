"""Quantization: quantizers, QuantizeConfigs, the layer->config registry and the schemes."""
