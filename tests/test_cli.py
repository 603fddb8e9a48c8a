"""The CLI contract: one `error:` line last on stderr, exit 2, open progress bars closed first."""

import types

from tqdm import tqdm

from pipeline import cli
from pipeline.errors import UserError


def _failing_command(nested: bool):
    def run(args):
        outer = tqdm(total=3, desc="build")
        outer.update()
        if nested:
            inner = tqdm(total=10, desc="calibrate", leave=False)
            inner.update(4)
        raise UserError("calibration read no image")

    return types.SimpleNamespace(add_arguments=lambda p: None, run=run)


def test_error_line_comes_after_every_progress_bar(monkeypatch, capfd):
    monkeypatch.setattr(cli, "command_module", lambda name: _failing_command(nested=True))
    assert cli.main(["build"]) == 2
    err = capfd.readouterr().err
    assert err.rstrip("\n").splitlines()[-1] == "error: calibration read no image"
    tail = err[err.index("error: calibration") :]
    assert "\x1b[A" not in tail and "\r" not in tail  # no bar redrawn after the error
    assert not list(tqdm._instances)  # every bar closed


def test_only_the_command_that_runs_is_imported():
    parser = cli.make_parser(None)
    assert parser.parse_args(["models"]).command == "models"
    assert set(cli.COMMANDS) >= {"build", "fuse", "export", "engine", "infer"}
