"""Stages: plain functions from artifact to artifact, each returning a `StageRecord`.

export → fuse → precision (fp16) / quantize (int8, fp8) → parity → engine; `calibrate` is the
quantize stage's statistics; `explain` draws class-attention maps from a deployed model. The CLI's commands only chain them; each stage records itself in the artifact
folder's manifest.json and is not re-run when its inputs and settings are unchanged.
"""
