"""The revocation list a verifier holds, and the rules by which an answer of
the engine's revocations path changes it: the Go verifier's RevocationList,
checked against the same conformance vectors."""

from __future__ import annotations

import json
from typing import Any

REVOCATION_GRACE = 60


class RevocationError(ValueError):
    """An answer refused: the list held stays."""


class RevocationList:
    def __init__(self) -> None:
        self._closed: dict[str, int] | None = None
        self.version = 0
        self.epoch = ""
        self.synced = False

    def apply(self, body: str | bytes | Any, now: int) -> bool:
        """Takes one answer (the raw JSON body) fetched at now (Unix seconds);
        returns whether the list changed; raises RevocationError when the
        answer is refused."""
        version, epoch, complete, entries = _decode(body)
        whole = complete or not self.synced
        new_history = whole and self.synced and self.epoch != "" and epoch != "" and epoch != self.epoch
        if self.synced and version < self.version and not new_history:
            raise RevocationError(f"revocations: refusing version {version}, older than the version {self.version} held")
        if self.synced and version == self.version and not new_history:
            return False
        if whole or self._closed is None:
            self._closed = entries
        else:
            cutoff = now - REVOCATION_GRACE
            self._closed = {k: v for k, v in self._closed.items() if v >= cutoff}
            self._closed.update(entries)
        self.version, self.epoch, self.synced = version, epoch, True
        return True

    def closed(self, session_id: str) -> bool:
        return self._closed is not None and session_id in self._closed

    def sessions(self) -> list[str]:
        return list(self._closed or {})


def _decode(body: Any) -> tuple[int, str, bool, dict[str, int]]:
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError as e:
            raise RevocationError("revocations: the answer is not JSON") from e
    d = body.get("data") if isinstance(body, dict) else None
    if not isinstance(d, dict):
        raise RevocationError("revocations: the answer has no data")
    version = d.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise RevocationError("revocations: the answer has no version")
    sessions = d.get("sessions")
    if not isinstance(sessions, list):
        raise RevocationError("revocations: the answer's sessions are not a list")
    if version == 0 and sessions:
        raise RevocationError("revocations: a non-empty list at version 0")
    if version >= 2**64:
        raise RevocationError("revocations: the version is out of range")
    # Read as Go reads it: a member of the wrong type refuses the answer.
    epoch, complete = d.get("epoch"), d.get("complete")
    if epoch is not None and not isinstance(epoch, str):
        raise RevocationError("revocations: epoch is not a string")
    if complete is not None and not isinstance(complete, bool):
        raise RevocationError("revocations: complete is not a boolean")
    entries: dict[str, int] = {}
    for s in sessions:
        sid = s.get("id") if isinstance(s, dict) else None
        if not isinstance(sid, str) or sid == "":
            raise RevocationError("revocations: an entry has no id")
        exp = s.get("exp")
        if exp is not None and (isinstance(exp, bool) or not isinstance(exp, int)):
            raise RevocationError("revocations: an entry's exp is not an integer")
        entries[sid] = exp or 0
    return version, epoch or "", complete is True, entries
