"""A small, explicit registry: a dict plus a ``register`` decorator that refuses duplicates.

The command line keeps two of them (:data:`pipelines.cli.COMMANDS` for subcommand groups and
:data:`pipelines.demo.DEMO_STEPS` for the steps of ``contrasuite demo``). They are filled by an
explicit list of imports in :mod:`pipelines.cli`, never by scanning file names.

Examples:
    >>> steps: Registry[int] = Registry("demo step")
    >>> @steps.register("core")
    ... def core() -> int:
    ...     return 1
    >>> steps.names()
    ('core',)
    >>> steps.get("cor")
    Traceback (most recent call last):
    ...
    shared.errors.InputError: Unknown demo step 'cor'. Available: core. Did you mean 'core'?
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from shared.errors import InputError
from shared.validation import closest

T = TypeVar("T")


#: The option closest to a name (case-insensitive first), or ``None``; one implementation
#: for the config layer and the command line.
closest_match = closest


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest option, or ``""`` when none is close.

    Args:
        name: What the user typed.
        options: The valid names.

    Returns:
        The hint, with a leading space, or an empty string.
    """
    hint = closest_match(name, options)
    return f" Did you mean {hint!r}?" if hint else ""


class Registry(Generic[T]):
    """Named objects of one kind, in registration order.

    Args:
        kind: What the entries are, for messages (``"command"``, ``"demo step"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``.

        Args:
            name: The name users type.
            obj: The object to register.

        Returns:
            ``obj`` unchanged.

        Raises:
            ValueError: If ``name`` is already registered (a programming error).
        """
        if name in self._entries:
            raise ValueError(
                f"A {self.kind} named {name!r} is already registered "
                f"({self._entries[name]!r}); names must be unique."
            )
        self._entries[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`.

        Args:
            name: The name users type.

        Returns:
            A decorator that registers its argument and returns it unchanged.
        """

        def decorator(obj: T) -> T:
            return self.add(name, obj)

        return decorator

    def get(self, name: str) -> T:
        """Look ``name`` up.

        Args:
            name: The name to look up.

        Returns:
            The registered object.

        Raises:
            InputError: If ``name`` is unknown; the message lists the available names and the
                closest match.
        """
        try:
            return self._entries[name]
        except KeyError:
            available = ", ".join(self._entries) or "(none)"
            raise InputError(
                f"Unknown {self.kind} {name!r}. Available: {available}."
                + did_you_mean(name, self._entries)
            ) from None

    def names(self) -> tuple[str, ...]:
        """Return the registered names, in registration order."""
        return tuple(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """Iterate over ``(name, object)`` pairs in registration order."""
        return iter(list(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self._entries)})"
