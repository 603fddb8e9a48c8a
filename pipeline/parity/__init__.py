"""Running every stage of the ladder on the same images and telling how far each one drifted.

`backends.open_stage` runs one stage (Paddle, an ONNX artifact through ONNX Runtime, an engine),
`metrics` turns logits into the ladder's figures, `report` writes parity.md and the PNG. The
ladder itself is the stage function `pipeline.stages.parity.parity_ladder`.
"""
