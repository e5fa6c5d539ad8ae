"""Pantheon agents in Python: the agent protocol v1 (schemas/agent-protocol.md).

    from pantheon_agent import Agent

    agent = Agent("shouter", key_file="agent.key", federation_key="<hex>")

    @agent.capability("shout")
    def shout(task):
        return str(task.input).upper() + "!"

    agent.serve(port=9000)

An agent checks every envelope's seal (the federation's key, the hash, the signature, that it
is sealed for this agent, that it has not expired) before running a handler, and signs its
result with its own key. `Client` submits tasks to a gateway and waits for them.
"""

import json
import os
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Optional

import blake3
import msgpack
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

__all__ = ["Agent", "Client", "ProtocolError", "Task", "generate_key", "sign_result", "verify_envelope"]

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
    """What a handler is given: the envelope's fields."""
    task_id: str
    attempt: int
    capability: str
    description: str
    input: Any
    context: Any


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

    def handle(self, body: Dict[str, Any]):
        """(HTTP status, JSON answer) for a request body `{"envelope": …}`."""
        try:
            envelope = verify_envelope(body.get("envelope"), self.federation_key, self.agent_id)
        except ProtocolError as error:
            return 403, {"error": str(error)}
        handler = self.handlers.get(envelope["capability"])
        if handler is None:
            return 422, {"error": f"this agent does not offer {envelope['capability']!r}"}
        task = Task(envelope["task_id"], envelope["attempt"], envelope["capability"], envelope["description"],
                    envelope["input"], envelope["context"])
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


class Client:
    """A gateway client: submit, execute and read tasks; register agents."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.token = token

    def _call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            answer = json.loads(error.read() or b"{}")
            if error.code == 422 and "status" in answer:  # a refused task: its answer
                return answer
            raise

    def submit(self, capability: str, description: str, input: Any = None, timeout_ms: Optional[int] = None) -> str:
        body = {"capability": capability, "description": description, "input": input}
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        return self._call("POST", "/tasks/submit", body)["task_id"]

    def execute(self, capability: str, description: str, input: Any = None,
                timeout_ms: Optional[int] = None) -> Dict[str, Any]:
        body = {"capability": capability, "description": description, "input": input}
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
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

    def register(self, agent_id: str, capabilities, public_key: str, url: str, max_concurrency: int = 4):
        return self._call("POST", "/agents", {"agent_id": agent_id, "capabilities": list(capabilities),
                                              "public_key": public_key,
                                              "transport": {"kind": "http", "url": url},
                                              "max_concurrency": max_concurrency})
