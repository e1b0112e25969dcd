"""The ECG domain's declaration: ``contrasuite ecg synth | train | evaluate | explain`` (light)."""

import argparse

from shared.domain import (
    CommandSpec,
    DomainSpec,
    Option,
    nonnegative_int,
    positive_int,
    run_option,
)


def _at_least_10(text: str) -> int:
    """An argparse ``type``: an integer >= 10 (one ECG per fold)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 10, got {text!r}") from None
    if value < 10:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 10 (one ECG per fold), got {value}"
        )
    return value


_RUN = run_option("run folder of `ecg train`")

DOMAIN = DomainSpec(
    name="ecg",
    help="ProtoECGNet on PTB-XL: synthetic data, training, evaluation, explanation reports",
    description=(
        "ProtoECGNet (Sethi et al., MLHC 2025) on PTB-XL-format data: a folder with\n"
        "ptbxl_database.csv, scp_statements.csv and records100/ (or records500/), either the\n"
        "real PTB-XL release or one written by `contrasuite ecg synth`."
    ),
    commands=(
        CommandSpec(
            name="synth",
            help="write a synthetic PTB-XL-format data set (WFDB records + the two csv files)",
            description=(
                "Write synthetic 12-lead ECGs in the exact PTB-XL layout, so that the real loader\n"
                "reads them: WFDB records (format 16, mV), ptbxl_database.csv with scp_codes and\n"
                "strat_fold 1-10, scp_statements.csv with the 71 statements. Classes: SR,\n"
                "STACH, SBRAD, AFIB (rhythm); IMI, ASMI, CLBBB, CRBBB, ISCLA+STD_, STE_, LVH\n"
                "(morphology); NORM, DIG (global). Running it again with the same --out replaces\n"
                "the earlier synthetic set; any other non-empty folder is refused."
            ),
            examples=(
                "contrasuite ecg synth --out data/synth-ptbxl                 # 1000 ECGs, 100 Hz\n"
                "contrasuite ecg synth --out data/s500 --n-records 300 --sampling-rate 500\n"
                "contrasuite ecg synth --out data/synth --n-records 2000 --sampling-rate both "
                "--seed 7"
            ),
            run="medical.ecg.commands:synth",
            options=(
                Option(
                    ("--out",), help="folder to write", kwargs={"required": True, "metavar": "DIR"}
                ),
                Option(
                    ("--n-records",),
                    help="number of ECGs (default: 1000; at least 10)",
                    kwargs={"metavar": "N", "type": _at_least_10, "default": 1000},
                ),
                Option(
                    ("--sampling-rate",),
                    help="records100/ (100 Hz, default), records500/ (500 Hz) or both",
                    kwargs={"choices": ("100", "500", "both"), "default": "100"},
                ),
                Option(
                    ("--seed",),
                    help="random seed (default: 2020); the same seed writes the same data",
                    kwargs={"metavar": "N", "type": nonnegative_int, "default": 2020},
                ),
            ),
        ),
        CommandSpec(
            name="train",
            help="train ProtoECGNet (all stages) on a PTB-XL folder and evaluate it on fold 10",
            description=(
                "Train ProtoECGNet on folds 1-8 of a PTB-XL folder (validation: fold 9), through\n"
                "every stage, project its prototypes onto real training ECGs, and evaluate macro\n"
                "and weighted AUROC on the whole test fold 10. Defaults are the paper's (Adam,\n"
                "lr 1e-4, 200 epochs with early stopping on validation AUROC; loss weights\n"
                "0.004 / 0.0004 / 250 / 300); use --epochs for a shorter run.\n\n"
                "Stages (each resumable in OUT/<branch>/<stage>/; --epochs sets them all):\n"
                "feature -> joint -> [prototypes] -> projection -> [classifier], for the branches\n"
                "rhythm (1D), morphology (2D partial) and global (2D); then fusion and the test\n"
                "fold. Writes OUT/config.yaml, metrics.json, history.csv, log.txt, weights.pt,\n"
                "state.pt, prototypes.json, similarity_stats.pt, test_predictions.csv. Started\n"
                "again with the same command, a run resumes; on changed data it is refused.\n\n"
                "Several GPUs or machines: run the same command under torchrun (DDP, one\n"
                "process per GPU; gloo on CPU), e.g. `torchrun --nproc_per_node 4 -m pipelines\n"
                "ecg train ...`. data.batch_size is per process (global batch = processes x\n"
                "batch size); rank 0 alone writes OUT, which has the same layout as a\n"
                "single-process run; on several machines OUT and the data must be on a shared\n"
                "file system. BatchNorm statistics are per process, so results differ slightly\n"
                "from one process with the global batch."
            ),
            examples=(
                "contrasuite ecg train --data-dir /data/ptb-xl-1.0.3 --out runs/protoecgnet\n"
                "contrasuite ecg train --data-dir data/synth --out runs/quick --epochs 5 "
                "model.width=16\n"
                "contrasuite ecg train --data-dir DIR --out runs/super "
                "data.label_set=superdiagnostic\n"
                "contrasuite ecg train --data-dir DIR --out runs/baseline "
                "model.architecture=resnet1d\n"
                "contrasuite ecg train --data-dir DIR --out runs/official model.pooling=mean "
                "data.val_sampling=official stages.frozen_eval=false stages.fusion_input=raw "
                "loss.pos_weight=label_instances\n"
                "torchrun --nproc_per_node 2 -m pipelines ecg train --data-dir DIR --out runs/ddp "
                "data.batch_size=16"
            ),
            run="medical.ecg.commands:train",
            prepare="medical.ecg.commands:prepare_train",
            config="medical.ecg.config:ECGConfig",
            options=(
                Option(
                    ("--data-dir",),
                    help="PTB-XL folder (ptbxl_database.csv, scp_statements.csv, records100/)",
                    key="data.data_dir",
                    kwargs={"required": True, "metavar": "DIR"},
                ),
            ),
        ),
        CommandSpec(
            name="evaluate",
            help="test-fold (strat_fold 10) AUROC of a trained run -> RUN/metrics.json",
            description=(
                "Evaluate a finished `contrasuite ecg train` run on the whole test fold 10:\n"
                "macro and weighted AUROC with bootstrap 95 % intervals, per-label AUROC, how\n"
                "many labels were scored and which had no positive. On the run's own data they\n"
                "go to RUN/metrics.json (per-ECG probabilities in RUN/test_predictions.csv);\n"
                "on other data to RUN/evaluations/<data fingerprint>/. With --out DIR they go\n"
                "to DIR instead (with config.yaml, the resolved settings), and RUN is only read."
            ),
            examples=(
                "contrasuite ecg evaluate --run runs/protoecgnet\n"
                "contrasuite ecg evaluate --run runs/protoecgnet --data-dir /data/ptb-xl-1.0.3 "
                "--bootstrap 1000\n"
                "contrasuite ecg evaluate --run runs/protoecgnet --out evals/seed7 --seed 7"
            ),
            run="medical.ecg.commands:evaluate",
            prepare="medical.ecg.commands:prepare_evaluate",
            config="medical.ecg.config:ECGEvaluateConfig",
            out_required=False,
            out_help="folder for metrics.json, test_predictions.csv and config.yaml (created; "
            "RUN is only read, so it may be read-only); default: RUN, or "
            "RUN/evaluations/<data fingerprint>/ for other data",
            common_help={
                "seed": "seed of the bootstrap resampling of the test ECGs (default: the run's "
                "trainer.seed, which earlier evaluations used)",
                "device": "where the model runs: cpu, cuda, or auto = cuda when available "
                "(default: auto)",
                "epochs": "not used: evaluate trains nothing (an error; the training epochs are "
                "set at `ecg train`)",
                "print_config": "print the resolved settings as YAML and exit (reads only the "
                "run's config; nothing is evaluated or written)",
                "overrides": "set any evaluation setting, e.g. bootstrap=1000 (keys below; an "
                "unknown key is an error naming the closest valid one)",
            },
            option_keys={"seed": "seed", "device": "device"},
            options=(
                _RUN,
                Option(
                    ("--data-dir",),
                    help="PTB-XL folder (default: the one the run was trained on)",
                    key="data_dir",
                    kwargs={"metavar": "DIR", "default": None},
                ),
                Option(
                    ("--bootstrap",),
                    help="resamples of the test ECGs for 95 %% intervals (default: 200 when the "
                    "test fold has fewer than 5000 ECGs; 0: none)",
                    key="bootstrap",
                    kwargs={"metavar": "N", "type": nonnegative_int, "default": None},
                ),
            ),
        ),
        CommandSpec(
            name="explain",
            help="clinical prototype explanation report(s): one self-contained HTML file per ECG",
            description=(
                "Explain ProtoECGNet's predictions for ECGs: the 12-lead trace on the paper grid\n"
                "(25 mm/s, 10 mm/mV), the predicted statements, and for the top predictions the\n"
                "prototypes behind them: the matching window of this ECG beside the prototype's\n"
                "source segment of a training ECG, with where its similarity stands among the\n"
                "training ECGs, the fusion weight and the contribution to the logit. One\n"
                "--ecg-id: --out is the HTML file (default RUN/explanations/ecg_ID.html), or a\n"
                "folder (an existing one, or a path ending in /) that gets ecg_ID.html;\n"
                "several, or --fold: --out is a folder (default RUN/explanations) with one report\n"
                "each and index.html."
            ),
            examples=(
                "contrasuite ecg explain --run runs/p --data-dir DIR --ecg-id 9 --out ecg9.html\n"
                "contrasuite ecg explain --run runs/p --data-dir DIR --ecg-id 9 --ecg-id 17\n"
                "contrasuite ecg explain --run runs/p --data-dir DIR --fold 10 --out reports/"
            ),
            run="medical.ecg.commands:explain_command",
            options=(
                _RUN,
                Option(
                    ("--data-dir",),
                    help="PTB-XL folder holding the ECGs (default: the one the run was trained on)",
                    kwargs={"metavar": "DIR", "default": None},
                ),
                Option(
                    ("--ecg-id",),
                    help="ecg_id to explain; repeatable",
                    kwargs={"metavar": "ID", "type": int, "action": "append", "default": []},
                ),
                Option(
                    ("--fold",),
                    help="explain a whole strat_fold",
                    kwargs={"metavar": "N", "type": int},
                ),
                Option(
                    ("--out",), help="HTML file or folder (see above)", kwargs={"metavar": "PATH"}
                ),
                Option(
                    ("--top",),
                    help="statements explained per ECG (default: 3)",
                    kwargs={"metavar": "N", "type": positive_int, "default": 3},
                ),
                Option(
                    ("--prototypes",),
                    help="prototypes shown per statement (default: 3)",
                    kwargs={"metavar": "N", "type": positive_int, "default": 3},
                ),
            ),
        ),
    ),
    demo="medical.ecg.commands:demo_step",
    demo_title="ProtoECGNet on synthetic PTB-XL",
)
