"""Pipelines: the only place that wires domains to configs, files and the command line.

* :mod:`pipelines.cli`: the ``contrasuite`` command (``main``), built from the registered
  commands; ``python -m pipelines`` runs it too.
* :mod:`pipelines.common`: options and config resolution shared by every command
  (``add_common_options``, ``resolve_config``, ``register_command``).
* :mod:`pipelines.demo`: ``contrasuite demo`` and its registry of demo steps.
* :mod:`pipelines.domain`: the domain template; a domain's :class:`shared.domain.DomainSpec`
  becomes its command group, common options, generated config-key help and demo step.
* :mod:`pipelines.config_io`: YAML config files.

Domains declare themselves in a light ``<package>/domain.py`` (listed in
:data:`pipelines.cli.DOMAINS`) so that ``contrasuite --help`` is fast; each handler imports its
pipeline when it runs. Only this package configures logging handlers.
"""

__all__: list[str] = []
