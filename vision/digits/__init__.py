"""The reference domain: contrastive methods on scikit-learn's 8x8 digits.

The smallest complete domain of the suite; copy its shape. Modules, in dependency order:

* :mod:`~vision.digits.config`: ``DigitsConfig``, the frozen config (``trainer:`` included);
* :mod:`~vision.digits.data`: the fixed digits split and the random views;
* :mod:`~vision.digits.model`: the encoder (``forward_features``, ``num_features``);
* :mod:`~vision.digits.tasks`: the two-view Task and the InfoNCE-family methods;
* :mod:`~vision.digits.methods`: the methods with state, and the ``METHODS`` table;
* :mod:`~vision.digits.ft`: feature transformation on MoCo v2 (a momentum encoder, a queue);
* :mod:`~vision.digits.report`: the comparison table and the embedding plot;
* :mod:`~vision.digits.pipeline`: the run (a ``RunFolder`` with one Trainer stage per method,
  the probes, the report);
* :mod:`~vision.digits.commands`: the command handlers and the demo step;
* :mod:`~vision.digits.domain`: ``DOMAIN``, the light declaration that ``pipelines.cli``
  registers (one line in ``DOMAINS``).

This ``__init__`` imports nothing, so that ``vision.digits.domain`` stays light.
"""
