"""Strict configs: frozen dataclasses filled from plain mappings and ``key.sub=value`` overrides.

The rules (style guide, rule 9):

* Unknown keys are errors that name the key path, where it came from, and the closest valid key.
* Missing keys without a default are errors, never ``None``.
* Values are coerced from the field annotations: ``"1e-4"`` becomes a float, ``"yes"`` a bool,
  ``"a,b"`` a tuple of strings; ``Literal`` choices are checked with a "did you mean" hint.
* Overrides are parsed against the field types; nothing is ``eval``-ed and ``sys.argv`` is never
  read. Configs are never mutated: :func:`apply_overrides` returns a new object.

:func:`dump_yaml` (from :mod:`shared.yaml_dump`) writes a config back as YAML.

Examples:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Optim:
    ...     lr: float = 1e-3
    ...     betas: tuple[float, ...] = (0.9, 0.999)
    >>> load_config(Optim, {"lr": "1e-4"}, ["betas=0.8,0.9"])
    Optim(lr=0.0001, betas=(0.8, 0.9))
    >>> from_dict(Optim, {"lrr": 1})
    Traceback (most recent call last):
    ...
    shared.config.ConfigError: config: unknown key `lrr`; did you mean `lr`? ...
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from shared.errors import InputError
from shared.validation import closest
from shared.yaml_dump import dump_yaml

__all__ = [
    "ConfigError",
    "apply_overrides",
    "build_config",
    "config_keys",
    "deep_merge",
    "dump_yaml",
    "from_dict",
    "load_config",
    "to_dict",
]

T = TypeVar("T")

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NULL = ("none", "null", "~")


class ConfigError(InputError):
    """A config that cannot be loaded: unknown key, missing key, or a value of the wrong type."""


# ----------------------------------------------------------------------------- helpers


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _hints(cls: type) -> dict[str, Any]:
    try:
        return get_type_hints(cls)
    except Exception as exc:  # a forward reference that cannot be resolved
        raise TypeError(f"Cannot resolve the type annotations of {cls.__name__}: {exc}") from exc


def _is_union(tp: Any) -> bool:
    origin = get_origin(tp)
    return origin is Union or origin is types.UnionType


def _describe(tp: Any) -> str:
    """Say in words what values ``tp`` accepts, for error messages."""
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(c) for c in get_args(tp))
    if _is_union(tp):
        return " or ".join("null" if a is type(None) else _describe(a) for a in get_args(tp))
    if get_origin(tp) in (tuple, list, Sequence):
        args = get_args(tp)
        if not args:
            return "a list"
        if get_origin(tp) is tuple and args[-1] is not Ellipsis:
            if len(set(args)) == 1:
                return f"a list of {len(args)} values, each {_describe(args[0])}"
            return "a list of values (" + ", ".join(_describe(a) for a in args) + ")"
        return f"a list of values, each {_describe(args[0])}"
    if get_origin(tp) in (dict, Mapping):
        return "a mapping"
    if _is_dataclass_type(tp):
        return f"a mapping of {tp.__name__} keys"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    return getattr(tp, "__name__", str(tp))


def _closest_key(cls: type, path: str, name: str) -> str | None:
    """The valid key path closest to an unknown ``name`` found at ``path``."""
    hint = closest(name, _fields(cls))
    if hint is not None:
        return _join(path, hint)
    leaves = _leaf_paths(cls, path)
    suffix = [p for p in leaves if p.endswith("." + name)]
    if len(suffix) == 1:
        return suffix[0]
    return closest(_join(path, name), leaves)


def _leaf_paths(cls: type, path: str) -> list[str]:
    hints = _hints(cls)
    out: list[str] = []
    for name in _fields(cls):
        sub = _join(path, name)
        tp = hints[name]
        out.extend(_leaf_paths(tp, sub) if _is_dataclass_type(tp) else [sub])
    return out


def config_keys(cls: type) -> list[str]:
    """Every dotted leaf key of a config dataclass, in field order.

    Examples:
        >>> from shared.training import TrainerConfig
        >>> config_keys(TrainerConfig)[:3]
        ['epochs', 'lr', 'optimizer']
    """
    return _leaf_paths(cls, "")


def _unknown_key(cls: type, path: str, name: str, source: str) -> ConfigError:
    hint = _closest_key(cls, path, name)
    did_you_mean = f"; did you mean `{hint}`?" if hint else "."
    where = f"`{path}`" if path else "the top level"
    return ConfigError(
        f"{source}: unknown key `{_join(path, name)}`{did_you_mean} "
        f"Valid keys of {where}: {', '.join(_fields(cls))}."
    )


# ----------------------------------------------------------------------------- coercion


def _split_list(text: str) -> list[str]:
    text = text.strip()
    if len(text) >= 2 and (text[0], text[-1]) in (("[", "]"), ("(", ")")):
        text = text[1:-1].strip()
    if not text:
        return []
    return [_unquote(part.strip()) for part in text.split(",")]


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _coerce(value: Any, tp: Any, path: str, source: str, text: bool) -> Any:
    """Convert ``value`` to the annotation ``tp``, or raise :class:`ConfigError`.

    ``text`` is True for values that came from a ``key=value`` override (always strings).
    """

    def bad(extra: str = "") -> ConfigError:
        return ConfigError(
            f"{source}: expected `{path}` to be {_describe(tp)}, but got {value!r}.{extra}"
        )

    if tp is Any or tp is object:
        return value
    if _is_union(tp):
        args = get_args(tp)
        if type(None) in args and (
            value is None or (text and isinstance(value, str) and value.strip().lower() in _NULL)
        ):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path, source, text)
            except ConfigError:
                continue
        raise bad()
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        for choice in choices:
            if value == choice and type(value) is type(choice):
                return choice
            if isinstance(value, str) and not isinstance(choice, str) and value == str(choice):
                return choice
        hint = closest(str(value), [str(c) for c in choices])
        raise bad(f" Did you mean {hint!r}?" if hint else "")
    if origin in (tuple, list, Sequence):
        args = get_args(tp)
        items = _split_list(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise bad()
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise bad()
            elem_types = list(args)
        else:
            elem_types = [args[0] if args else Any] * len(items)
        is_text = text or isinstance(value, str)
        out = [
            _coerce(v, t, f"{path}[{i}]", source, is_text)
            for i, (t, v) in enumerate(zip(elem_types, items))
        ]
        return out if origin is list else tuple(out)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise bad()
        args = get_args(tp)
        key_tp, val_tp = args if args else (Any, Any)
        return {
            _coerce(k, key_tp, path, source, text): _coerce(v, val_tp, f"{path}.{k}", source, text)
            for k, v in value.items()
        }
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise bad()
        return _build(tp, value, path, source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        raise bad()
    if tp is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                try:
                    as_float = float(value)
                except ValueError:
                    raise bad() from None
                if as_float.is_integer():
                    return int(as_float)
        raise bad()
    if tp is float:
        if isinstance(value, bool):
            raise bad()
        number: float | None = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise bad() from None
        if number is None:
            raise bad()
        if not math.isfinite(number):  # no setting of the suite means anything at nan or inf
            raise ConfigError(
                f"{source}: expected `{path}` to be a finite number, but got {value!r}."
            )
        return number
    if tp is str:
        if isinstance(value, str):
            return _unquote(value.strip()) if text else value
        raise bad(" Quote it in YAML to make it a string." if value is not None else "")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value in (member, member.value, member.name):
                return member
        raise bad()
    if isinstance(tp, type) and issubclass(tp, PurePath):
        if isinstance(value, (str, PurePath)):
            return tp(value)
        raise bad()
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise bad()


def _build(cls: type[T], data: Mapping[str, Any], path: str, source: str) -> T:
    if not isinstance(data, Mapping):
        where = f"`{path}`" if path else "the config"
        raise ConfigError(
            f"{source}: expected {where} to be a mapping of keys to values, "
            f"but got {type(data).__name__}."
        )
    fields = _fields(cls)
    hints = _hints(cls)
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"{source}: expected string keys, but got {key!r} in `{path}`.")
        if key not in fields:
            raise _unknown_key(cls, path, key, source)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = _join(path, name)
        if name in data:
            value = _overlay(_default_of(f), data[name])
            kwargs[name] = _coerce(value, hints[name], sub, source, text=False)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key `{sub}` ({_describe(hints[name])}).")
    return _construct(cls, kwargs, path, source)


def _default_of(f: dataclasses.Field[Any]) -> Any:
    """The field's default value (calling its factory), or MISSING."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _overlay(base: Any, value: Any) -> Any:
    """Lay a mapping over a dataclass default, so a parent's ``default_factory`` is kept.

    ``trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(epochs=60))`` with
    ``{"trainer": {"lr": 0.1}}`` gives ``epochs=60, lr=0.1``, not the class's ``epochs``.
    """
    if not (dataclasses.is_dataclass(base) and not isinstance(base, type)):
        return value
    if not isinstance(value, Mapping):
        return value
    merged: dict[Any, Any] = {n: getattr(base, n) for n in _fields(type(base))}
    for key, sub in value.items():
        merged[key] = _overlay(merged.get(key), sub) if key in merged else sub
    return merged


