"""TLS and bearer tokens on the client's links, against a real agent that serves TCP only with
TLS + tokens; and the profiler stream's message size limit."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

import perseus
from conftest import PerseusServer, start_server, stop_server
from fixtures_client import A100_CLOCKS, WarningCounter, free_port, wait_until
from perseus._grpc import LinkSecurity
from perseus._profiler_link import MAX_BATCH_BYTES, MAX_BATCH_MEASUREMENTS, MAX_MESSAGE_BYTES, split_batches
from perseus.common.v1 import common_pb2
from perseus.profiler.v1 import profiler_pb2, profiler_pb2_grpc
from perseus.security import resolve_security

SECRET = "trainer-secret-0123456789abcdef"


@dataclass
class TlsAgent:
    address: str
    cert: Path
    dir: Path


@pytest.fixture(scope="module")
def tls_agent() -> Iterator[TlsAgent]:
    """`perseus serve agent`: a Unix socket plus a TCP listener that requires TLS and a token."""
    with tempfile.TemporaryDirectory(prefix="perseus-tls-") as tmp:
        d = Path(tmp)
        cert, key = d / "cert.pem", d / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True,
        )
        tokens = d / "tokens"
        tokens.write_text(f"trainer control {SECRET}\nmonitor read monitor-secret-0123456789\n")
        tokens.chmod(0o600)
        port = free_port()
        proc, _ = start_server(
            f"unix:{d / 'agent.sock'}", d,
            ["agent", "--agent-tcp-listen", f"127.0.0.1:{port}", "--agent-tls-cert", str(cert), "--agent-tls-key", str(key), "--agent-token-file", str(tokens)],
        )
        try:
            yield TlsAgent(f"127.0.0.1:{port}", cert, d)
        finally:
            stop_server(proc)


def measure_only(agent: TlsAgent, logger: logging.Logger, job_id: str, device: int, **kw: Any) -> perseus.PipelineFrequencyOptimizer:
    return perseus.PipelineFrequencyOptimizer(
        0, 0, 0, 0, device, 1, 1, 1, 1, None, agent_url=agent.address, job_id=job_id, num_microbatches=2, sync="none",
        supported_frequencies_mhz=A100_CLOCKS, retry_max_s=0.3, logger=logger, **kw,
    )


def one_iteration(opt: perseus.PipelineFrequencyOptimizer) -> None:
    with opt.step():
        for kind, _ in perseus.one_f_one_b(1, 0, 2):
            with opt.instruction(kind):
                time.sleep(0.001)


def test_tls_and_token_reach_the_agent(tls_agent: TlsAgent, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, _ = client_logger
    opt = measure_only(tls_agent, logger, "tls-ok", 0, tls_ca_file=str(tls_agent.cert), token=SECRET)
    try:
        assert opt.wait_ready(timeout_s=30) is True
        assert wait_until(lambda: opt.status().measurements_received >= 4, 30, step=lambda: one_iteration(opt))
        assert opt.status().lease_id != ""
    finally:
        opt.close(timeout_s=3)


def test_missing_or_read_only_token_is_a_configuration_error(tls_agent: TlsAgent, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, _ = client_logger
    for token, code in ((None, grpc.StatusCode.UNAUTHENTICATED), ("wrong-token-0123456789abc", grpc.StatusCode.UNAUTHENTICATED), ("monitor-secret-0123456789", grpc.StatusCode.PERMISSION_DENIED)):
        opt = measure_only(tls_agent, logger, "tls-no", 1, tls_ca_file=str(tls_agent.cert), token=token)
        try:
            with pytest.raises(perseus.ConfigurationError) as info:
                opt.wait_ready(timeout_s=30)
            assert (info.value.link, info.value.code) == ("agent", code), token
            assert opt.status().agent_sessions == 0
        finally:
            opt.close(timeout_s=3)


def test_token_and_ca_from_environment_per_link(tls_agent: TlsAgent, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    token_file.chmod(0o600)
    env = {"PERSEUS_AGENT_TOKEN_FILE": str(token_file), "PERSEUS_TLS_CA": str(tls_agent.cert), "PERSEUS_TOKEN": "generic-token-0123456789"}
    agent = resolve_security("agent", env=env)
    assert agent == LinkSecurity(tls=True, root_certificates=tls_agent.cert.read_bytes(), token=SECRET)
    # The link-specific variable wins over the generic one; an argument wins over both.
    assert resolve_security("optimizer", env=env).token == "generic-token-0123456789"
    assert resolve_security("optimizer", token="argument-token-0123456789", env=env).token == "argument-token-0123456789"
    token_file.chmod(0o644)
    with pytest.raises(ValueError, match=r"readable by other users \(mode 644\); chmod 600 it"):
        resolve_security("agent", env=env)


def test_profiler_batches_are_split_below_the_message_limit_and_accepted(perseus_server: PerseusServer) -> None:
    stub = profiler_pb2_grpc.ProfilerStub(perseus_server.channel)
    job_id = f"split-{os.getpid()}"
    stub.RegisterJob(
        profiler_pb2.RegisterJobRequest(
            job_id=job_id, pipeline=common_pb2.PipelineSpec(schedule=common_pb2.SCHEDULE_KIND_1F1B, num_stages=1, num_microbatches=4),
            dp_degree=1, tp_degree=1, supported_frequencies_mhz=[1410, 1395],
        ),
        timeout=10,
    )
    ms = [
        profiler_pb2.InstructionMeasurement(
            rank=common_pb2.RankIdentity(), instruction=common_pb2.INSTRUCTION_KIND_FORWARD, microbatch=i % 4, frequency_mhz=1410, time_s=0.01, energy_j=3.0, iteration=i // 4,
        )
        for i in range(160_000)
    ]
    whole = profiler_pb2.MeasurementBatch(batch_id="whole", job_id=job_id, measurements=ms)
    assert whole.ByteSize() > MAX_MESSAGE_BYTES  # what an unsplit outage backlog would send
    chunks = split_batches(ms)
    batches = [profiler_pb2.MeasurementBatch(batch_id=f"b{i}", job_id=job_id, measurements=c) for i, c in enumerate(chunks)]
    assert len(batches) > 1 and all(b.ByteSize() <= MAX_BATCH_BYTES and len(b.measurements) <= MAX_BATCH_MEASUREMENTS for b in batches)
    # The byte limit binds as well as the count: each chunk is as full as the limit allows.
    small = split_batches(ms[:100], max_bytes=1000)
    sizes = [sum(m.ByteSize() + 8 for m in c) for c in small]
    assert len(small) > 2 and all(size <= 1000 for size in sizes)
    assert all(sizes[i] + small[i + 1][0].ByteSize() + 8 > 1000 for i in range(len(small) - 1))
    assert [m for c in chunks for m in c] == ms  # nothing lost, order kept
    acks = list(stub.ReportMeasurements(iter(batches), timeout=60))
    assert [(a.batch_id, a.error.code, a.stored_count) for a in acks] == [(b.batch_id, 0, len(b.measurements)) for b in batches]
    # The same measurements in one message end the stream: the limit the client stays under.
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ReportMeasurements(iter([whole]), timeout=60))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_all_three_links_over_tls_with_scoped_tokens(tmp_path: Path, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    """`perseus serve` on TCP with TLS and token files for agent, profiler and optimizer: the client
    reaches all three with one CA and one token; a token limited to another job is refused."""
    logger, _ = client_logger
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    agent_tokens, tokens = tmp_path / "agent-tokens", tmp_path / "tokens"
    agent_tokens.write_text(f"trainer control {SECRET}\n")
    tokens.write_text(f"trainer read,report,control {SECRET}\nother read,report other-secret-0123456789abcdef jobs=someone-else\n")
    agent_tokens.chmod(0o600)
    tokens.chmod(0o600)
    env = {"PERSEUS_AGENT_TOKEN_FILE": str(agent_tokens), "PERSEUS_PROFILER_TOKEN_FILE": str(tokens), "PERSEUS_OPTIMIZER_TOKEN_FILE": str(tokens)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # start_server passes the test's environment to `perseus serve`
    try:
        proc, address = start_server("127.0.0.1:0", tmp_path, ["--tls-cert", str(cert), "--tls-key", str(key)])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        def client(token: str, job: str) -> perseus.PipelineFrequencyOptimizer:
            return perseus.PipelineFrequencyOptimizer(
                0, 0, 0, 0, 0, 1, 1, 1, 1, address, job_id=job, num_microbatches=2, sync="none", supported_frequencies_mhz=A100_CLOCKS,
                retry_max_s=0.3, logger=logger, tls_ca_file=str(cert), token=token,
            )

        ok = client(SECRET, "tls-all")
        try:
            assert ok.wait_ready(timeout_s=30) is True
            for _ in range(10):
                one_iteration(ok)
            assert ok.flush(timeout_s=15)
            st = ok.status()
            assert (st.agent_connected, st.optimizer_connected, st.profiler_connected, st.failures) == (True, True, True, {})
            assert st.measurements_acked == 40 and st.iterations_reported == 10 and st.schedule_version > 0
        finally:
            ok.close(timeout_s=3)
        other = client("other-secret-0123456789abcdef", "tls-other")
        try:
            with pytest.raises(perseus.ConfigurationError):
                other.wait_ready(timeout_s=30)
            assert wait_until(lambda: set(other.status().failures) == {"agent", "optimizer"}, 30)
            failures = other.status().failures
            assert (failures["agent"].code, failures["optimizer"].code) == ("UNAUTHENTICATED", "PERMISSION_DENIED")
            assert failures["optimizer"].message == 'token "other" may not report job "tls-other"'
        finally:
            other.close(timeout_s=3)
    finally:
        stop_server(proc)
