"""Telling how far each stage of the ladder drifted from Paddle.

`metrics` turns logits into the ladder's figures and checks them against thresholds (data);
`report` writes parity.md and parity.png. Running the stages is `pipeline.runners`; the ladder
itself is the stage function `pipeline.stages.parity.parity_ladder`.
"""
