"""RecBole configs and data loaders for the evaluation protocol, built without side effects.

The protocol (issue 4, methods.md 2.2): time-ordered leave-one-out (``LS valid_and_test``: the
last item of each user is the test target, the one before it the validation target), full
ranking over all items, sequences cut to the last 50 items, hit/ndcg/mrr at 5, 10 and 20,
cross-entropy over all items for training (no negative sampling).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recsys._recbole import recbole_scope
from recsys.data import DatasetSource
from shared.errors import InputError
from shared.runtime import resolve_device

logger = logging.getLogger(__name__)

__all__ = ["PROTOCOL", "build_config", "load_data", "resolve_device"]

#: RecBole settings shared by every model of an evaluation (can be overridden per call).
PROTOCOL: Mapping[str, Any] = {
    "eval_args": {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "group_by": "user",
        "mode": "full",
    },
    "repeatable": True,
    "MAX_ITEM_LIST_LENGTH": 50,
    "metrics": ["Hit", "NDCG", "MRR"],
    "topk": [5, 10, 20],
    "valid_metric": "NDCG@10",
    "train_neg_sample_args": None,
    "loss_type": "CE",
    "reproducibility": True,
    "show_progress": False,
    "save_dataset": False,
    "save_dataloaders": False,
    "log_wandb": False,
    "worker": 0,
    "shuffle": True,
}


def build_config(
    model: type,
    source: DatasetSource,
    settings: Mapping[str, Any],
    *,
    checkpoint_dir: str | Path,
    device: str = "auto",
) -> Config:
    """Build RecBole's ``Config`` for ``model`` on ``source`` under the protocol.

    ``sys.argv`` is hidden from RecBole, its logging goes to ``recsys.recbole`` and
    ``CUDA_VISIBLE_DEVICES`` is left as it was (see :mod:`recsys._recbole`).

    Args:
        model: A RecBole model class (RecBole's own or ours).
        source: The data set.
        settings: Model and training settings; they override :data:`PROTOCOL`.
        checkpoint_dir: Where RecBole may create its (unused) checkpoint folder: the run folder,
            never the working directory.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.

    Returns:
        The config, with ``config["device"]`` set.
    """
    dev = resolve_device(device)
    config_dict: dict[str, Any] = {**PROTOCOL, **source.recbole_settings(), **settings}
    config_dict["checkpoint_dir"] = str(checkpoint_dir)
    config_dict["use_gpu"] = dev.type == "cuda"
    # RecBole writes gpu_id into CUDA_VISIBLE_DEVICES (restored by recbole_scope).
    config_dict["gpu_id"] = "0" if dev.type == "cuda" else ""
    with recbole_scope():
        config = Config(model=model, dataset=source.name, config_dict=config_dict)
    config["device"] = dev
    return config


def load_data(config: Config) -> tuple[Any, Any, Any, Any]:
    """Create the data set and its train / validation / test loaders, with the config's seed.

    Args:
        config: From :func:`build_config`.

    Returns:
        ``(dataset, train_data, valid_data, test_data)``.

    Raises:
        InputError: If RecBole cannot read the data set (the message names the folder).
    """
    with recbole_scope():
        init_seed(config["seed"], config["reproducibility"])
        try:
            dataset = create_dataset(config)
        except (ValueError, KeyError, FileNotFoundError) as exc:
            raise InputError(
                f"RecBole could not load the data set {config['dataset']!r} from "
                f"{config['data_path']}: {type(exc).__name__}: {exc}"
            ) from exc
        if dataset.inter_num == 0:
            raise InputError(f"The data set {config['dataset']!r} holds no interactions.")
        train_data, valid_data, test_data = data_preparation(config, dataset)
    return dataset, train_data, valid_data, test_data
