"""One way to raise errors the user can act on (Polygraphy style: verbose rather than cryptic).

A `UserError` is printed by the CLI as a single `error: …` line on stderr with exit code 2 and
no traceback (unless `--verbose`). Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input or environment: the message says what is wrong and how to fix it."""

    exit_code = 2
