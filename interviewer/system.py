"""Checks for the Debian packages the product shells out to (espeak-ng, ffmpeg).

They are not Python dependencies, so pip cannot report them missing; without this check the first
symptom would be a silent TTS failure or an obscure subprocess error halfway through an interview.
"""

from __future__ import annotations

import shutil
import subprocess

from interviewer.errors import MissingSystemPackage

# Package -> a program it installs, used where dpkg is absent (a non-Debian host or container).
_PROGRAMS = {"espeak-ng": "espeak-ng", "ffmpeg": "ffmpeg"}


def require_debian_packages(*names: str) -> None:
    """Raise MissingSystemPackage, one line naming the missing packages and the fix, if any is."""
    missing = [name for name in names if not _installed(name)]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        verb = "are" if len(missing) > 1 else "is"
        raise MissingSystemPackage(
            f"Debian package{plural} {', '.join(missing)} {verb} not installed: "
            f"run `sudo apt-get install {' '.join(missing)}` (or `make run`)"
        )


def _installed(name: str) -> bool:
    if shutil.which("dpkg-query"):
        done = subprocess.run(
            ["dpkg-query", "--show", "--showformat=${Status}", name],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode == 0 and done.stdout.strip().endswith(" installed")
    program = _PROGRAMS.get(name, name)
    return shutil.which(program) is not None
