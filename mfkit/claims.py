"""Claims the build checks: a sentence that compares measured things, as a test.

A chapter that writes "the hybrid beats tuned MF on u1" follows the sentence with a
hidden cell ``claim(hybrid < mf - 0.002, "the hybrid beats tuned MF on u1",
hybrid=hybrid, mf=mf)``. If a later change makes the sentence false, executing the
chapter (``make test``, ``make book``) fails with the claim and the numbers it was
checked on. Used by every chapter (see STYLE.md, "Claims the build checks").

What a failing claim does depends on ``MFKIT_CLAIMS``:

- ``strict`` (in CI, with ``CI`` set, and in ``make test`` / ``pytest --nbval
  notebooks``): raise :class:`ClaimError`, so the build fails;
- ``warn`` (the default elsewhere, e.g. a learner's ``make book`` or JupyterLab): show
  a warning box where the sentence stands ("on this machine this did not hold") and
  go on; numbers move a little from one CPU to another;
- ``collect`` (``make check-numerics``): as ``warn``, and append the claim with its
  values as one JSON line to the file ``MFKIT_CLAIMS_LOG`` names, so one run lists
  every fragile claim.

Timings are different: they vary from run to run, so a chapter never asserts an
ordering of times. It glues the words instead, computed with a margin by
:func:`mfkit.measure.speed_verdict` ("faster than", "about as fast as"), and
:func:`claim_speed` checks that the glued words say what the two timings say
(chapter 10).
"""

from __future__ import annotations

import html
import json
import os
import warnings

from mfkit.measure import speed_verdict

__all__ = ["ClaimError", "ClaimWarning", "claim", "claim_speed", "claims_mode"]

MODE_VARIABLE = "MFKIT_CLAIMS"
LOG_VARIABLE = "MFKIT_CLAIMS_LOG"
MODES = ("strict", "warn", "collect")
WARNING_TEXT = "On this machine a sentence near here did not hold"  # opens the warning box


class ClaimError(AssertionError):
    """A sentence of the prose no longer holds for the numbers the chapter computed."""


class ClaimWarning(UserWarning):
    """A claim that did not hold on this machine (``MFKIT_CLAIMS=warn`` or ``collect``)."""


def claims_mode() -> str:
    """What a failing claim does: ``MFKIT_CLAIMS``, else ``strict`` in CI, else ``warn``.

    Raises
    ------
    ValueError
        If ``MFKIT_CLAIMS`` names no known mode.
    """
    mode = os.environ.get(MODE_VARIABLE, "").strip().lower()
    if not mode:
        return "strict" if os.environ.get("CI") else "warn"
    if mode not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={mode!r} is not a mode: expected one of {list(MODES)}")
    return mode


def claim(holds: bool, statement: str, **values: object) -> None:
    """Raise :class:`ClaimError` naming ``statement`` (and ``values``) unless ``holds``.

    Outside CI and the tests the failure is shown instead of raised (see the module's
    docstring and :func:`claims_mode`).

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
    if bool(holds):  # numpy and one-element torch booleans too
        return
    shown = ", ".join(f"{name}={_show(value)}" for name, value in values.items())
    message = f"claim no longer holds: {statement}" + (f" ({shown})" if shown else "")
    mode = claims_mode()
    if mode == "strict":
        raise ClaimError(message)
    if mode == "collect":
        _record(statement, values)
    _show_warning(statement, shown)


def claim_speed(
    verdict: str, seconds: float, other: float, statement: str, *, margin: float = 1.3
) -> None:
    """Check the glued words "``seconds`` is ``verdict`` ``other``" against the timings.

    The words mean what :func:`mfkit.measure.speed_verdict` says of the two timings
    with ``margin`` (1.3 by default): ``"faster than"``, ``seconds * margin <= other``;
    ``"slower than"``, ``seconds >= other * margin``; ``"about as fast as"``, neither.
    A verdict that ``speed_verdict`` computed from the same two timings always passes,
    whatever the machine's speed: the check fails only when the words glued into the
    prose came from other numbers, or were typed by hand.

    Parameters
    ----------
    verdict : str
        The glued words: ``"faster than"``, ``"slower than"`` or ``"about as fast as"``.
    seconds, other : float
        The two timings the sentence compares, in the order it names them.
    statement : str
        The sentence's claim in a few words, shown in the error.
    margin : float
        The factor an ordering needs, >= 1.

    Examples
    --------
    >>> from mfkit.measure import speed_verdict
    >>> sparse_ms, dense_ms = 0.4, 2.1
    >>> verdict = speed_verdict(sparse_ms, dense_ms)  # glued as "sparse_verdict"
    >>> claim_speed(verdict, sparse_ms, dense_ms, "a sparse step is <verdict> a dense one")
    >>> claim_speed("about as fast as", sparse_ms, dense_ms, "typed")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mfkit.claims.ClaimError: claim no longer holds: typed ('about as fast as' ...) (seconds=0.4...)
    """
    verdicts = ("about as fast as", "faster than", "slower than")
    if verdict not in verdicts:
        raise ValueError(f"unknown verdict {verdict!r}: expected one of {list(verdicts)}")
    said = f"{statement} ({verdict!r} at a margin of {margin:g})"
    # One definition of what the words mean: speed_verdict's (it also rejects margin < 1).
    holds = speed_verdict(seconds, other, margin=margin) == verdict
    claim(holds, said, seconds=seconds, other=other)


def _record(statement: str, values: dict) -> None:
    """Append the failed claim to the ``MFKIT_CLAIMS_LOG`` file, as one JSON line."""
    path = os.environ.get(LOG_VARIABLE)
    if not path:
        raise ValueError(f"{MODE_VARIABLE}=collect needs {LOG_VARIABLE}: the file to append to")
    line = {"statement": statement, "values": {k: _show(v, 6) for k, v in values.items()}}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def _show_warning(statement: str, shown: str) -> None:
    """A warning box where the sentence stands (in a notebook), else a Python warning."""
    text = (
        WARNING_TEXT
        + ": "
        + statement
        + (f" ({shown})" if shown else "")
        + ". Trained numbers move a little from one CPU to another; the text was checked "
        "on the machine that built the course."
    )
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython comes with the notebooks
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        warnings.warn(text, ClaimWarning, stacklevel=3)
        return
    box = (
        '<div class="admonition warning" style="border-left: 4px solid #f0ad4e; '
        'padding: 0.4em 0.8em"><p class="admonition-title">Not so on this machine</p>'
        f"<p>{html.escape(text)}</p></div>"
    )
    display({"text/html": box, "text/plain": "Warning: " + text}, raw=True)


def _show(value: object, digits: int = 4) -> str:
    try:
        return f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return repr(value)
