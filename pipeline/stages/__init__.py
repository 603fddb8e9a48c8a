"""Stages: plain functions from artifact to artifact, each returning a `StageRecord`.

export → fuse → precision (fp16) / quantize (int8) → parity → engine; `calibrate` is the INT8
stage's statistics. The CLI's commands only chain them; each stage records itself in the artifact
folder's manifest.json and is not re-run when its inputs and settings are unchanged.
"""
