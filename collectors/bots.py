"""Which accounts are machines: bot rules from the configuration, applied at metric time.

A merge bot that comments on every pull request within seconds makes "time to first
response" look excellent; an import service that lands every internal change makes a
framework look like it has one prolific contributor. Which accounts are machines is a
judgement that changes (a new bot appears, a pattern catches a person), so it is never
frozen into the stored rows: the collectors store logins, names and e-mails as they come,
and the metrics ask :class:`BotRules` each time they are computed (``fwsurvey claims``
recomputes them with no network after a change of ``[community] bots``).

The same rules are an SQL function (:meth:`BotRules.register`), so the metric SQL says
``NOT is_bot(responder, NULL, responder_type)``.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field

from fwsurvey.config import CommunityTable, SurveyConfig

#: GitHub's no-reply addresses: ``12345+login@users.noreply.github.com`` or
#: ``login@users.noreply.github.com``; the login is what the rules match.
_NOREPLY = re.compile(r"^(?:\d+\+)?(?P<login>[^@]+)@users\.noreply\.github\.com$")


@dataclass(frozen=True)
class BotRules:
    """Names and wildcard patterns (case-insensitive) that mark an account as a machine.

    Patterns have two wildcards, ``*`` (any run of characters) and ``?`` (one character);
    everything else is literal, brackets included: ``*[bot]`` is a login ending in ``[bot]``
    (with :mod:`fnmatch` it would be any login ending in b, o or t). ``names`` match a GitHub
    login or git author name exactly, and an e-mail by its local part (GitHub's no-reply
    addresses by their login); a name holding ``@`` matches a whole e-mail address.
    ``patterns`` match the login or name, and the whole e-mail address. GitHub's own user
    type ``Bot`` (apps) always counts.
    """

    names: frozenset[str]
    patterns: tuple[str, ...]
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = [re.escape(p).replace(r"\*", ".*").replace(r"\?", ".") for p in self.patterns]
        # No pattern: a regex that matches nothing.
        object.__setattr__(self, "_regex", re.compile("|".join(f"(?:{p})" for p in parts)
                                                      if parts else r"(?!)", re.IGNORECASE))

    @classmethod
    def from_config(cls, config: SurveyConfig | CommunityTable) -> BotRules:
        """The rules of ``[community]`` (its defaults when the file has no such table)."""
        table = config if isinstance(config, CommunityTable) else config.community
        return cls(frozenset(n.lower() for n in table.bots),
                   tuple(p.lower() for p in table.bot_patterns))

    def is_bot(self, login_or_name: str | None, email: str | None = None,
               user_type: str | None = None) -> bool:
        """Whether the account is a machine by GitHub's type, a listed name or a pattern."""
        if user_type is not None and user_type.lower() == "bot":
            return True
        candidates = []
        if login_or_name:
            candidates.append(login_or_name.strip().lower())
        address = email.strip().lower() if email else ""
        if address:
            if address in self.names:
                return True
            noreply = _NOREPLY.match(address)
            local = noreply.group("login") if noreply else address.partition("@")[0]
            candidates.append(local)
        if any(c in self.names for c in candidates):
            return True
        targets = candidates[:1] + ([address] if address else []) + candidates[1:]
        return any(self._regex.fullmatch(t) for t in targets)

    def register(self, conn: sqlite3.Connection) -> None:
        """Make ``is_bot(login_or_name, email, user_type)`` (1 or 0) callable from SQL."""
        conn.create_function("is_bot", 3, lambda who, email, kind: int(
            self.is_bot(who, email, kind)), deterministic=True)
