"""Running the embedded PostgreSQL must not make the user's home directory listable by others."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from domain.database import start_embedded, stop_embedded
from domain.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="pgserver changes parent permissions only when run as root")
def test_as_root_the_parents_of_the_data_directory_stay_unlistable() -> None:
    # pgserver adds g+rx,o+rx to every parent of its data directory so its `pgserver` user can reach it.
    top = Path(tempfile.mkdtemp(prefix="cs-perm-"))
    home = top / "home"
    (home / ".local" / "share").mkdir(parents=True)
    home.chmod(0o700)
    settings = Settings(CODESEARCH_HOME=home / ".local" / "share" / "codesearch")
    try:
        assert start_embedded(settings).startswith("postgresql://")
        assert mode(home) == 0o711, oct(mode(home))  # traversable, not listable or readable
        assert mode(settings.home) == 0o711
        assert not mode(settings.pgdata) & (stat.S_IRWXG | stat.S_IRWXO)  # initdb's 0700
    finally:
        stop_embedded(settings)
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="as a normal user pgserver changes no permissions")
def test_as_a_normal_user_the_codesearch_home_is_private(tmp_path: Path) -> None:
    settings = Settings(CODESEARCH_HOME=tmp_path / "codesearch")
    try:
        start_embedded(settings)
        assert mode(settings.home) == 0o700
    finally:
        stop_embedded(settings)
