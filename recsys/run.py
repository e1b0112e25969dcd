"""The evaluation's run folder: refuse a file or a run with other settings; record the config."""

from __future__ import annotations

from pathlib import Path

import yaml

from recsys.config import RecsysConfig
from shared.config import dump_yaml, to_dict
from shared.errors import InputError
from shared.io import atomic_write_text
from shared.training.checkpoint import config_diff

__all__ = ["SAFE_KEYS", "check_resume", "prepare_out"]

#: Settings that may differ when a run folder is resumed: they add runs or change only how the
#: run is executed, never what a finished run computed.
SAFE_KEYS = frozenset(
    {
        "models",
        "seeds",
        "encoder.dropout_grid",
        "trainer.progress",
        "trainer.device",
        "trainer.threads",
    }
)


def prepare_out(out: Path) -> None:
    """Create ``out`` (refusing a file)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder.")
    out.mkdir(parents=True, exist_ok=True)


def check_resume(out: Path, cfg: RecsysConfig) -> None:
    """Refuse ``out`` if it holds a run with other settings; write ``config.yaml``."""
    path = out / "config.yaml"
    current = to_dict(cfg)
    if path.exists():
        try:
            saved = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: cannot read the earlier run's config: {exc}") from None
        diff = config_diff(saved, current, SAFE_KEYS)
        if diff:
            raise InputError(
                f"--out {out} holds a run with other settings ({'; '.join(diff[:4])}); "
                "use another --out folder, or the same settings to resume it."
            )
    atomic_write_text(path, dump_yaml(current))
