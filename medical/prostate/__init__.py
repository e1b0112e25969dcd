"""PI-RADS v2 prostate zones: a dual-path, multi-task 3D CNN with cross-path consistency.

A reconstruction of Das, Ghosh and Stober (arXiv 2309.12970; methods.md section 5) on MONAI and
the suite's :class:`~shared.training.Trainer`. The paper body could not be read, so every design
choice below the abstract is an assumption with an option that changes it (see
:mod:`medical.prostate.config` for the list).

Modules (import them directly; this package imports nothing heavy):

* :mod:`~medical.prostate.config`: the frozen dataclass config (``ProstateConfig``).
* :mod:`~medical.prostate.phantom`: T2-like phantom volumes in the MSD layout.
* :mod:`~medical.prostate.data`: dataset folder checks, MONAI transforms, cached datasets.
* :mod:`~medical.prostate.model`: the anisotropic 3D U-Net baseline and the dual-path net.
* :mod:`~medical.prostate.losses`: Dice + CE per path, signed distance maps, consistency.
* :mod:`~medical.prostate.tasks`: the Trainer tasks of stage 1 and stage 2.
* :mod:`~medical.prostate.train`: both training stages in one run folder.
* :mod:`~medical.prostate.metrics`: Dice, HD95 and MASD (mm and voxels) with a missing rule.
* :mod:`~medical.prostate.infer`: sliding-window inference, post-processing, NIfTI output.
* :mod:`~medical.prostate.report`: the per-case HTML report.
* :mod:`~medical.prostate.commands`: the command-line handlers and the demo step.
"""

#: Zone names by label value (1..4); label 0 is background.
ZONES: tuple[str, ...] = ("PZ", "TZ", "DPU", "AFS")

__all__ = ["ZONES"]
