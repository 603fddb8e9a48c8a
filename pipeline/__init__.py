"""CaiT → TensorRT deployment pipeline (PaddlePaddle → ONNX → fused ONNX → FP16/INT8 → engine)."""

__version__ = "0.1.0"
