"""Hostile-input suite (issue 13): every RPC of the three services, through the generated
descriptors, against a real ``perseus serve`` (all three services in one process).

For every method of GpuAgent, Profiler and Optimizer it sends

* random bytes as the request (undecodable or decoding to nonsense),
* a plausible request (every field filled with an ordinary value), and from it one request per
  field and hostile value: NaN, ±inf, negative, 1e308 and 5e-324 for floats; 0, -1 and the extreme
  values for integers; empty, 1 MiB and path/NUL strings; an unknown enum number; 100,000-entry
  repeated fields; empty sub-messages,

and asserts: the server never crashes (it still answers afterwards), every request is answered in
bounded time, an INVALID_ARGUMENT carries at least one field violation, no request gets INTERNAL
or UNKNOWN (an unexpected exception in a handler), and a method whose requests were all rejected
changed no state (agent devices, the optimizer's jobs, a profiler fixture job: read before and
after). Seeded (``PERSEUS_HOSTILE_SEED``, default 13); the counts go to stdout (``-s``).
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf.message import Message

from conftest import field_violations, start_server, stop_server
from perseus.agent.v1 import agent_pb2
from perseus.common.v1 import common_pb2
from perseus.optimizer.v1 import optimizer_pb2
from perseus.profiler.v1 import profiler_pb2

SEED = int(os.environ.get("PERSEUS_HOSTILE_SEED", "13"))
#: Longest any single hostile request may take to be answered, seconds.
MAX_REQUEST_S = 5.0
#: Codes a hostile request may get. INTERNAL/UNKNOWN mean an unexpected exception; UNAVAILABLE a crash.
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNIMPLEMENTED,
}
#: Long-lived streams: a plausible request may legitimately keep them open until the deadline.
LONG_POLL = {"perseus.optimizer.v1.Optimizer/WatchSchedule", "perseus.agent.v1.GpuAgent/OpenSession"}
FIXTURE_JOB = "hostile-fixture"
MIB = "x" * (1 << 20)

SERVICES: list[tuple[Any, str]] = [
    (agent_pb2, "GpuAgent"),
    (profiler_pb2, "Profiler"),
    (optimizer_pb2, "Optimizer"),
]


def hostile_values(f: d.FieldDescriptor) -> list[Any]:
    t = f.type
    if t in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        return [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e308 if t == d.FieldDescriptor.TYPE_DOUBLE else 3e38, 5e-324 if t == d.FieldDescriptor.TYPE_DOUBLE else 1e-45]
    if t in (d.FieldDescriptor.TYPE_INT32, d.FieldDescriptor.TYPE_SINT32, d.FieldDescriptor.TYPE_SFIXED32):
        return [-1, -(2**31), 2**31 - 1, 0]
    if t in (d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_FIXED32):
        return [0, 2**32 - 1, 2**31]
    if t in (d.FieldDescriptor.TYPE_INT64, d.FieldDescriptor.TYPE_SINT64, d.FieldDescriptor.TYPE_SFIXED64):
        return [-1, -(2**63), 2**63 - 1, 0]
    if t in (d.FieldDescriptor.TYPE_UINT64, d.FieldDescriptor.TYPE_FIXED64):
        return [0, 2**64 - 1, 2**53 + 1]
    if t == d.FieldDescriptor.TYPE_BOOL:
        return [True, False]
    if t == d.FieldDescriptor.TYPE_STRING:
        return ["", MIB, "../../etc/passwd\x00", "é" * 200, "a b/c"]
    if t == d.FieldDescriptor.TYPE_BYTES:
        return [b"", b"\xff" * 1000]
    if t == d.FieldDescriptor.TYPE_ENUM:
        return [0, 99, -1]
    return []


def plausible_scalar(f: d.FieldDescriptor, rng: random.Random) -> Any:
    t = f.type
    if t in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        return 0.05
    if t == d.FieldDescriptor.TYPE_BOOL:
        return True
    if t == d.FieldDescriptor.TYPE_STRING:
        return FIXTURE_JOB if f.name.endswith("_id") else "plausible"
    if t == d.FieldDescriptor.TYPE_BYTES:
        return b"x"
    if t == d.FieldDescriptor.TYPE_ENUM:
        values = [v.number for v in f.enum_type.values if v.number != 0]
        return values[0] if values else 0
    if f.name.endswith("frequency_mhz") or f.name.endswith("frequencies_mhz"):
        return 1410
    return rng.choice([0, 1])


def fill(msg: Message, rng: random.Random, depth: int = 0) -> None:
    """Fills every field (one per oneof) with an ordinary value, sub-messages to depth 4."""
    seen_oneofs: set[str] = set()
    for f in msg.DESCRIPTOR.fields:
        oneof = f.containing_oneof
        if oneof is not None:
            if oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(oneof.name)
        if f.type == d.FieldDescriptor.TYPE_MESSAGE:
            if depth >= 4:
                continue
            if f.is_repeated:
                fill(getattr(msg, f.name).add(), rng, depth + 1)
            else:
                fill(getattr(msg, f.name), rng, depth + 1)
                getattr(msg, f.name).SetInParent()
        elif f.is_repeated:
            getattr(msg, f.name).append(plausible_scalar(f, rng))
        else:
            setattr(msg, f.name, plausible_scalar(f, rng))


def field_paths(desc: d.Descriptor, prefix: tuple[str, ...] = (), depth: int = 0) -> Iterator[tuple[tuple[str, ...], d.FieldDescriptor]]:
    for f in desc.fields:
        path = (*prefix, f.name)
        yield path, f
        if f.type == d.FieldDescriptor.TYPE_MESSAGE and not f.is_repeated and depth < 3:
            yield from field_paths(f.message_type, path, depth + 1)


def mutations(base: Message) -> Iterator[tuple[str, Message]]:
    """One request per (field, hostile value), each a copy of ``base`` with that field replaced."""
    for path, f in field_paths(base.DESCRIPTOR):
        label = ".".join(path)
        repeated = f.is_repeated
        if f.type == d.FieldDescriptor.TYPE_MESSAGE:
            m = type(base)()
            m.CopyFrom(base)
            parent = _walk(m, path[:-1])
            if repeated:
                container = getattr(parent, f.name)
                for _ in range(20_000):
                    container.add()
                yield f"{label}[20000 empty]", m
            else:
                getattr(parent, f.name).Clear()
                getattr(parent, f.name).SetInParent()
                yield f"{label}=<empty>", m
            continue
        values = hostile_values(f)
        if repeated:
            big = 100_000 if f.type != d.FieldDescriptor.TYPE_STRING else 1_000
            fill_value = 1 if f.type != d.FieldDescriptor.TYPE_STRING else "x"
            values = [[fill_value] * big, [], *([[v] for v in values if not (isinstance(v, str) and len(v) > 1000)])]
        for v in values:
            m = type(base)()
            m.CopyFrom(base)
            parent = _walk(m, path[:-1])
            try:
                if repeated:
                    container = getattr(parent, f.name)
                    del container[:]
                    container.extend(v)
                else:
                    setattr(parent, f.name, v)
            except (ValueError, TypeError):
                continue  # the Python runtime refuses it (e.g. a negative uint): not sendable
            yield f"{label}={_short(v)}", m


def _walk(m: Message, path: tuple[str, ...]) -> Message:
    for name in path:
        m = getattr(m, name)
    return m


def _short(v: Any) -> str:
    if isinstance(v, list):
        return f"[{len(v)} entries]"
    s = repr(v)
    return s if len(s) <= 40 else f"{s[:20]}…({len(s)} chars)"


@dataclass
class Tally:
    requests: int = 0
    methods: set[str] = field(default_factory=set)
    codes: dict[str, int] = field(default_factory=dict)
    slowest_s: float = 0.0
    state_checks: int = 0
    failures: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[grpc.Channel, Any]]:
    with tempfile.TemporaryDirectory(prefix="perseus-hostile-") as tmp:
        proc, address = start_server("127.0.0.1:0", Path(tmp))
        channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)])
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
            yield channel, proc
        finally:
            channel.close()
            stop_server(proc)


def _unary(channel: grpc.Channel, path: str) -> Callable[..., Any]:
    return channel.unary_unary(path, request_serializer=None, response_deserializer=None)


def _state(channel: grpc.Channel) -> tuple[bytes, ...]:
    """What a rejected request must not change: agent devices, optimizer jobs, the profiler fixture."""
    out: list[bytes] = []
    for path, req in [
        ("/perseus.agent.v1.GpuAgent/ListDevices", agent_pb2.ListDevicesRequest()),
        ("/perseus.optimizer.v1.Optimizer/ListJobs", optimizer_pb2.ListJobsRequest(page_size=1000)),
        ("/perseus.profiler.v1.Profiler/GetCoverage", profiler_pb2.GetCoverageRequest(job_id=FIXTURE_JOB)),
        ("/perseus.profiler.v1.Profiler/ExportProfile", profiler_pb2.ExportProfileRequest(job_id=FIXTURE_JOB, format=profiler_pb2.PROFILE_FORMAT_RANK)),
    ]:
        try:
            out.append(_unary(channel, path)(req.SerializeToString(), timeout=10))
        except grpc.RpcError as err:
            out.append(str(err.code()).encode())
    return tuple(out)


def _send(channel: grpc.Channel, method: d.MethodDescriptor, payload: bytes, tally: Tally, what: str) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    key = f"{method.containing_service.full_name}/{method.name}"
    t0 = time.monotonic()
    code = grpc.StatusCode.OK
    violations: list[tuple[str, str]] = []
    try:
        if not method.client_streaming and not method.server_streaming:
            _unary(channel, path)(payload, timeout=10)
        elif not method.client_streaming:
            for _ in channel.unary_stream(path, request_serializer=None, response_deserializer=None)(payload, timeout=3):
                pass
        elif not method.server_streaming:
            channel.stream_unary(path, request_serializer=None, response_deserializer=None)(iter([payload]), timeout=10)
        else:
            out_type = method.output_type._concrete_class
            for raw in channel.stream_stream(path, request_serializer=None, response_deserializer=None)(iter([payload]), timeout=3 if key in LONG_POLL else 10):
                # An in-stream error (BatchAck.error, SessionResponse.error.error) counts as the answer.
                err_msg = _stream_error(out_type.FromString(raw))
                if err_msg is not None:
                    code = _CODES.get(err_msg.code, grpc.StatusCode.UNKNOWN)
                    violations = [(v.field, v.description) for v in err_msg.violations]
    except grpc.RpcError as err:
        code = err.code()
        violations = field_violations(err)
    elapsed = time.monotonic() - t0
    tally.requests += 1
    tally.methods.add(key)
    tally.codes[code.name] = tally.codes.get(code.name, 0) + 1
    tally.slowest_s = max(tally.slowest_s, elapsed)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and key in LONG_POLL:
        return code
    if code not in ALLOWED:
        tally.failures.append(f"{key} {what}: {code.name}")
    elif code == grpc.StatusCode.INVALID_ARGUMENT and not violations:
        tally.failures.append(f"{key} {what}: INVALID_ARGUMENT without a field violation")
    if elapsed > MAX_REQUEST_S:
        tally.failures.append(f"{key} {what}: answered after {elapsed:.1f} s")
    return code


_CODES = {c.value[0]: c for c in grpc.StatusCode}


def _stream_error(resp: Message) -> Any:
    """The perseus.common.v1.StreamError inside a stream response, if it carries one."""
    m: Any = resp
    for _ in range(2):
        if "error" not in m.DESCRIPTOR.fields_by_name or not m.HasField("error"):
            return None
        m = m.error
        if m.DESCRIPTOR.full_name == "perseus.common.v1.StreamError":
            return m
    return None


def _fixture_job(channel: grpc.Channel) -> None:
    """A profiler job with data, so that a state change to it would show in the snapshot."""
    reg = profiler_pb2.RegisterJobRequest(
        job_id=FIXTURE_JOB,
        pipeline=common_pb2.PipelineSpec(schedule=common_pb2.SCHEDULE_KIND_1F1B, num_stages=2, num_microbatches=2),
        dp_degree=1,
        tp_degree=1,
        supported_frequencies_mhz=[1410, 1395],
    )
    _unary(channel, "/perseus.profiler.v1.Profiler/RegisterJob")(reg.SerializeToString(), timeout=10)
    batch = profiler_pb2.MeasurementBatch(batch_id="fixture-1", job_id=FIXTURE_JOB)
    for stage in range(2):
        for mb in range(2):
            for it in range(3):
                batch.measurements.append(
                    profiler_pb2.InstructionMeasurement(
                        rank=common_pb2.RankIdentity(rank=stage, dp_rank=0, pp_rank=stage, tp_rank=0),
                        instruction=common_pb2.INSTRUCTION_KIND_FORWARD,
                        microbatch=mb,
                        frequency_mhz=1410,
                        time_s=0.05,
                        energy_j=20.0,
                        iteration=it,
                    )
                )
    acks = list(channel.stream_stream("/perseus.profiler.v1.Profiler/ReportMeasurements", request_serializer=None, response_deserializer=profiler_pb2.BatchAck.FromString)(iter([batch.SerializeToString()]), timeout=30))
    assert [a.stored_count for a in acks] == [12]


def test_every_rpc_survives_hostile_input(server: tuple[grpc.Channel, Any]) -> None:
    channel, proc = server
    rng = random.Random(SEED)
    tally = Tally()
    _fixture_job(channel)
    t_start = time.monotonic()
    all_methods = [m for module, name in SERVICES for m in module.DESCRIPTOR.services_by_name[name].methods]
    for method in all_methods:
        key = f"{method.containing_service.full_name}/{method.name}"
        before = _state(channel)
        codes: list[grpc.StatusCode] = []
        # Random bytes (seeded), from empty to 8 KiB.
        for n in [0, 1, 2, 7, 64, 512, 4096, *(rng.randrange(1, 8192) for _ in range(13))]:
            codes.append(_send(channel, method, rng.randbytes(n), tally, f"random {n} bytes"))
        # A plausible request, then one hostile field at a time.
        base = method.input_type._concrete_class()
        fill(base, rng)
        if method.name not in ("RegisterJob", "RegisterRank", "ImportProfile", "DeleteJob"):
            codes.append(_send(channel, method, base.SerializeToString(), tally, "plausible"))
        single = list(mutations(base))
        for what, msg in single:
            code = _send(channel, method, msg.SerializeToString(), tally, what)
            codes.append(code)
            # A non-finite number is never a meaningful value: it must be refused, naming the field.
            if what.endswith(("=nan", "=inf", "=-inf")) and code == grpc.StatusCode.OK:
                tally.failures.append(f"{key} {what}: accepted")
        # Mixes: several hostile fields at once (seeded), so later checks see earlier bad values.
        for i in range(10):
            mix = type(base)()
            mix.CopyFrom(base)
            for _, msg in rng.sample(single, min(4, len(single))):
                mix.MergeFrom(msg)
            codes.append(_send(channel, method, mix.SerializeToString(), tally, f"mix {i}"))
        assert proc.poll() is None, f"the server exited during {key}"
        if all(c != grpc.StatusCode.OK for c in codes) and method.name != "OpenSession":
            tally.state_checks += 1
            after = _state(channel)
            if after != before:
                tally.failures.append(f"{key}: state changed although every request was rejected")
    elapsed = time.monotonic() - t_start
    print(
        f"\nhostile suite (seed {SEED}): {tally.requests} requests, {len(tally.methods)}/{len(all_methods)} RPCs, "
        f"{tally.state_checks} no-state-change checks, slowest answer {tally.slowest_s:.2f} s, {elapsed:.1f} s in all; codes {dict(sorted(tally.codes.items()))}"
    )
    assert len(tally.methods) == len(all_methods)
    assert tally.failures == [], "\n".join(tally.failures[:50])


def test_a_huge_bad_list_gets_a_small_error_naming_the_fields(server: tuple[grpc.Channel, Any]) -> None:
    """One violation per bad entry once made 68 KB–12.8 MB trailers (clients saw RESOURCE_EXHAUSTED)."""
    channel, _ = server
    bad = profiler_pb2.IterationRecord(rank=common_pb2.RankIdentity(), iteration=1, time_s=math.nan, energy_j=-1.0)
    req = profiler_pb2.ReportIterationsRequest(job_id=FIXTURE_JOB, iterations=[bad] * 10_000)
    with pytest.raises(grpc.RpcError) as info:
        _unary(channel, "/perseus.profiler.v1.Profiler/ReportIterations")(req.SerializeToString(), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(info.value)
    assert len(violations) == 21
    assert violations[0] == ("iterations[0].time_s", "must be a finite number, got NaN")
    assert violations[-1] == ("iterations[10].time_s", "and 19980 more violations")


def test_an_import_cannot_imply_a_huge_job(server: tuple[grpc.Channel, Any]) -> None:
    """ImportProfile accepted stage 999,999,999; GetCoverage on that job then grew to 2.5 GB."""
    channel, _ = server
    req = profiler_pb2.ImportProfileRequest(job_id="hostile-huge", format=profiler_pb2.PROFILE_FORMAT_STAGE, csv="stage,instruction,frequency,time,energy\n999999999,forward,1410,0.1,1\n")
    with pytest.raises(grpc.RpcError) as info:
        _unary(channel, "/perseus.profiler.v1.Profiler/ImportProfile")(req.SerializeToString(), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value) == [("csv", "line 2: stage must be < 256, got 999999999")]
    with pytest.raises(grpc.RpcError) as missing:
        _unary(channel, "/perseus.profiler.v1.Profiler/GetCoverage")(profiler_pb2.GetCoverageRequest(job_id="hostile-huge").SerializeToString(), timeout=30)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