def _construct(cls: type[T], kwargs: Mapping[str, Any], path: str, source: str) -> T:
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        where = f"`{path}`" if path else cls.__name__
        raise ConfigError(f"{source}: invalid {where}: {exc}") from exc


# ----------------------------------------------------------------------------- public API


def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str = "config") -> T:
    """Build the (nested) frozen dataclass ``cls`` from a plain mapping, strictly.

    Args:
        cls: A dataclass type; nested dataclass fields are filled from nested mappings.
        data: Keys and values, e.g. from ``yaml.safe_load``. Not modified.
        source: Where ``data`` came from (a file name), quoted in error messages.

    Returns:
        A new ``cls`` instance.

    Raises:
        ConfigError: On an unknown key (naming the closest valid key), a missing required key,
            or a value that does not fit the field's type.
        TypeError: If ``cls`` is not a dataclass.
    """
    if not _is_dataclass_type(cls):
        raise TypeError(f"Expected `cls` to be a dataclass type, but got {cls!r}.")
    return _build(cls, data, "", source)


def apply_overrides(cfg: T, overrides: Sequence[str], sources: Sequence[str] = ()) -> T:
    """Return a copy of ``cfg`` with ``key.sub=value`` overrides applied in order.

    Values are parsed against the field types (see the module docstring); ``none``/``null``
    sets an optional field to ``None``; lists are written ``a,b,c`` or ``[a, b, c]``.

    Args:
        cfg: A dataclass instance. Not modified.
        overrides: Strings such as ``"trainer.lr=1e-4"``.
        sources: What an error names as the origin of each override, by position (e.g.
            ``"--epochs 0"`` for a command-line option); by default ``override `KEY=VALUE```.

    Returns:
        A new instance of the same type.

    Raises:
        ConfigError: If an override is not of the form ``key=value``, names an unknown key
            (with the closest valid key), or has a value of the wrong type.
    """
    for i, override in enumerate(overrides):
        source = sources[i] if i < len(sources) else f"override `{override}`"
        key, sep, raw = str(override).partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                f"Invalid override `{override}`: expected the form key=value, "
                "e.g. `trainer.lr=1e-4`."
            )
        cfg = _override(cfg, key.split("."), "", raw, source)
    return cfg


