"""The ``contrasuite sepclr`` command group and demo step (light: no torch at import)."""

from __future__ import annotations

from shared.domain import (
    CommandSpec,
    DomainSpec,
    Option,
    nonnegative_int,
    positive_int,
    run_option,
)

__all__ = ["DOMAIN"]

_TRAIN_EXAMPLES = """\
contrasuite sepclr train --out runs/sep                      # SepCLR on the generated set
contrasuite sepclr train --out runs/simclr --method simclr   # the one-space baseline
contrasuite sepclr train --out runs/nojem loss.lambda_jem=0  # SepCLR without k-JEM
contrasuite sepclr train --data ../shared/data/pneumoniamnist --out runs/pneu data.split=official
contrasuite sepclr train --data scans/labels.csv --out runs/mine model.encoder=resnet18
torchrun --nproc_per_node 2 -m pipelines sepclr train --out runs/ddp batch_size=128"""

DOMAIN = DomainSpec(
    name="sepclr",
    help="SepCLR: what only the target group has (salient) vs what all share (common)",
    description=(
        "SepCLR (Louiset et al., ICLR 2024): two encoders learn a common space (factors shared\n"
        "by background and target images) and a salient space (factors only in the target),\n"
        "with k-JEM driving their mutual information to zero. Baselines: SimCLR, contrastive\n"
        "PCA, a contrastive VAE. Probes: linear and kNN, per space."
    ),
    commands=(
        CommandSpec(
            name="make-data",
            help="write the generated texture + digit set (known common and salient factors)",
            description=(
                "Background: crops of scikit-image's textures (brick, grass, gravel, moon; the\n"
                "common factor). Target: the same with a scikit-learn digit blended in (the\n"
                "salient factor). Writes DIR/sepclr_generated.npz and DIR/preview.png."
            ),
            run="medical.sepclr.commands:make_data",
            examples="contrasuite sepclr make-data --out data/sep\n"
            "contrasuite sepclr train --data data/sep --out runs/sep",
            options=(
                Option(
                    ("--out",), help="output folder", kwargs={"required": True, "metavar": "DIR"}
                ),
                Option(
                    ("--n-per-group",),
                    help="training images per group (test: a third)",
                    kwargs={"type": positive_int, "default": 1200, "metavar": "N"},
                ),
                Option(
                    ("--size",),
                    help="image side in pixels",
                    kwargs={"type": positive_int, "default": 28, "metavar": "PX"},
                ),
                Option(
                    ("--seed",),
                    help="random seed",
                    kwargs={"type": nonnegative_int, "default": 0, "metavar": "N"},
                ),
            ),
        ),
        CommandSpec(
            name="train",
            help="train one method (sepclr|simclr|cpca|cvae) and evaluate its probes",
            description=(
                "Train one method on an .npz, an image folder with a CSV (path,group[,split]\n"
                "[,attributes...]) or PneumoniaMNIST (normal = background, pneumonia = target);\n"
                "without --data, on the generated set. Ends with the probes of `evaluate`.\n\n"
                "Several GPUs or machines: run the same command under torchrun (DDP, one\n"
                "process per GPU; gloo on CPU). batch_size is per process; the losses see the\n"
                "global batch (heads gathered from every process); rank 0 alone writes OUT, with\n"
                "the layout of a single-process run. BatchNorm statistics are per process."
            ),
            run="medical.sepclr.commands:train",
            config="medical.sepclr.config:SepCLRConfig",
            examples=_TRAIN_EXAMPLES,
            options=(
                Option(
                    ("--data",),
                    help="data file or folder (default: the generated set)",
                    key="data.path",
                    kwargs={"metavar": "PATH"},
                ),
                Option(
                    ("--method",),
                    help="method to train (default sepclr)",
                    key="method",
                    kwargs={"choices": ("sepclr", "simclr", "cpca", "cvae")},
                ),
                Option(
                    ("--beta-s",),
                    help="salient-term weight (default: per data set)",
                    key="loss.beta_s",
                    kwargs={"metavar": "W"},
                ),
                Option(
                    ("--beta-reg",),
                    help="information-less regulariser weight",
                    key="loss.beta_reg",
                    kwargs={"metavar": "W"},
                ),
                Option(
                    ("--lambda-jem",),
                    help="k-JEM weight (0: without k-JEM)",
                    key="loss.lambda_jem",
                    kwargs={"metavar": "W"},
                ),
            ),
        ),
        CommandSpec(
            name="evaluate",
            help="linear and kNN probes of each space of a trained run",
            description=(
                "Re-read a run's weights and data, fit the probes on the training images and\n"
                "score them on the test images; writes RUN/metrics.json, RUN/results.md and\n"
                "RUN/report.html (2-D maps of each space), or, with --out DIR, the same files,\n"
                "log.txt and config.yaml in DIR (RUN is then only read)."
            ),
            run="medical.sepclr.commands:evaluate",
            prepare="medical.sepclr.commands:prepare_evaluate",
            config="medical.sepclr.config:SepCLREvaluateConfig",
            out_required=False,
            out_help="folder for metrics.json, results.md, report.html, log.txt and "
            "config.yaml (created; RUN is only read, so it may be read-only); default: RUN",
            common_help={
                "seed": "seeds python, numpy and torch before the evaluation (default: the run's "
                "trainer.seed, as earlier evaluations). The probes draw no random numbers, so "
                "their scores do not depend on it; only the randomized PCA that scikit-learn "
                "picks for report.html's maps of large test sets does",
                "device": "where the model runs: cpu, cuda, or auto = cuda when available "
                "(default: auto)",
                "epochs": "not used: evaluate trains no network (an error; the probes are fit by "
                "L-BFGS, and the training epochs are set at `sepclr train`)",
                "print_config": "print the resolved settings as YAML and exit (reads only the "
                "run's config; nothing is evaluated or written)",
                "overrides": "set any evaluation setting, e.g. compare=runs/a,runs/b (keys "
                "below; an unknown key is an error naming the closest valid one)",
            },
            option_keys={"seed": "seed", "device": "device"},
            epochs_note="its probes are fit by L-BFGS logistic regression, up to the run's "
            "eval.max_iter iterations, and by kNN",
            examples="contrasuite sepclr evaluate --run runs/sep\n"
            "contrasuite sepclr evaluate --run runs/sep --compare runs/simclr runs/cpca\n"
            "contrasuite sepclr evaluate --run runs/sep --out evals/sep --device cpu",
            options=(
                run_option("a sepclr train run folder"),
                Option(
                    ("--compare",),
                    help="other sepclr runs on the same data: a methods x probes table in "
                    "results.md",
                    key="compare",
                    kwargs={"nargs": "+", "metavar": "RUN", "default": None},
                ),
            ),
        ),
    ),
    demo="medical.sepclr.commands:demo_step",
    demo_title="SepCLR vs SimCLR: common and salient spaces on the generated set",
)
