"""interviewer.system: Debian packages checked for real with dpkg-query."""

from __future__ import annotations

import pytest

from interviewer.errors import MissingSystemPackage, UserError
from interviewer.system import require_debian_packages


def test_installed_packages_pass() -> None:
    require_debian_packages("espeak-ng", "ffmpeg")
    require_debian_packages()


def test_missing_package_is_one_line_naming_it_and_the_fix() -> None:
    with pytest.raises(MissingSystemPackage) as err:
        require_debian_packages("espeak-ng", "no-such-package-xyz")
    assert isinstance(err.value, UserError)
    assert str(err.value) == (
        "Debian package no-such-package-xyz is not installed: "
        "run `sudo apt-get install no-such-package-xyz` (or `make run`)"
    )


def test_several_missing_packages_in_one_message() -> None:
    with pytest.raises(MissingSystemPackage) as err:
        require_debian_packages("no-such-a", "ffmpeg", "no-such-b")
    assert str(err.value) == (
        "Debian packages no-such-a, no-such-b are not installed: "
        "run `sudo apt-get install no-such-a no-such-b` (or `make run`)"
    )
