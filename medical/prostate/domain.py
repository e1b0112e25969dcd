"""The ``contrasuite prostate`` command group and demo step (light: no torch at import)."""

from __future__ import annotations

import argparse

from shared.domain import (
    CommandSpec,
    DomainSpec,
    Option,
    device_option,
    nonnegative_int,
    positive_int,
    run_option,
)

__all__ = ["DOMAIN"]


def _triple(kind: type) -> object:
    def parse(text: str) -> tuple[object, ...]:
        parts = text.replace("x", ",").split(",")
        try:
            values = tuple(kind(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected three numbers X,Y,Z, got {text!r}"
            ) from None
        if len(values) != 3 or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"expected three positive numbers X,Y,Z, got {text!r}")
        return values

    return parse


_DEVICE = device_option()
_RUN = run_option("a prostate train run folder")

_TRAIN_EXAMPLES = """\
contrasuite prostate train --out runs/dual                        # dual-path on phantoms
contrasuite prostate train --out runs/base --model baseline       # the U-Net baseline
contrasuite prostate phantom --out data/msd --from-masks ../shared/data/prostate-msd-labels
contrasuite prostate train --data-dir data/msd --out runs/msd data.spacing=0.6,0.6,3.6
contrasuite prostate train --out runs/paper model.base_filters=16 data.roi=168,168,32
torchrun --nproc_per_node 2 -m pipelines prostate train --data-dir data/msd --out runs/ddp"""

