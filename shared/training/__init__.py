"""Training: one small :class:`Trainer`, domain logic in a :class:`Task`, extras as callbacks.

Examples:
    >>> from shared.training import Task, Trainer, TrainerConfig
    >>> TrainerConfig(epochs=2).optimizer
    'adamw'
"""

from shared.training.callbacks import Callback, EarlyStopping
from shared.training.checkpoint import load_weights, read_metrics
from shared.training.task import Task, move_to
from shared.training.trainer import Trainer, TrainerConfig, seed_everything

__all__ = [
    "Callback",
    "EarlyStopping",
    "Task",
    "Trainer",
    "TrainerConfig",
    "load_weights",
    "move_to",
    "read_metrics",
    "seed_everything",
]
