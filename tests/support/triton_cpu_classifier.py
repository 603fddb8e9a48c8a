"""A Triton Python-backend model that stands in for `<name>_trt` where Triton has no TensorRT
backend (PyTriton's server): the same I/O, the ONNX on the project's ONNX Runtime runner.

The test writes it as `<name>_trt/1/model.py` and turns the generated config into a Python-backend
one (`tests/support/serving.py: cpu_classifier`); `parameters` carry the ONNX and the checkout.
"""

import json
import sys

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        sys.path.insert(0, params["pipeline_root"])
        from pipeline.runners.ort import OrtRunner

        self.runner = OrtRunner(params["onnx"])
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            logits = self.runner.run(x)
            out = pb_utils.Tensor(self.output_name, logits)
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
