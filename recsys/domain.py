"""The ``contrasuite recsys`` command group and demo step (light: no torch at import)."""

from __future__ import annotations

from shared.domain import CommandSpec, DomainSpec, Option

__all__ = ["DOMAIN"]

_EXAMPLES = """\
contrasuite recsys evaluate --dataset ml-100k --models SASRec,MCLRec --out runs/ml100k
contrasuite recsys evaluate --dataset ml-100k --models FastSASRec,SASRec2Step,MCLRec,MCLRec-J \\
    --seeds 2020,2021,2022 --out runs/ml100k-3 encoder.dropout_grid=0.1,0.5
contrasuite recsys evaluate --dataset ml-100k --models SASRec,MCLRec --out runs/q --quick
contrasuite recsys evaluate --dataset ../shared/data/seqrec/Beauty.txt \\
    --models FastSASRec,DuoRec,CL4SRec,MCLRec --out runs/beauty --device cuda

datasets: ml-100k (RecBole's bundled copy; nothing is downloaded), a RecBole atomic-file folder
  DIR holding DIR/<DIR name>.inter (user_id, item_id, timestamp), or a text file with one user
  per line 'user item item ...' in time order (converted into OUT/data/<name>/).
models: SASRec, GRU4Rec, BERT4Rec (RecBole's), FastSASRec (SASRec on our encoder path),
  SASRec2Step (control: MCLRec with beta = lambda = 0, two Adam steps per batch), CL4SRec,
  DuoRec, MCLRec (alternating update), MCLRec-J (joint update); the first is the reference of
  the paired tests.
protocol: time-ordered leave-one-out, full ranking over all items, the last 50 items as input,
  hit/ndcg/mrr at 5, 10, 20, selection on validation trainer.monitor (ndcg@10) with early
  stopping (trainer.patience 11 = RecBole's stopping_step 10); --mask-history removes each
  user's earlier items from the ranking (off by default, as the papers).
writes: OUT/results.json ({model: {test, valid, train_seconds, epochs, params}; with several
  seeds also test_std and seeds}), OUT/results.md (mean +- std, paired tests against the first
  model), OUT/paired_tests.json, OUT/per_user_ndcg@10.csv, OUT/valid_ndcg.png, OUT/history.csv,
  OUT/config.yaml, OUT/log.txt and OUT/<model>[/<seed_dropout>]/ (metrics.json, history.csv,
  per_user_test.csv, settings.json, weights.pt, state.pt). The same command again keeps
  finished runs and resumes an interrupted one; more models or seeds may be added."""

DOMAIN = DomainSpec(
    name="recsys",
    help="sequential recommendation: MCLRec, DuoRec, CL4SRec and RecBole baselines, offline",
    description=(
        "Sequential recommenders on RecBole under one offline protocol: MCLRec (Qin et al.,\n"
        "SIGIR 2023), DuoRec and CL4SRec beside RecBole's SASRec, GRU4Rec and BERT4Rec, with\n"
        "controls, seeds and paired tests."
    ),
    commands=(
        CommandSpec(
            name="evaluate",
            help="train each model (per seed), then test it: full-ranking leave-one-out",
            description=(
                "Train each model with RecBole's loop on the same split, select its best epoch\n"
                "on validation, test it once, and write OUT/results.json and OUT/results.md."
            ),
            run="recsys.commands:evaluate",
            prepare="recsys.commands:prepare_evaluate",
            config="recsys.config:RecsysConfig",
            examples=_EXAMPLES,
            options=(
                Option(
                    ("--dataset",),
                    help="ml-100k, a RecBole atomic-file folder, or a one-user-per-line text file",
                    key="dataset",
                    kwargs={"required": True, "metavar": "D"},
                ),
                Option(
                    ("--models",),
                    help="comma-separated model names (default: SASRec,MCLRec)",
                    key="models",
                    kwargs={"metavar": "M1,M2"},
                ),
                Option(
                    ("--seeds",),
                    help="run every model once per seed (e.g. 2020,2021,2022): mean +- std and "
                    "paired tests; default: --seed alone",
                    key="seeds",
                    kwargs={"metavar": "S1,S2"},
                ),
                Option(
                    ("--mask-history",),
                    help="remove each user's earlier items from the ranking at evaluation",
                    key="mask_history",
                    kwargs={"action": "store_const", "const": "true", "default": None},
                ),
                Option(
                    ("--quick",),
                    help="3 epochs of at most 40 batches: a smoke run, far from converged",
                    kwargs={"action": "store_true"},
                ),
            ),
        ),
    ),
    demo="recsys.commands:demo_step",
    demo_title="Sequential recommendation: SASRec vs MCLRec on ml-100k",
)
