"""The suite version: the services send it in the ``perseus-version`` header and the client warns
once per service when the major versions differ."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess

import grpc.aio
import pytest

import perseus
from conftest import REPO_ROOT, PerseusServer
from perseus import _version


def test_the_package_version_is_the_suites() -> None:
    cli = json.loads((REPO_ROOT / "packages" / "cli" / "package.json").read_text())
    assert perseus.__version__ == cli["version"]
    out = subprocess.run([str(REPO_ROOT / "bin" / "perseus"), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == perseus.__version__


def test_major_mismatch_warns_once_per_service(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("perseus.test-version")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        assert not _version.check_versions("1.4.0", "1.9.2", "optimizer at a:1", logger)
        assert not _version.check_versions("1.4.0", None, "optimizer at a:1", logger)
        assert _version.check_versions("1.4.0", "2.0.0", "optimizer at a:1", logger)
        assert not _version.check_versions("1.4.0", "2.0.0", "optimizer at a:1", logger)
        assert _version.check_versions("1.4.0", "0.3.0", "agent at b:2", logger)
    assert len(caplog.records) == 2
    assert "2.0.0" in caplog.records[0].getMessage() and "1.4.0" in caplog.records[0].getMessage()


def test_the_services_send_their_version(perseus_server: PerseusServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("perseus.test-version-live")
    where = f"services at {perseus_server.address} ({perseus_server.transport})"

    async def check(client_version: str) -> None:
        monkeypatch.setattr(perseus, "__version__", client_version)
        async with grpc.aio.insecure_channel(perseus_server.address) as channel:
            await _version.check_server_version(channel, where, logger)

    real = perseus.__version__
    with caplog.at_level(logging.WARNING, logger=logger.name):
        asyncio.run(check(real))
        assert caplog.records == []
        other_major = f"{int(_version.major(real)) + 1}.0.0"
        asyncio.run(check(other_major))
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert f"runs Perseus {real}" in message and other_major in message
