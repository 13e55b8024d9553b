"""Real human speech for the voice tests: Debian's asterisk prompt recordings, one voice artist
per folder (asterisk-core-sounds-LANG-wav, asterisk-prompt-it-menardi-wav; `make test` installs
them). en and es are both Allison: never two different people."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from interviewer.proctoring import voices

SOUNDS = Path("/usr/share/asterisk/sounds")
FOLDERS = {
    "en": "en_US_f_Allison",
    "it": "it_IT_m_Carlo",
    "fr": "fr_CA_f_June",
    "ru": "ru_RU_f_IvrvoiceRU",
    "it-f": "it_IT_f_Menardi",
}
# tones and the monkeys of tt-monkeys (bracketed in the en pack's reference texts): not speech
NOT_SPEECH = {"beep", "beeperr", "ascending-2tone", "descending-2tone", "tt-monkeys"}


def require_recordings() -> None:
    """Fail, not skip: a suite that silently skips the voice tests proves nothing."""
    missing = [folder for folder in FOLDERS.values() if not (SOUNDS / folder).is_dir()]
    if missing:
        pytest.fail(f"asterisk recordings missing ({', '.join(missing)}): run `make test`")


def recorded(language: str, first: int, seconds: float, pause_s: float = 0.6) -> np.ndarray:
    """One artist's prompts from the ``first``-th on, ``pause_s`` apart, until ``seconds``."""
    files = sorted((SOUNDS / FOLDERS[language]).glob("*.wav"))
    files = [f for f in files if f.stat().st_size > 16_000 and f.stem not in NOT_SPEECH]
    parts, total, pause = [], 0, np.zeros(round(pause_s * 16_000), dtype=np.float32)
    for f in files[first:]:
        parts += [voices.read_wav(f), pause]
        total += len(parts[-2]) + len(pause)
        if total >= seconds * 16_000:
            break
    return np.concatenate(parts)


def write_wav(path: Path, signal: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((np.clip(signal, -1, 1) * 32767).astype(np.int16).tobytes())
    return path
