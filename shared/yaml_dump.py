"""A tiny YAML emitter (standard library only) for configs: :func:`dump_yaml`.

It writes nested mappings and lists of scalars as block-style YAML whose output PyYAML's
``safe_load`` reads back unchanged; :mod:`shared.config` re-exports it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["dump_yaml"]

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_YAML_WORDS = {
    "y", "n", "yes", "no", "true", "false", "on", "off", "null", "none", "nan", "inf",
}  # fmt: skip


def _yaml_str(text: str) -> str:
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text:  # PyYAML (YAML 1.1) needs a dot in the mantissa: 1.0e-05, not 1e-05
            mantissa, exponent = text.split("e")
            if "." not in mantissa:
                mantissa += ".0"
            text = f"{mantissa}e{exponent}"
        return text
    if isinstance(value, str):
        return _yaml_str(value)
    raise TypeError(f"dump_yaml cannot write a {type(value).__name__}: {value!r}.")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _yaml_lines(value: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            head = f"{pad}{_yaml_scalar(key)}:"
            if isinstance(item, Mapping) and item:
                lines.append(head)
                _yaml_lines(item, indent + 2, lines)
            elif isinstance(item, (list, tuple)) and not all(map(_is_scalar, item)):
                lines.append(head)
                _yaml_lines(item, indent + 2, lines)
            else:
                lines.append(f"{head} {_yaml_inline(item)}")
    else:
        for item in value:
            if (isinstance(item, Mapping) and item) or (
                isinstance(item, (list, tuple)) and not all(map(_is_scalar, item))
            ):
                lines.append(f"{pad}-")
                _yaml_lines(item, indent + 2, lines)
            else:
                lines.append(f"{pad}- {_yaml_inline(item)}")


def _yaml_inline(value: Any) -> str:
    if isinstance(value, Mapping):  # only ever empty here
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    return _yaml_scalar(value)


def dump_yaml(data: Mapping[str, Any]) -> str:
    """Write nested mappings and lists of scalars as block-style YAML.

    Scalars are ``None``, bools, ints, floats (NaN and infinities included) and strings; strings
    that YAML would read as something else (``"yes"``, ``"1e-4"``, ``""``) are double-quoted.
    ``yaml.safe_load(dump_yaml(d)) == d`` for such data (tuples come back as lists).

    Args:
        data: The mapping to write, e.g. ``to_dict(cfg)``.

    Returns:
        The YAML text, ending in a newline.

    Raises:
        TypeError: If a value is not a mapping, list, tuple or scalar.

    Examples:
        >>> data = {"trainer": {"lr": 1e-05, "betas": [0.9, 0.99]}, "name": "yes"}
        >>> print(dump_yaml(data), end="")
        trainer:
          lr: 1.0e-05
          betas: [0.9, 0.99]
        name: "yes"
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"Expected a mapping, but got {type(data).__name__}.")
    if not data:
        return "{}\n"
    lines: list[str] = []
    _yaml_lines(data, 0, lines)
    return "\n".join(lines) + "\n"
