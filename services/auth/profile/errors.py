"""The refusals of a profile change (declarative subclasses of libs/errors.py, rendered by the service kit)."""

from __future__ import annotations

from libs.errors import BadRequest, Conflict, Forbidden, Gone, NotFound, TooManyRequests


class NoSuchChange(NotFound):
    """No pending change of that id for this account (another account's is not told apart)."""

    slug, title = "no-such-change", "No such change"


class InvalidCode(BadRequest):
    """The one-time code is wrong; `attempts_left` says how many tries the change still has."""

    slug, title = "invalid-code", "Invalid code"


class CodeLocked(Forbidden):
    """Too many wrong codes: the change is dead, ask again (a new code to the new address)."""

    slug, title = "code-locked", "Code locked"


class CodeExpired(Gone):
    slug, title = "code-expired", "Code expired"


class ChangeDone(Conflict):
    """The change was already confirmed (its code is used up)."""

    slug, title = "change-done", "Change already done"


class TooManyChanges(TooManyRequests):
    """More contact changes asked for within the hour than allowed: each one sends a code to someone."""

    slug, title = "too-many-changes", "Too many changes"
