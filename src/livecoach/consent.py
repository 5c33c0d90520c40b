"""What a participant agrees to before they are analysed or recorded: the scopes, and the exact
notice that names them.

The notice is made from the scopes, so the page shows, and the store keeps, the very text that
was agreed to; its version is a hash of that text, so a consent row proves which wording it was.
"""

from __future__ import annotations

import hashlib

ANALYSIS, AUDIO, VIDEO = "analysis", "audio", "video"
SCOPES = (ANALYSIS, AUDIO, VIDEO)


def session_scopes(video_recording: bool, recording: bool = True) -> list[str]:
    """What a call of this session analyses and records: nothing recorded where the installation
    records nothing (``livecoach serve --no-recording``), video only where the coach left it on."""
    if not recording:
        return [ANALYSIS]
    return [ANALYSIS, AUDIO, VIDEO] if video_recording else [ANALYSIS, AUDIO]


def notice(scopes: list[str]) -> str:
    """The sentence a participant agrees to."""
    parts = []
    if ANALYSIS in scopes:
        parts.append("This session's audio is analysed for talk balance (who speaks and for how long).")
    recorded = [what for scope, what in ((AUDIO, "your voice"), (VIDEO, "your camera")) if scope in scopes]
    if recorded:
        parts.append(f"The call is recorded ({' and '.join(recorded)}) for your coach's review.")
    parts.append("Only your coach sees the analysis and the recordings.")
    return " ".join(parts)


def version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
