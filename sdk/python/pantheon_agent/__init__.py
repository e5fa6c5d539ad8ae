"""Pantheon agents in Python: the agent protocol v1 (schemas/agent-protocol.md).

    from pantheon_agent import Agent

    agent = Agent("shouter", key_file="agent.key", federation_key="<hex>")

    @agent.capability("shout")
    def shout(task):
        return str(task.input).upper() + "!"

    agent.serve(port=9000)                      # push: the federation POSTs to it
    agent.pull("http://gateway:8080", token)    # pull: it polls the gateway (no address needed)
    agent.serve_nats("nats://nats:4222", "agents.shouter")   # NATS (needs nats-py)

An agent checks every envelope's seal (the federation's key, the hash, the signature, that it
is sealed for this agent, that it has not expired) before running a handler, and signs its
result with its own key. A handler may report progress with `task.progress(percent, message)`
(pull and NATS modes). `Client` submits tasks to a gateway, waits for them and follows their
events (`stream`); `AsyncClient` does the same from asyncio.
"""

import asyncio
import http.client
import io
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, Optional

import blake3
import msgpack
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

__all__ = ["Agent", "AsyncClient", "Client", "ProtocolError", "Task", "generate_key", "sign_result",
           "verify_envelope"]

ENVELOPE_LABEL = b"pantheon envelope v1\n"
RESULT_LABEL = b"pantheon result v1\n"
ENVELOPE_FIELDS = ["task_id", "attempt", "agent_id", "capability", "description", "input", "context",
                   "issued_at_ms", "expires_at_ms"]
RESULT_FIELDS = ["task_id", "attempt", "agent_id", "envelope_hash", "output", "completed_at_ms"]
JSON_FIELDS = ("input", "context", "output")


class ProtocolError(Exception):
    """An envelope that does not verify, or a message that is not the protocol's."""


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def digest(fields, content: Dict[str, Any]) -> bytes:
    """blake3 of the canonical MessagePack of `content`: its fields in the protocol's order,
    JSON values with their object keys sorted."""
    ordered = {f: _canonical(content[f]) if f in JSON_FIELDS else content[f] for f in fields}
    return blake3.blake3(msgpack.packb(ordered)).digest()


def _now_ms() -> int:
    return int(time.time() * 1000)


def verify_envelope(sealed: Dict[str, Any], federation_key: str, agent_id: Optional[str] = None,
                    now_ms: Optional[int] = None) -> Dict[str, Any]:
    """The envelope of `sealed` when the federation sealed it (for `agent_id`, still valid at
    `now_ms`); ProtocolError saying why otherwise."""
    try:
        envelope = sealed["envelope"]
        if sealed["sealed_by"] != federation_key:
            raise ProtocolError("sealed by another key than the federation's")
        hash_ = digest(ENVELOPE_FIELDS, envelope)
        if hash_.hex() != sealed["hash"]:
            raise ProtocolError("the envelope's hash does not match its content")
        VerifyKey(bytes.fromhex(federation_key)).verify(ENVELOPE_LABEL + hash_, bytes.fromhex(sealed["signature"]))
    except BadSignatureError:
        raise ProtocolError("the federation's signature does not verify") from None
    except (KeyError, TypeError, ValueError) as error:
        raise ProtocolError(f"not a sealed envelope: {error}") from None
    if agent_id is not None and envelope["agent_id"] != agent_id:
        raise ProtocolError(f"sealed for agent {envelope['agent_id']}, not {agent_id}")
    if (now_ms if now_ms is not None else _now_ms()) >= envelope["expires_at_ms"]:
        raise ProtocolError("the envelope has expired")
    return envelope


def sign_result(sealed: Dict[str, Any], output: Any, key: SigningKey) -> Dict[str, Any]:
    """The signed result answering `sealed` with `output`."""
    envelope = sealed["envelope"]
    result = {"task_id": envelope["task_id"], "attempt": envelope["attempt"], "agent_id": envelope["agent_id"],
              "envelope_hash": sealed["hash"], "output": output, "completed_at_ms": _now_ms()}
    hash_ = digest(RESULT_FIELDS, result)
    return {"result": result, "hash": hash_.hex(), "signature": key.sign(RESULT_LABEL + hash_).signature.hex()}


def generate_key(path: str) -> str:
    """Writes a new key's seed (hex) to `path` (0600, never overwritten); its public key."""
    key = SigningKey.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(bytes(key).hex())
    return key.verify_key.encode().hex()


@dataclass
class Task:
    """What a handler is given: the envelope's fields, and `progress` to report how it goes."""
    task_id: str
    attempt: int
    capability: str
    description: str
    input: Any
    context: Any
    _report: Optional[Callable[[Optional[int], str], None]] = field(default=None, repr=False, compare=False)

    def progress(self, percent: Optional[int] = None, message: str = "") -> None:
        """Reports progress to the federation (pull and NATS modes; ignored when served over
        plain HTTP, which answers once)."""
        if self._report is not None:
            self._report(percent, message)