def _override(obj: Any, parts: list[str], path: str, raw: str, source: str) -> Any:
    cls = type(obj)
    name, rest = parts[0], parts[1:]
    fields = _fields(cls)
    if name not in fields:
        raise _unknown_key(cls, path, name, source)
    sub = _join(path, name)
    tp = _hints(cls)[name]
    current = getattr(obj, name)
    if rest:
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            new = _override(current, rest, sub, raw, source)
        elif isinstance(current, Mapping) and len(rest) == 1:
            val_tp = (get_args(tp) or (Any, Any))[1] if get_origin(tp) in (dict, Mapping) else Any
            new = {**current, rest[0]: _coerce(raw, val_tp, _join(sub, rest[0]), source, True)}
        else:
            raise ConfigError(f"{source}: `{sub}` has no sub-keys (it is {_describe(tp)}).")
    else:
        if _is_dataclass_type(tp):
            example = next(iter(_fields(tp)), "key")
            raise ConfigError(
                f"{source}: `{sub}` is a section; set its keys one by one, "
                f"e.g. `{sub}.{example}=...`."
            )
        new = _coerce(raw, tp, sub, source, text=True)
    return _construct_replace(obj, name, new, path, source)


def _construct_replace(obj: Any, name: str, new: Any, path: str, source: str) -> Any:
    kwargs = {n: getattr(obj, n) for n in _fields(type(obj))}
    kwargs[name] = new
    return _construct(type(obj), kwargs, path, source)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Turn a dataclass config into plain JSON-able data (dicts, lists, str, numbers, None).

    Tuples become lists, paths strings and enums their values.

    Args:
        cfg: A dataclass instance.

    Returns:
        A new nested ``dict``.

    Raises:
        TypeError: If ``cfg`` is not a dataclass instance.
    """
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"Expected a dataclass instance, but got {type(cfg).__name__}.")
    out: dict[str, Any] = _plain(cfg)
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {
            str(k) if not isinstance(k, (int, float, bool)) else k: _plain(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"Cannot turn a {type(value).__name__} into plain config data.")


def load_config(
    cls: type[T],
    data: Mapping[str, Any] | None,
    overrides: Sequence[str] = (),
    *,
    source: str = "config",
) -> T:
    """Build ``cls`` from ``data`` (``None`` = all defaults), then apply ``overrides``.

    Args:
        cls: The dataclass type.
        data: A mapping such as ``yaml.safe_load(file)``, or ``None``.
        overrides: ``key.sub=value`` strings, applied after ``data``.
        source: Where ``data`` came from, for error messages.

    Returns:
        A new ``cls`` instance.

    Raises:
        ConfigError: See :func:`from_dict` and :func:`apply_overrides`.
    """
    return apply_overrides(from_dict(cls, {} if data is None else data, source=source), overrides)


def deep_merge(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``layer`` laid over it, nested mappings merged key by key (no mutation).

    Examples:
        >>> deep_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}})
        {'a': {'x': 1, 'y': 3}, 'b': 1}
    """
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, Mapping):
            current = out.get(key)
            out[key] = deep_merge(current if isinstance(current, Mapping) else {}, value)
        else:
            out[key] = value
    return out


def build_config(cls: type[T], *layers: Mapping[str, Any], source: str = "config") -> T:
    """Build ``cls`` from its defaults with nested mappings laid over them in order.

    The start is ``cls()`` as a plain dict, so that defaults a parent dataclass gives a nested
    one (``trainer: TrainerConfig = field(default_factory=...)``) survive a layer that sets only
    some of the nested keys.

    Args:
        cls: The config dataclass.
        *layers: Nested mappings; later ones win, key by key.
        source: Where the layers came from, for error messages.

    Returns:
        The config.

    Raises:
        ConfigError: On an unknown key (naming the closest valid one) or a bad value.

    Examples:
        >>> from shared.training import TrainerConfig
        >>> build_config(TrainerConfig, {"epochs": 3}, {"lr": 0.5}).epochs
        3
    """
    try:
        data: dict[str, Any] = to_dict(cls())
    except TypeError:  # a field without a default: the layers must give it
        data = {}
    for layer in layers:
        data = deep_merge(data, layer)
    return from_dict(cls, data, source=source)
