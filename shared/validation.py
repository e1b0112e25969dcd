"""Input checks with messages of the form "Expected `x` to be ..., but got ...".

Cheap shape checks always run; checks that need the data (NaNs, label ranges) sit behind
``validate_args`` in the callers.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import torch

REDUCTIONS = ("mean", "sum", "none")


def _shape(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def check_ndim(x: torch.Tensor, ndim: int, name: str, layout: str) -> None:
    """Raise ``ValueError`` unless ``x`` has ``ndim`` dimensions.

    Args:
        x: The tensor to check.
        ndim: The expected number of dimensions.
        name: The argument's name, for the message.
        layout: The expected layout in the suite's notation, e.g. ``"(B, D)"``.

    Raises:
        ValueError: If ``x.ndim != ndim``.
    """
    if x.ndim != ndim:
        raise ValueError(f"Expected `{name}` to have shape {layout}, but got {_shape(x)}.")


def check_same_shape(a: torch.Tensor, b: torch.Tensor, names: str, layout: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape.

    Args:
        a: First tensor.
        b: Second tensor.
        names: The two names joined as the message shows them, e.g. ``"`z1` and `z2`"``.
        layout: The expected layout, e.g. ``"(B, D)"``.

    Raises:
        ValueError: If the shapes differ.
    """
    if a.shape != b.shape:
        raise ValueError(
            f"Expected {names} to have the same shape {layout}, "
            f"but got {_shape(a)} and {_shape(b)}."
        )


def check_batch_at_least(x: torch.Tensor, minimum: int, name: str) -> None:
    """Raise ``ValueError`` unless ``x.shape[0] >= minimum``.

    Raises:
        ValueError: If the batch is too small.
    """
    if x.shape[0] < minimum:
        raise ValueError(
            f"Expected `{name}` to have a batch of at least {minimum}, but got {x.shape[0]}."
        )


def check_dim(x: torch.Tensor, dim: int, size: int, name: str, layout: str) -> None:
    """Raise ``ValueError`` unless ``x.shape[dim] == size``.

    Raises:
        ValueError: If the size differs.
    """
    if x.shape[dim] != size:
        raise ValueError(
            f"Expected `{name}` to have shape {layout} with size {size} in dimension {dim}, "
            f"but got {_shape(x)}."
        )


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinite values (forces a device sync).

    Raises:
        ValueError: If a value is not finite.
    """
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"Expected `{name}` to hold finite values, but got NaN or inf.")


def check_positive(value: float, name: str) -> None:
    """Raise ``ValueError`` unless ``value > 0``.

    Raises:
        ValueError: If ``value <= 0``.
    """
    if not value > 0:
        raise ValueError(f"Expected `{name}` to be > 0, but got {value}.")


def closest(name: str, options: Iterable[str]) -> str | None:
    """Return the option closest to ``name``, or ``None`` when nothing is close.

    An option equal to ``name`` up to case wins; otherwise the closest by difflib's ratio
    (>= 0.5), compared case-insensitively.

    Examples:
        >>> closest("sasrec", ["FastSASRec", "SASRec"])
        'SASRec'
        >>> closest("trainer.epoch", ["trainer.epochs", "trainer.lr"])
        'trainer.epochs'
    """
    options = list(options)
    by_lower = {o.lower(): o for o in reversed(options)}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
    return by_lower[matches[0]] if matches else None


def look_up_option(value: str, options: Sequence[str], name: str) -> str:
    """Return ``value`` if it is one of ``options``; otherwise raise with the closest match.

    Args:
        value: The string given by the caller.
        options: The valid strings.
        name: The option's name, for the message.

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: If ``value`` is not in ``options``.

    Examples:
        >>> look_up_option("mean", REDUCTIONS, "reduction")
        'mean'
    """
    if value in options:
        return value
    hint = closest(value, options)
    did_you_mean = f" Did you mean {hint!r}?" if hint else ""
    raise ValueError(
        f"Expected `{name}` to be one of {', '.join(map(repr, options))}, "
        f"but got {value!r}.{did_you_mean}"
    )


def check_reduction(reduction: str) -> str:
    """Validate a ``reduction`` argument (``"mean"``, ``"sum"`` or ``"none"``).

    Raises:
        ValueError: If ``reduction`` is not a valid choice.
    """
    return look_up_option(reduction, REDUCTIONS, "reduction")


def reduce(
    values: torch.Tensor, reduction: str, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Reduce per-sample loss values.

    With ``weight``, ``"mean"`` divides the weighted sum by the sum of weights (BasicSR's rule).

    Args:
        values: Per-sample values. Shape: (B,).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        weight: Optional per-sample weights. Shape: (B,).

    Returns:
        A scalar for ``"mean"``/``"sum"``; shape (B,) for ``"none"``.
    """
    if weight is not None:
        values = values * weight
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if weight is not None:
        return values.sum() / weight.sum().clamp_min(torch.finfo(values.dtype).tiny)
    return values.mean()
