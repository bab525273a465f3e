"""The internal protocol between front ends and workers, over a real loopback socket."""

from __future__ import annotations

import asyncio

import pytest

from firebox.control.resolve import FunctionVersion
from firebox.workers import wire
from firebox.workers.environment import Outcome
from firebox.workers.remote import RemoteWorker
from firebox.workers.stream import ResponseStream
from firebox.workers.wire_server import WireServer
from firebox.workers.worker import InvokeReply, InvokeRequest, WorkerLost, WorkerUnavailable

KEY = wire.fleet_key("secret")


def fv(name: str = "fn", revision: str = "r1") -> FunctionVersion:
    config = {
        "FunctionArn": f"arn:aws:lambda:us-east-1:000000000000:function:{name}",
        "Timeout": 3,
        "MemorySize": 128,
        "Runtime": "python3.11",
        "Handler": "a.b",
    }
    return FunctionVersion(name, "$LATEST", revision, config)


class FakeWorker:
    """Echoes payloads; records what it was given; can stream, stall or refuse."""

    def __init__(self) -> None:
        self.seen: list[InvokeRequest] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.refuse = False

    @property
    def name(self) -> str:
        return "w1"

    async def invoke(self, request: InvokeRequest) -> InvokeReply:
        self.seen.append(request)
        if self.refuse:
            raise WorkerUnavailable("draining")
        if request.payload == b"stall":
            self.started.set()
            await self.release.wait()
        if request.stream is not None and request.payload == b"stream":
            request.stream.begin("text/plain", "7")
            for part in (b"a", b"b", b"c"):
                request.stream.push(part)
            request.stream.close()
            body = b""
        else:
            body = request.payload[::-1]
        outcome = Outcome(request.request_id, "ok", body, duration_ms=1.5, max_memory_mb=20)
        return InvokeReply(
            outcome, cold=len(self.seen) == 1, log_tail="dGFpbA==", worker=self.name, idle=3
        )


@pytest.fixture
async def served():
    worker = FakeWorker()
    server = WireServer(KEY, worker)
    address = await server.start("127.0.0.1")
    remote = RemoteWorker("w1", address, KEY, "front-1")
    yield worker, server, remote
    remote.close()
    await server.close()


def request(payload: bytes, version: FunctionVersion | None = None, **kw) -> InvokeRequest:
    return InvokeRequest(
        fv=version or fv(),
        request_id="rid-" + payload.decode(errors="x"),
        payload=payload,
        invoked_arn="arn",
        **kw,
    )


async def test_an_invocation_crosses_and_its_reply_comes_back(served):
    worker, _, remote = served
    reply = await remote.invoke(request(b"hello", want_log=True, client_context="cc"))
    assert reply.outcome.body == b"olleh"
    assert reply.outcome.status == "ok" and reply.outcome.duration_ms == 1.5
    assert reply.cold and reply.log_tail == "dGFpbA==" and reply.worker == "w1" and reply.idle == 3
    got = worker.seen[0]
    assert got.want_log and got.client_context == "cc" and got.fv.config["MemorySize"] == 128


async def test_many_invocations_share_one_connection_and_a_config_crosses_once(served):
    worker, server, remote = served
    replies = await asyncio.gather(*(remote.invoke(request(str(i).encode())) for i in range(50)))
    assert [r.outcome.body for r in replies] == [str(i).encode()[::-1] for i in range(50)]
    assert len(server.connections) == 1
    # Later requests name the version by key only: the worker kept its configuration.
    assert all(r.fv.config["Handler"] == "a.b" for r in worker.seen)
    newer = fv(revision="r2")
    await remote.invoke(request(b"x", newer))
    assert worker.seen[-1].fv.revision == "r2"


async def test_a_streamed_response_arrives_in_pieces(served):
    _, _, remote = served
    stream = ResponseStream()
    task = asyncio.ensure_future(remote.invoke(request(b"stream", stream=stream)))
    assert await stream.wait_started(task)
    assert stream.content_type == "text/plain" and stream.version == "7"
    assert b"".join([c async for c in stream]) == b"abc"
    assert (await task).outcome.status == "ok"


async def test_a_refusing_worker_is_unavailable_not_lost(served):
    worker, _, remote = served
    worker.refuse = True
    with pytest.raises(WorkerUnavailable):
        await remote.invoke(request(b"x"))


async def test_a_worker_that_goes_away_mid_invoke_fails_it_with_worker_lost(served):
    worker, server, remote = served
    task = asyncio.ensure_future(remote.invoke(request(b"stall")))
    await worker.started.wait()
    for conn in list(server.connections):
        conn.transport.abort()
    with pytest.raises(WorkerLost):
        await task
    worker.release.set()
    # The next invocation reconnects.
    assert (await remote.invoke(request(b"ok"))).outcome.body == b"ko"


async def test_a_client_without_the_fleet_key_is_refused(served):
    _, server, _ = served
    stranger = RemoteWorker("w1", server.address, wire.fleet_key("other"), "intruder")
    with pytest.raises(WorkerUnavailable):
        await stranger.invoke(request(b"x"))
    stranger.close()


async def test_an_unreachable_worker_is_unavailable():
    remote = RemoteWorker("gone", "127.0.0.1:1", KEY, "front-1")
    with pytest.raises(WorkerUnavailable):
        await remote.invoke(request(b"x"))


def test_frames_split_anywhere_reassemble():
    frames = [wire.encode(wire.INVOKE, i, {"i": i}, bytes(range(i % 256)) * 3) for i in range(40)]
    data = b"".join(frames)
    got = []
    reader = wire.FrameReader(lambda k, c, h, b: got.append((k, c, h, b)))
    for i in range(0, len(data), 7):
        reader.feed(data[i : i + 7])
    assert [(c, h["i"], len(b)) for _, c, h, b in got] == [(i, i, 3 * (i % 256)) for i in range(40)]


def test_an_oversized_frame_is_a_protocol_error():
    reader = wire.FrameReader(lambda *a: None)
    with pytest.raises(wire.ProtocolError):
        reader.feed(wire.HEAD.pack(wire.MAX_FRAME_BYTES + 1, wire.INVOKE, 1, 0))