DOMAIN = DomainSpec(
    name="prostate",
    help="PI-RADS v2 prostate zones (PZ, TZ, DPU, AFS): baseline U-Net vs dual-path CNN",
    description=(
        "Prostate zone segmentation after Das, Ghosh and Stober (arXiv 2309.12970): a shared\n"
        "anisotropic 3D U-Net encoder with two decoder paths (PZ+TZ and DPU+AFS), a signed\n"
        "distance map head (multi-task), and a second stage that fine-tunes with a consistency\n"
        "loss between the paths (also on unlabelled volumes). Baseline: the single-path U-Net.\n"
        "The paper body was not available: the assumptions and their options are listed in\n"
        "medical/prostate/config.py."
    ),
    commands=(
        CommandSpec(
            name="phantom",
            help="write T2-like phantoms with four zone labels in the MSD layout",
            description=(
                "Procedural phantoms (default) or phantoms built around real MSD zone masks\n"
                "(--from-masks: real PZ/TZ geometry and affines, DPU and AFS by anatomical rule),\n"
                "with a synthesised T2-like image, bias field and noise. Writes DIR/imagesTr,\n"
                "DIR/labelsTr, DIR/imagesTs (unlabelled) and DIR/dataset.json."
            ),
            run="medical.prostate.commands:phantom",
            examples="contrasuite prostate phantom --out data/phantoms --n-cases 16\n"
            "contrasuite prostate phantom --out data/msd "
            "--from-masks ../shared/data/prostate-msd-labels --n-cases 28",
            options=(
                Option(
                    ("--out",), help="output folder", kwargs={"required": True, "metavar": "DIR"}
                ),
                Option(
                    ("--n-cases",),
                    help="labelled cases (default 8; with --from-masks at most the masks)",
                    kwargs={"type": positive_int, "default": 8, "metavar": "N"},
                ),
                Option(
                    ("--n-unlabelled",),
                    help="extra unlabelled images in imagesTs/ (default 2)",
                    kwargs={"type": nonnegative_int, "default": 2, "metavar": "N"},
                ),
                Option(
                    ("--seed",),
                    help="random seed (default 2020)",
                    kwargs={"type": nonnegative_int, "default": 2020, "metavar": "S"},
                ),
                Option(
                    ("--from-masks",),
                    help="folder of MSD zone masks (PZ=1, TZ=2) to build the phantoms around",
                    kwargs={"metavar": "DIR", "default": None},
                ),
                Option(
                    ("--shape",),
                    help="procedural volume size in voxels (default 80,80,16)",
                    kwargs={"type": _triple(int), "default": (80, 80, 16), "metavar": "X,Y,Z"},
                ),
                Option(
                    ("--spacing",),
                    help="procedural voxel size in mm (default 0.8,0.8,3)",
                    kwargs={"type": _triple(float), "default": (0.8, 0.8, 3.0), "metavar": "X,Y,Z"},
                ),
            ),
        ),
        CommandSpec(
            name="train",
            help="train the baseline or the dual-path net (stages 1 and 2) on an MSD folder",
            description=(
                "Train on an MSD-layout folder (default: phantoms generated into RUN/data), then\n"
                "score the held-out test cases (RUN/metrics.json). Stage 1: Dice + CE per path\n"
                "(+ SDM regression); stage 2 (dual-path): + consistency between the paths.\n\n"
                "Several GPUs or machines: run the same command under torchrun (DDP, one\n"
                "process per GPU; gloo on CPU). data.batch_size is per process; rank 0 alone\n"
                "writes OUT (the layout of a single-process run) and scores the test cases."
            ),
            run="medical.prostate.commands:train",
            config="medical.prostate.config:ProstateConfig",
            examples=_TRAIN_EXAMPLES,
            options=(
                Option(
                    ("--data-dir",),
                    help="MSD-layout folder (default: phantoms)",
                    key="data.dir",
                    kwargs={"metavar": "DIR"},
                ),
                Option(
                    ("--model",),
                    help="baseline or dual-path (default dual-path)",
                    key="model.name",
                    kwargs={"choices": ("baseline", "dual-path")},
                ),
            ),
        ),
        CommandSpec(
            name="predict",
            help="segment images: NIfTI label maps on the source grid + one HTML report each",
            description=(
                "Segment a NIfTI file, a folder of them or an MSD folder. Writes\n"
                "DIR/<case>_zones.nii.gz (the source image's affine and header) and\n"
                "DIR/<case>.html (apex, mid-gland and base slices; metrics when labelsTr/ has\n"
                "the case's label)."
            ),
            run="medical.prostate.commands:predict",
            examples="contrasuite prostate predict --run runs/dual --input scan.nii.gz --out pred",
            options=(
                _RUN,
                Option(
                    ("--input",),
                    help="a NIfTI image, a folder of them, or an MSD folder",
                    kwargs={"required": True, "metavar": "FILE_OR_DIR"},
                ),
                Option(
                    ("--out",), help="output folder", kwargs={"required": True, "metavar": "DIR"}
                ),
                Option(
                    ("--no-report",), help="skip the HTML reports", kwargs={"action": "store_true"}
                ),
                _DEVICE,
            ),
        ),
        CommandSpec(
            name="evaluate",
            help="per-zone Dice, HD95, MASD (mm and voxels) of a run; MASD change vs a baseline",
            description=(
                "Score every labelled case of DIR (the run's held-out cases when DIR is its\n"
                "training folder). Writes RUN/metrics.json and RUN/results.md (the latest) and\n"
                "the same under RUN/evaluations/held-out/ or RUN/evaluations/<data fingerprint>/,\n"
                "so that scoring other data keeps earlier scores. With --baseline, also the\n"
                "relative MASD change of the dual-path net (stages 1 and 2). With --out, the\n"
                "scores (metrics.json, results.md), log.txt and config.yaml go to that folder\n"
                "instead, and RUN is only read."
            ),
            run="medical.prostate.commands:evaluate",
            config="medical.prostate.config:ProstateEvaluateConfig",
            out_required=False,
            out_help="folder for metrics.json, results.md, log.txt and config.yaml (created; "
            "RUN is only read, so it may be read-only); default: RUN (and a copy under "
            "RUN/evaluations/)",
            common_help={
                "seed": "recorded in config.yaml only: this evaluation draws no random numbers "
                "(sliding-window inference and metrics are deterministic), so it has no effect "
                "(default: 2020)",
                "device": "where the nets run: cpu, cuda, or auto = cuda when available "
                "(default: auto)",
                "epochs": "not used: evaluate trains nothing (an error; the training epochs are "
                "set at `prostate train`)",
                "print_config": "print the resolved settings as YAML and exit (nothing is read, "
                "evaluated or written)",
                "overrides": "set any evaluation setting, e.g. baseline=runs/base (keys below; "
                "an unknown key is an error naming the closest valid one)",
            },
            option_keys={"seed": "seed", "device": "device"},
            examples="contrasuite prostate evaluate --run runs/dual --data-dir runs/dual/data "
            "--baseline runs/base\n"
            "contrasuite prostate evaluate --run runs/dual --data-dir data/msd --out evals/msd",
            options=(
                _RUN,
                Option(
                    ("--data-dir",),
                    help="MSD-layout folder with labels",
                    key="data_dir",
                    kwargs={"required": True, "metavar": "DIR"},
                ),
                Option(
                    ("--baseline",),
                    help="a baseline run to compare MASD against",
                    key="baseline",
                    kwargs={"metavar": "RUN", "default": None},
                ),
            ),
        ),
    ),
    demo="medical.prostate.commands:demo_step",
    demo_title="Prostate zones: baseline vs dual-path on phantoms",
)
