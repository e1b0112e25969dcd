"""Recommendation pipelines (MCLRec on RecBole, offline evaluation). Built on :mod:`shared`.

Modules:

* :mod:`recsys.data`: data sets (RecBole's bundled ml-100k, atomic-file folders, one-user-per-line
  text files converted to atomic files) and their bad-input errors.
* :mod:`recsys.loading`: RecBole configs and loaders for the evaluation protocol (time-ordered
  leave-one-out, full ranking, length 50), built without touching ``sys.argv``, the root logger
  or the working directory.
* :mod:`recsys.augment`: crop / mask / reorder and two-view augmentation (CL4SRec, MCLRec).
* :mod:`recsys.losses`: the pairwise InfoNCE (the core's :func:`shared.losses.nt_xent`) and
  contrastive regularizer R.
* :mod:`recsys.encoder`: a faster forward pass for RecBole's SASRec encoder (same parameters).
* :mod:`recsys.models`: CL4SRec, DuoRec and MCLRec as RecBole ``SequentialRecommender`` models.
* :mod:`recsys.trainer`: RecBole ``Trainer`` subclasses (safe checkpoints, resume, progress,
  history masking) and MCLRec's alternating update.
* :mod:`recsys.config`: the evaluation's settings (torch-free) and per-data-set defaults.
* :mod:`recsys.evaluation`: the offline evaluation behind ``contrasuite recsys evaluate``
  (models, seeds, dropout selection on validation).
* :mod:`recsys.stats`: per-user metrics and paired tests (bootstrap, permutation).
* :mod:`recsys.report`: ``results.json``, ``results.md``, paired tests, plot.
* :mod:`recsys.run`: the run folder (:class:`shared.training.run.RunFolder`: ownership marker,
  data fingerprint, settings that may change on resume).
* :mod:`recsys.domain` (light, no torch) and :mod:`recsys.commands`: the ``contrasuite recsys``
  command group and the demo step, wired by ``pipelines/cli.py``'s ``DOMAINS``.

Example (what ``contrasuite recsys evaluate --dataset ml-100k --models SASRec,MCLRec --out RUN``
runs)::

    from recsys.config import RecsysConfig
    from recsys.evaluation import evaluate_models
    results = evaluate_models(RecsysConfig(dataset="ml-100k", models=("SASRec", "MCLRec")), "RUN")
    results["MCLRec"].test["ndcg@10"]

Importing :mod:`recsys` imports RecBole's sequential models without their global
``torch.autograd.set_detect_anomaly(True)`` side effect (see :mod:`recsys._recbole`).
"""

# First: imports RecBole's models without their global anomaly-detection switch.
from recsys import _recbole  # noqa: F401  # isort: skip
from recsys.augment import Views, augment_pair, crop, mask, reorder
from recsys.config import MODEL_NAMES, RecsysConfig
from recsys.data import (
    AtomicInfo,
    DatasetSource,
    check_atomic_folder,
    convert_text_to_atomic,
    read_sequences,
    resolve_dataset,
)
from recsys.encoder import FastSASRec, sasrec_encode
from recsys.evaluation import MODELS, ModelResult, ModelSummary, evaluate_models
from recsys.losses import contrastive_regularizer, pair_info_nce
from recsys.models import CL4SRec, DuoRec, MCLRec
from recsys.stats import PairedTest, paired_test, per_user_metric
from recsys.trainer import HistoryMask, MCLRecTrainer, RecTrainer

__all__ = [
    "MODELS",
    "MODEL_NAMES",
    "AtomicInfo",
    "CL4SRec",
    "DatasetSource",
    "DuoRec",
    "FastSASRec",
    "HistoryMask",
    "MCLRec",
    "MCLRecTrainer",
    "ModelResult",
    "ModelSummary",
    "PairedTest",
    "RecTrainer",
    "RecsysConfig",
    "Views",
    "augment_pair",
    "check_atomic_folder",
    "contrastive_regularizer",
    "convert_text_to_atomic",
    "crop",
    "evaluate_models",
    "mask",
    "pair_info_nce",
    "paired_test",
    "per_user_metric",
    "read_sequences",
    "reorder",
    "resolve_dataset",
    "sasrec_encode",
]
