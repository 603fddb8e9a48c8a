"""Stages: plain functions from artifact to artifact (design §1). The CLI only chains them."""