class Agent:
    """An agent served over HTTP: capabilities by decorator, envelopes checked, results signed."""

    def __init__(self, agent_id: str, federation_key: str, key_file: Optional[str] = None,
                 key: Optional[SigningKey] = None):
        self.agent_id = agent_id
        self.federation_key = federation_key
        if key is None:
            if key_file is None:
                raise ValueError("give key_file or key")
            with open(key_file) as file:
                key = SigningKey(bytes.fromhex(file.read().strip()))
        self.key = key
        self.handlers: Dict[str, Callable[[Task], Any]] = {}

    @property
    def public_key(self) -> str:
        return self.key.verify_key.encode().hex()

    def capability(self, name: str):
        """Registers the decorated function as the handler of `name`."""
        def register(handler: Callable[[Task], Any]):
            self.handlers[name] = handler
            return handler
        return register

    def handle(self, body: Dict[str, Any], report: Optional[Callable[[Optional[int], str], None]] = None):
        """(HTTP status, JSON answer) for a request body `{"envelope": …}`."""
        try:
            envelope = verify_envelope(body.get("envelope"), self.federation_key, self.agent_id)
        except ProtocolError as error:
            return 403, {"error": str(error)}
        handler = self.handlers.get(envelope["capability"])
        if handler is None:
            return 422, {"error": f"this agent does not offer {envelope['capability']!r}"}
        task = Task(envelope["task_id"], envelope["attempt"], envelope["capability"], envelope["description"],
                    envelope["input"], envelope["context"], report)
        try:
            output = handler(task)
        except Exception as error:  # the agent's failure, reported as such
            return 500, {"error": f"{type(error).__name__}: {error}"}
        return 200, sign_result(body["envelope"], output, self.key)

    def serve(self, port: int, host: str = "127.0.0.1"):
        """Serves until interrupted."""
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                except ValueError:
                    status, answer = 400, {"error": "the body is not JSON"}
                else:
                    status, answer = agent.handle(body if isinstance(body, dict) else {})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        ThreadingHTTPServer((host, port), Handler).serve_forever()

    def pull(self, base_url: str, token: str, wait_ms: int = 25_000, lease_ms: int = 30_000,
             heartbeat_s: float = 5.0, stop: Optional[threading.Event] = None) -> None:
        """Works as a pull worker until `stop` is set: long-polls the gateway for the attempts
        offered to this agent (registered with transport `pull`; `token` is a token of role
        `agent` whose subject is this agent's id), checks each envelope, runs the handler,
        posts the signed result (or why it failed), and heartbeats every `heartbeat_s` so its
        lease holds and its health follows it."""
        stop = stop or threading.Event()
        gateway = _Http(base_url, token)
        me = urllib.parse.quote(self.agent_id, safe="")

        def beat():
            while not stop.wait(heartbeat_s):
                try:
                    gateway.call("POST", f"/agents/{me}/heartbeat")
                except (OSError, urllib.error.HTTPError):
                    pass  # the next beat, or the next poll, says it is alive

        threading.Thread(target=beat, daemon=True).start()
        while not stop.is_set():
            try:
                work = gateway.call("POST", f"/agents/{me}/work?wait_ms={wait_ms}&lease_ms={lease_ms}")
            except (OSError, urllib.error.HTTPError):
                stop.wait(1.0)  # the gateway restarting: poll again shortly
                continue
            if work is None:
                continue
            task = urllib.parse.quote(work["task_id"], safe="")

            def report(percent, message, task=task):
                body = {"message": message}
                if percent is not None:
                    body["percent"] = max(0, min(100, int(percent)))
                gateway.call("POST", f"/agents/{me}/work/{task}/progress", body)

            status, answer = self.handle({"envelope": work["envelope"]}, report)
            try:
                if status == 200:
                    gateway.call("POST", f"/agents/{me}/work/{task}/result", answer)
                else:
                    gateway.call("POST", f"/agents/{me}/work/{task}/fail", {"reason": answer.get("error", "")})
            except urllib.error.HTTPError as error:
                if error.code != 409:  # 409: the lease lapsed and the attempt moved on
                    raise

    def serve_nats(self, url: str, subject: str, queue: Optional[str] = None,
                   stop: Optional[threading.Event] = None) -> None:
        """Serves over NATS request/reply on `subject` (in queue group `queue`, so several
        workers share it) until `stop` is set: needs the `nats-py` package. Progress goes to
        the request's reply subject before the result."""
        asyncio.run(self._serve_nats(url, subject, queue or self.agent_id, stop or threading.Event()))

    async def _serve_nats(self, url: str, subject: str, queue: str, stop: threading.Event) -> None:
        import nats  # an optional dependency: `pip install nats-py`

        loop = asyncio.get_running_loop()
        connection = await nats.connect(url)

        async def on_request(message):
            try:
                body = json.loads(message.data)
            except ValueError:
                await message.respond(json.dumps({"error": "the body is not JSON"}).encode())
                return

            def report(percent, text):
                progress = {"message": text}
                if percent is not None:
                    progress["percent"] = int(percent)
                data = json.dumps({"progress": progress}).encode()
                asyncio.run_coroutine_threadsafe(connection.publish(message.reply, data), loop).result()

            status, answer = await asyncio.to_thread(self.handle, body if isinstance(body, dict) else {}, report)
            await message.respond(json.dumps(answer).encode())

        await connection.subscribe(subject, queue=queue, cb=on_request)
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await connection.drain()


    def pull_nats(self, url: str, wait_ms: int = 25_000, lease_ms: int = 30_000, heartbeat_s: float = 5.0,
                  stop: Optional[threading.Event] = None) -> None:
        """Works as a pull worker over NATS until `stop` is set: asks the federation's
        processes for the attempts offered to this agent (registered with transport `pull`) on
        `pantheon.work.<id>.poll`, connecting out only, checks each envelope, runs the handler,
        sends its progress and the signed result (or why it failed), and heartbeats every
        `heartbeat_s` so its lease holds. Needs the `nats-py` package. A refused poll raises
        `ProtocolError` with the federation's reason."""
        asyncio.run(self._pull_nats(url, wait_ms, lease_ms, heartbeat_s, stop or threading.Event()))

    async def _pull_nats(self, url: str, wait_ms: int, lease_ms: int, heartbeat_s: float,
                         stop: threading.Event) -> None:
        import nats  # an optional dependency: `pip install nats-py`
        from nats.errors import NoRespondersError, TimeoutError as NatsTimeout

        loop = asyncio.get_running_loop()
        connection = await nats.connect(url)
        base = f"pantheon.work.{self.agent_id}"

        async def call(subject: str, body: Any, timeout: float) -> Dict[str, Any]:
            reply = await connection.request(subject, json.dumps(body).encode(), timeout=timeout)
            return json.loads(reply.data)

        async def beat():
            while not stop.is_set():
                await connection.publish(f"{base}.heartbeat", b"")
                await asyncio.sleep(heartbeat_s)

        beats = asyncio.create_task(beat())
        try:
            while not stop.is_set():
                # `stop` is seen between polls: a worker stops within `wait_ms`.
                try:
                    answer = await call(f"{base}.poll", {"wait_ms": wait_ms, "lease_ms": lease_ms},
                                        wait_ms / 1000 + 5)
                except (NoRespondersError, NatsTimeout, asyncio.TimeoutError):
                    await asyncio.sleep(1.0)  # the federation starting or restarting
                    continue
                if "error" in answer:
                    raise ProtocolError(f"the federation refused the poll: {answer['error']}")
                work = answer.get("work")
                if not work:
                    continue
                task = work["task_id"]

                def report(percent, message, task=task):
                    body = {"message": message}
                    if percent is not None:
                        body["percent"] = max(0, min(100, int(percent)))
                    asyncio.run_coroutine_threadsafe(
                        call(f"{base}.progress.{task}", body, 5.0), loop).result()

                status, answer = await asyncio.to_thread(self.handle, {"envelope": work["envelope"]}, report)
                if status == 200:
                    await call(f"{base}.result.{task}", answer, 10.0)
                else:  # a `work_conflict` answer: the lease lapsed and the attempt moved on
                    await call(f"{base}.fail.{task}", {"reason": answer.get("error", "")[:4000]}, 10.0)
        finally:
            beats.cancel()
            await connection.drain()


