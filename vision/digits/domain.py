"""The digits domain's declaration: ``contrasuite digits train`` and the demo step (light)."""

from shared.domain import CommandSpec, DomainSpec, Option

DOMAIN = DomainSpec(
    name="digits",
    help="contrastive methods on 8x8 digits: one encoder, linear probe, kNN, method table",
    description=(
        "The reference domain: one small CNN trained per contrastive method (SimCLR, SupCon,\n"
        "DCL, DCLW, SwAV, CACR, AMCL, FT) on scikit-learn's bundled 8x8 digits, judged by a\n"
        "linear probe and kNN on the frozen features against raw pixels and an untrained encoder."
    ),
    commands=(
        CommandSpec(
            name="train",
            help="train the methods, probe them, write the comparison table and report",
            description=(
                "Train one encoder per method with the shared Trainer (a stage per method),\n"
                "then probe the frozen features; writes RUN/results.md (the method table),\n"
                "RUN/report.html, RUN/metrics.json and RUN/<method>/ (history.csv, weights.pt,\n"
                "state.pt). Running it again reuses finished stages and resumes the others.\n\n"
                "Under torchrun (DDP) batch_size is per process and every objective sees the\n"
                "gathered global batch; rank 0 alone probes and writes RUN."
            ),
            examples=(
                "contrasuite digits train --out runs/digits\n"
                "contrasuite digits train --out runs/all --methods all --epochs 30\n"
                "contrasuite digits train --out runs/t --methods simclr trainer.lr=1e-3 "
                "loss.simclr_temperature=0.2\n"
                "contrasuite digits train --out runs/p --print-config   # resolved config, no run\n"
                "torchrun --nproc_per_node 2 -m pipelines digits train --out runs/ddp"
            ),
            run="vision.digits.commands:train",
            config="vision.digits.config:DigitsConfig",
            options=(
                Option(
                    ("--methods",),
                    help="comma-separated methods to compare, or all "
                    "(simclr,supcon,dcl,dclw,swav,cacr,amcl,ft; default: simclr,supcon)",
                    key="methods",
                    kwargs={"metavar": "M1,M2,...|all"},
                ),
            ),
        ),
    ),
    demo="vision.digits.commands:demo_step",
    demo_title="Contrastive core on 8x8 digits: SimCLR vs SupCon",
)
