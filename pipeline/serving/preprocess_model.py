"""Triton Python-backend model: encoded image bytes (JPEG, PNG, …) → the classifier's input.

`python -m pipeline package triton` writes this file as `<name>_preprocess/1/model.py`, beside an
unchanged copy of the project's preprocessing module (`pipeline/data/preprocess.py` and the
`pipeline/errors.py` it imports), so the server preprocesses exactly as the Paddle reference,
calibration, parity and `eval` do. The Python backend's environment needs numpy and pillow.
Tensor names, size and dtype are read from this model's config.pbtxt, never written here.
"""

import io
import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

# the vendored `pipeline` package lies beside this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pipeline.data.preprocess import load_image, preprocess  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.input_name = config["input"][0]["name"]
        out = config["output"][0]
        self.output_name = out["name"]
        self.size = int(out["dims"][-1])
        self.dtype = pb_utils.triton_string_to_numpy(out["data_type"])

    def execute(self, requests):
        responses = []
        for request in requests:
            blobs = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            try:
                batch = np.stack(
                    [preprocess(load_image(io.BytesIO(bytes(b))), self.size) for b in blobs.ravel()]
                )
            except Exception as e:  # an unreadable image fails its own request, not the batch
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e))))
                continue
            tensor = pb_utils.Tensor(self.output_name, batch.astype(self.dtype))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses
