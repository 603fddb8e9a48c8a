"""One module per CLI command (see `pipeline.cli.COMMANDS`)."""
