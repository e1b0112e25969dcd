"""Reading YAML config files (atomic writes are :mod:`shared.io`'s).

Only ``pipelines`` touches files named by the user; ``shared.config`` turns the mappings read
here into frozen dataclasses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from shared.errors import InputError


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    r"""Read a YAML config file whose top level is a mapping.

    An empty file reads as an empty mapping.

    Args:
        path: The file to read.

    Returns:
        The mapping, with string keys.

    Raises:
        InputError: If the file is missing or unreadable, is not valid YAML, or its top level is
            not a mapping with string keys. The message names the file.

    Examples:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
        >>> _ = f.write_text("trainer:\n  lr: 1e-3\n")
        >>> read_yaml(f)
        {'trainer': {'lr': '1e-3'}}
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"Config file {str(p)!r} does not exist.")
    if p.is_dir():
        raise InputError(f"Config file {str(p)!r} is a directory; expected a YAML file.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"Cannot read config file {str(p)!r}: {err}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = ""
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(err, "problem", None) or type(err).__name__
        raise InputError(f"Config file {str(p)!r} is not valid YAML{where}: {problem}.") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InputError(
            f"Config file {str(p)!r} must hold a mapping of settings (key: value) at its top "
            f"level, but holds a {type(data).__name__}."
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise InputError(
            f"Config file {str(p)!r} has non-string keys {bad!r}; expected setting names."
        )
    return dict(data)
