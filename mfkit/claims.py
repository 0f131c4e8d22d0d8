"""Claims the build checks: a sentence that compares measured things, as a test.

A chapter that writes "the hybrid beats tuned MF on u1" follows the sentence with a
hidden cell ``claim(hybrid < mf - 0.002, "the hybrid beats tuned MF on u1",
hybrid=hybrid, mf=mf)``. If a later change makes the sentence false, executing the
chapter (``make test``, ``make book``) fails with the claim and the numbers it was
checked on. Used by every chapter (see STYLE.md, "Claims the build checks").
"""

from __future__ import annotations

__all__ = ["ClaimError", "claim"]


class ClaimError(AssertionError):
    """A sentence of the prose no longer holds for the numbers the chapter computed."""


def claim(holds: bool, statement: str, **values: object) -> None:
    """Raise :class:`ClaimError` naming ``statement`` (and ``values``) unless ``holds``.

    Parameters
    ----------
    holds : bool
        The comparison the sentence makes, with the margin it implies, e.g.
        ``a < b - 0.002``.
    statement : str
        The sentence's claim in a few words, shown in the error.
    **values
        The numbers compared, shown in the error to tell by how much it failed.

    Examples
    --------
    >>> claim(0.91 < 0.93 - 0.005, "tuned MF beats biases only")
    >>> claim(0.95 < 0.93, "tuned MF wins", tuned=0.95, biases=0.93)
    Traceback (most recent call last):
    ...
    mfkit.claims.ClaimError: claim no longer holds: tuned MF wins (tuned=0.95, biases=0.93)
    """
    if not statement.strip():
        raise ValueError("a claim needs a statement: the sentence it checks, in a few words")
    if not bool(holds):  # numpy and one-element torch booleans too
        shown = ", ".join(f"{name}={_show(value)}" for name, value in values.items())
        raise ClaimError(f"claim no longer holds: {statement}" + (f" ({shown})" if shown else ""))


def _show(value: object) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return repr(value)
