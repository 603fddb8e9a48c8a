"""Engine settings: one owner for the defaults of every engine build (the `engine` stage, the
`engine` and `build` commands, the trtexec lines and the target script)."""

from __future__ import annotations

import dataclasses

from pipeline.errors import UserError
from pipeline.trt.versions import DEFAULT_TARGET, normalize_target


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    batch: tuple[int, int, int] = (1, 8, 32)  # optimization profile min:opt:max, batch axis
    workspace: str = "2G"  # workspace memory pool limit
    opt_level: int = 3  # builder optimization level 0–5
    timing_cache: str | None = None  # loaded before and saved after a build
    target: str = DEFAULT_TARGET  # TensorRT the script assumes if it cannot ask

    def __post_init__(self):
        b = tuple(int(x) for x in self.batch)
        if len(b) != 3 or not 1 <= b[0] <= b[1] <= b[2]:
            raise UserError(
                f"--batch {':'.join(map(str, b))}: write min:opt:max with "
                "1 ≤ min ≤ opt ≤ max, e.g. 1:8:32"
            )
        object.__setattr__(self, "batch", b)
        object.__setattr__(self, "target", normalize_target(self.target))
        object.__setattr__(self, "workspace", str(self.workspace))
        object.__setattr__(self, "opt_level", int(self.opt_level))

    @property
    def batch_text(self) -> str:
        return ":".join(map(str, self.batch))

    def as_record(self) -> dict:
        """What the manifest records (a changed value means a different engine)."""
        return {
            "batch": list(self.batch),
            "workspace": self.workspace,
            "opt_level": self.opt_level,
            "timing_cache": self.timing_cache,
            "trt_target": self.target,
        }


DEFAULTS = EngineSettings()


def parse_batch(text: str) -> tuple[int, int, int]:
    """`--batch min:opt:max` (or one number for a static profile) → (min, opt, max)."""
    try:
        parts = tuple(int(p) for p in str(text).split(":"))
    except ValueError:
        parts = ()
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or not 1 <= parts[0] <= parts[1] <= parts[2]:
        raise UserError(
            f"--batch {text!r}: write min:opt:max with 1 ≤ min ≤ opt ≤ max, e.g. 1:8:32"
        )
    return parts
