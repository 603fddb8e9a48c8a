"""TensorRT side of the pipeline: static checks, engine building, profiling.

Nothing here imports `tensorrt` at module import time: the CPU stages, the checker and the
command-line builders must work on machines without TensorRT. Every
version-dependent fact lives in `versions.py` with its source.
"""
