"""ProtoECGNet on PTB-XL: data, synthetic data, model, training stages, explanation reports.

Data API (this package's front door; everything else builds on it):

* :func:`load_ptbxl` reads a PTB-XL folder (the real release, the shared subset, or the output
  of :func:`write_synthetic_ptbxl`) and returns a :class:`PTBXL` set::

      ds = load_ptbxl(data_dir, sampling_rate=100, label_set="all")   # 71 labels
      ds.signals      # (N, 12, T) float32 mV, memory-mapped from the cache
      ds.labels       # (N, C) float32 multi-hot; ds.label_names: C codes, fixed order
      ds.ecg_ids, ds.folds, ds.meta (age, sex, report, ...), ds.lead_names, ds.sampling_rate
      x, y = ds[0]  # torch tensors (12, T) and (C,): a map-style torch Dataset

  Records are ordered by ``(strat_fold, ecg_id)``: train folds 1-8, validation 9, test 10.
  The first read shows a progress bar and fills the cache; later reads memory-map it.
* Label sets (:data:`LABEL_SETS`): ``all`` (71 codes in ``scp_statements.csv`` order),
  ``diagnostic`` (44), ``subdiagnostic`` (23), ``superdiagnostic`` (5), ``form`` (19),
  ``rhythm`` (12), aggregated as in the PTB-XL benchmark; see :func:`label_names`.
* ProtoECGNet's branches (:data:`BRANCH_CODES`, :func:`branch_of`): rhythm (16 codes, 1D
  global prototypes), morphology (52, 2D partial prototypes), global (3, 2D global prototypes).
* Preprocessing: 0.5 Hz zero-phase high-pass (:func:`highpass_filter`, on by default);
  optional per-lead standardization fit on folds 1-8 only (``PTBXL.mean``/``PTBXL.std``).
* Every data problem raises :class:`PTBXLError` (a :class:`shared.errors.InputError`: exit
  status 2 on the command line) naming the file, column or record.
* Training (``contrasuite ecg train``, :mod:`medical.ecg.train`) runs in one process, or the
  same command under ``torchrun`` runs it with DDP on several GPUs or machines
  (``torchrun --nproc_per_node 4 -m pipelines ecg train --data-dir DIR --out RUN``; see
  :mod:`medical.ecg.train` for what changes: the batch size is per process).
* :func:`write_synthetic_ptbxl` writes a learnable synthetic data set in the same layout
  (``contrasuite ecg synth``); :data:`SYNTH_CODES` are the statements it emits (rhythm: SR,
  STACH, SBRAD, AFIB; morphology: IMI, ASMI, CLBBB, CRBBB, ISCLA, STD_, STE_, LVH; global:
  NORM, DIG). With ``label_set="all"`` the other 57 columns are all zero.
"""

from medical.ecg.data import (
    BRANCH_CODES,
    LABEL_SETS,
    LEAD_NAMES,
    PTBXL,
    RECORD_SECONDS,
    SAMPLING_RATES,
    CSVError,
    PTBXLError,
    RecordError,
    branch_of,
    highpass_filter,
    label_matrix,
    label_names,
    load_ptbxl,
    read_database,
    read_record,
    read_statements,
)
from medical.ecg.synth import SYNTH_CODES, simulate_ecg, write_synthetic_ptbxl
from shared.cache import ArrayCache, default_cache_dir

__all__ = [
    "BRANCH_CODES",
    "LABEL_SETS",
    "LEAD_NAMES",
    "PTBXL",
    "RECORD_SECONDS",
    "SAMPLING_RATES",
    "SYNTH_CODES",
    "ArrayCache",
    "CSVError",
    "PTBXLError",
    "RecordError",
    "branch_of",
    "default_cache_dir",
    "highpass_filter",
    "label_matrix",
    "label_names",
    "load_ptbxl",
    "read_database",
    "read_record",
    "read_statements",
    "simulate_ecg",
    "write_synthetic_ptbxl",
]
