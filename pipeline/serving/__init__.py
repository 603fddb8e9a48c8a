"""Where engines go next: a Triton model repository and a DeepStream `nvinfer` configuration.

Pure text generation from facts owned elsewhere (the engine's profile record, the ONNX's I/O,
the shared preprocessing constants); nothing here runs a model. See docs/serving.md.
"""
