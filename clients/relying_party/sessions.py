"""Browser sessions of the demo site, kept in memory (one process; a real site would use its own store)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

COOKIE = "harbour_power_session"
IDLE_TIMEOUT_S = 30 * 60
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    csrf: str
    language: str = "en"
    seen: float = field(default_factory=time.monotonic)
    data: dict[str, Any] = field(default_factory=dict)


class SessionStore:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def get(self, session_id: str | None) -> Session | None:
        session = self._sessions.get(session_id or "")
        if session is None or time.monotonic() - session.seen > IDLE_TIMEOUT_S:
            return None
        session.seen = time.monotonic()
        return session

    def create(self, language: str) -> Session:
        if len(self._sessions) >= MAX_SESSIONS:
            self._drop_idle()
        session = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), language=language)
        self._sessions[session.id] = session
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _drop_idle(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if now - s.seen > IDLE_TIMEOUT_S] or list(self._sessions)[: MAX_SESSIONS // 10]:
            self._sessions.pop(key, None)
