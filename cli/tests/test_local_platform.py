"""LocalPlatform's failure path: a platform that cannot start leaves nothing running and
says where to look (its happy path is every system test that uses it)."""

from pathlib import Path

import pytest

from mercato_cli.local import LocalPlatform


def test_a_platform_that_cannot_start_raises_and_leaves_no_process(tmp_path: Path) -> None:
    platform = LocalPlatform(tmp_path / "data", args=["--replicas", "nosuchservice=2"])
    with pytest.raises(RuntimeError, match="mercato up exited; logs in"):
        platform.start(timeout=60)
    assert platform.process is None


def test_a_platform_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    platform = LocalPlatform(tmp_path / "data", args=["--no-seed"])
    with pytest.raises(RuntimeError, match="not ready after"):
        platform.start(timeout=0.5)
    assert platform.process is None
