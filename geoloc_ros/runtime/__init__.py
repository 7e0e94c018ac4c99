"""Inference backends (PyTorch, ONNX Runtime, TensorRT) and model export."""