class _Http:
    """JSON over HTTP with a bearer token."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._prefix = urllib.parse.urlsplit(self.base_url).path
        self._local = threading.local()

    def request(self, method: str, path: str, body: Any = None) -> urllib.request.Request:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        return request

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer, `None` for an empty one (204). Each thread keeps one connection
        open (HTTP/1.1 keep-alive): a worker's polls and results skip a TCP handshake each."""
        connection = getattr(self._local, "connection", None)
        for fresh in (connection is None, True):
            if fresh:
                parsed = urllib.parse.urlsplit(self.base_url)
                kind = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
                connection = kind(parsed.netloc, timeout=120)
                self._local.connection = connection
            data = None if body is None else json.dumps(body).encode()
            headers = {"Authorization": f"Bearer {self.token}"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            try:
                connection.request(method, self._prefix + path, body=data, headers=headers)
                response = connection.getresponse()
                answer = response.read()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                if fresh:
                    raise
                continue  # the server closed a kept connection: once more on a new one
            if response.status >= 400:
                raise urllib.error.HTTPError(self.base_url + path, response.status, response.reason,
                                             response.headers, io.BytesIO(answer))
            return json.loads(answer) if answer else None


class Client:
    """A gateway client: submit, execute, read, wait for and follow tasks; register agents."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = _Http(base_url, token)

    def _call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        try:
            return self._http.call(method, path, body) or {}
        except urllib.error.HTTPError as error:
            answer = json.loads(error.read() or b"{}")
            if error.code == 422 and "status" in answer:  # a refused task: its answer
                return answer
            raise

    def stream(self, task_id: str, from_version: int = 1) -> Iterator[Dict[str, Any]]:
        """The task's events as they happen (Server-Sent Events), from `from_version`; ends
        after its final event. Each is `{"type": …, "version": …, "data": <the event>}`."""
        path = f"/tasks/{urllib.parse.quote(task_id, safe='')}/stream?from_version={from_version}"
        request = self._http.request("GET", path)
        request.add_header("Accept", "text/event-stream")
        with urllib.request.urlopen(request, timeout=300) as response:
            kind, data = None, []
            for raw in response:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    event = json.loads("\n".join(data))
                    if kind != "error":
                        yield {"type": kind, "version": event.get("version"), "data": event}
                    kind, data = None, []

    @staticmethod
    def _task(capability: str, description: str, input: Any, timeout_ms: Optional[int],
              max_attempts: Optional[int]) -> Dict[str, Any]:
        body = {"capability": capability, "description": description, "input": input}
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        if max_attempts is not None:
            body["max_attempts"] = max_attempts
        return body

    def submit(self, capability: str, description: str, input: Any = None, timeout_ms: Optional[int] = None,
               max_attempts: Optional[int] = None) -> str:
        body = self._task(capability, description, input, timeout_ms, max_attempts)
        return self._call("POST", "/tasks/submit", body)["task_id"]

    def execute(self, capability: str, description: str, input: Any = None,
                timeout_ms: Optional[int] = None, max_attempts: Optional[int] = None) -> Dict[str, Any]:
        body = self._task(capability, description, input, timeout_ms, max_attempts)
        return self._call("POST", "/tasks/execute", body)

    def task(self, task_id: str) -> Dict[str, Any]:
        return self._call("GET", f"/tasks/{task_id}")

    def wait(self, task_id: str, timeout_s: float = 60.0, poll_s: float = 0.1) -> Dict[str, Any]:
        deadline = time.time() + timeout_s
        while True:
            task = self.task(task_id)
            if task.get("finished") or time.time() >= deadline:
                return task
            time.sleep(poll_s)

    def register(self, agent_id: str, capabilities, public_key: str, url: Optional[str] = None,
                 max_concurrency: int = 4, pull: bool = False, nats_subject: Optional[str] = None):
        """Registers an agent reached at `url` (HTTP), on `nats_subject`, or that pulls its work
        (`pull=True`)."""
        if pull:
            transport = {"kind": "pull"}
        elif nats_subject is not None:
            transport = {"kind": "nats", "subject": nats_subject}
        elif url is not None:
            transport = {"kind": "http", "url": url}
        else:
            raise ValueError("give url, nats_subject or pull=True")
        return self._call("POST", "/agents", {"agent_id": agent_id, "capabilities": list(capabilities),
                                              "public_key": public_key, "transport": transport,
                                              "max_concurrency": max_concurrency})


class AsyncClient:
    """`Client` for asyncio: the same calls, awaited (each runs in a worker thread)."""

    def __init__(self, base_url: str, token: str):
        self._client = Client(base_url, token)

    async def submit(self, capability: str, description: str, input: Any = None,
                     timeout_ms: Optional[int] = None) -> str:
        return await asyncio.to_thread(self._client.submit, capability, description, input, timeout_ms)

    async def execute(self, capability: str, description: str, input: Any = None,
                      timeout_ms: Optional[int] = None) -> Dict[str, Any]:
        return await asyncio.to_thread(self._client.execute, capability, description, input, timeout_ms)

    async def task(self, task_id: str) -> Dict[str, Any]:
        return await asyncio.to_thread(self._client.task, task_id)

    async def wait(self, task_id: str, timeout_s: float = 60.0) -> Dict[str, Any]:
        return await asyncio.to_thread(self._client.wait, task_id, timeout_s)

    async def stream(self, task_id: str, from_version: int = 1):
        """The task's events as they happen, as an async iterator."""
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        done = object()

        def pump():
            try:
                for event in self._client.stream(task_id, from_version):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, done)

        threading.Thread(target=pump, daemon=True).start()
        while True:
            event = await queue.get()
            if event is done:
                return
            yield event
