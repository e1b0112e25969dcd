"""Recommendation pipelines (MCLRec on RecBole, offline evaluation). Built on :mod:`shared`.

Modules:

* :mod:`recsys.data`: data sets (RecBole's bundled ml-100k, atomic-file folders, one-user-per-line
  text files converted to atomic files) and their bad-input errors.
* :mod:`recsys.loading`: RecBole configs and loaders for the evaluation protocol (time-ordered
  leave-one-out, full ranking, length 50), built without touching ``sys.argv``, the root logger
  or the working directory.
"""

from recsys.data import (
    AtomicInfo,
    DatasetSource,
    check_atomic_folder,
    convert_text_to_atomic,
    read_sequences,
    resolve_dataset,
)

__all__ = [
    "AtomicInfo",
    "DatasetSource",
    "check_atomic_folder",
    "convert_text_to_atomic",
    "read_sequences",
    "resolve_dataset",
]
