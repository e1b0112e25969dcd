"""The evaluation's run folder on :class:`shared.training.run.RunFolder`.

``RUN`` is one :class:`~shared.training.run.RunFolder` of domain ``recsys``, command
``evaluate``: its marker records the config and a fingerprint of the data file, so a folder that
is not ours, a run with other settings (outside :data:`SAFE_KEYS`) or on a changed data file is
refused before anything is written. Each training run (a model, seed and dropout) is a named
stage, ``RUN/<model>`` or ``RUN/<model>/seed2021_dropout0.5``, marked finished when tested.
"""

from __future__ import annotations

from pathlib import Path

from recsys.config import RecsysConfig
from recsys.data import DatasetInfo
from shared.training.run import RunFolder, data_fingerprint

__all__ = ["COMMAND", "DOMAIN", "SAFE_KEYS", "prepare_run"]

DOMAIN = "recsys"
COMMAND = "evaluate"

#: Settings that may differ when a run folder is resumed (beyond the shared ones: progress,
#: device, threads): they add or drop training runs, never change what a finished one computed.
SAFE_KEYS = frozenset({"models", "seeds", "encoder.dropout_grid"})


def prepare_run(out: str | Path, cfg: RecsysConfig, data: DatasetInfo) -> RunFolder:
    """Check that ``out`` can hold this evaluation (or resume it); write nothing.

    Raises:
        InputError: If ``out`` is a file, a folder that is not empty and not a recsys evaluate
            run, a run with other settings, or a run on other data.
    """
    return RunFolder.prepare(
        out,
        domain=DOMAIN,
        command=COMMAND,
        config=cfg,
        data=data_fingerprint(*data.files),
        safe_keys=SAFE_KEYS,
    )
