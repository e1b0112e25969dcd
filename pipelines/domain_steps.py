"""Formerly the ECG and recsys demo steps; both domains now register theirs by their ``DomainSpec``.

Nothing is registered here any more (``pipelines.cli.DOMAINS`` lists every domain); the module
stays importable until :data:`pipelines.cli.COMMAND_MODULES` drops it.
"""

from __future__ import annotations

__all__: list[str] = []
