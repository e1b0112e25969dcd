"""Pipelines: the only place that wires domains to configs, files and the command line.

* :mod:`pipelines.cli`: the ``contrasuite`` command (``main``), built from the registered
  commands; ``python -m pipelines`` runs it too.
* :mod:`pipelines.common`: options and config resolution shared by every command
  (``add_common_options``, ``resolve_config``, ``register_command``).
* :mod:`pipelines.demo`: ``contrasuite demo`` and its registry of demo steps.
* :mod:`pipelines.showcase`: the contrastive core on 8x8 digits (SimCLR vs SupCon).
* :mod:`pipelines.config_io`, :mod:`shared.report`: YAML files and HTML reports.

Command modules stay light (argparse only) so that ``contrasuite --help`` is fast; each handler
imports its pipeline when it runs. Only this package configures logging handlers.
"""

__all__: list[str] = []
