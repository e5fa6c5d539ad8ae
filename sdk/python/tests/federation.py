"""Runs the SDK against a running federation (tests/python_sdk.rs starts it):
    python federation.py BASE_URL OPERATOR_TOKEN PRODUCER_TOKEN FEDERATION_KEY WORKDIR PULLER_TOKEN
Prints one JSON line per check."""
import asyncio
import json
import os
import socket
import sys
import threading

from nacl.signing import SigningKey
from pantheon_agent import Agent, AsyncClient, Client, ProtocolError, generate_key, verify_envelope

base, operator, producer, federation, workdir, agent_token = sys.argv[1:7]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(agent):
    port = free_port()
    threading.Thread(target=agent.serve, args=(port,), daemon=True).start()
    return f"http://127.0.0.1:{port}/"


# An honest agent.
public = generate_key(os.path.join(workdir, "shouter.key"))
shouter = Agent("shouter", federation_key=federation, key_file=os.path.join(workdir, "shouter.key"))


@shouter.capability("shout")
def shout(task):
    return {"shouted": str(task.input).upper() + "!", "attempt": task.attempt}


admin = Client(base, operator)
admin.register("shouter", ["shout"], public, start(shouter))
client = Client(base, producer)
done = client.execute("shout", "shout it", "hello", timeout_ms=20_000)
print(json.dumps({"check": "honest", "status": done["status"], "output": done.get("output")}))

# A task submitted and followed.
task_id = client.submit("shout", "again", "hi", timeout_ms=20_000)
print(json.dumps({"check": "followed", "status": client.wait(task_id)["status"]}))

# The SDK refuses a forged envelope: re-sealed with another key, or its content changed.
captured = {}
original = shouter.handle


def capture(body):
    captured["envelope"] = body["envelope"]
    return original(body)


shouter.handle = capture
client.execute("shout", "capture", "x", timeout_ms=20_000)
sealed = dict(captured["envelope"])
tampered = dict(sealed, envelope=dict(sealed["envelope"], description="wire the money"))
status, _ = original({"envelope": tampered})
try:
    verify_envelope(tampered, federation, "shouter")
    refused = False
except ProtocolError:
    refused = True
forged_key = SigningKey.generate().verify_key.encode().hex()
status_foreign, _ = original({"envelope": dict(sealed, sealed_by=forged_key)})
print(json.dumps({"check": "forged envelope", "status": status, "refused": refused, "foreign_status": status_foreign}))

# A forged result is refused by the federation: registered with one key, signing with another.
forger_key = generate_key(os.path.join(workdir, "forger.key"))
forger = Agent("forger", federation_key=federation, key=SigningKey.generate())


@forger.capability("forge")
def forge(task):
    return "trust me"


admin.register("forger", ["forge"], forger_key, start(forger))
forged = client.execute("forge", "forge it", "x", timeout_ms=3_000)
print(json.dumps({"check": "forged result", "status": forged["status"], "reason": forged.get("end_reason")}))

# A pull worker: no address, it polls the gateway; its handler reports progress.
puller_public = generate_key(os.path.join(workdir, "puller.key"))
puller = Agent("puller", federation_key=federation, key_file=os.path.join(workdir, "puller.key"))


@puller.capability("pull-shout")
def pull_shout(task):
    task.progress(50, "halfway")
    return str(task.input).upper()


admin.register("puller", ["pull-shout"], puller_public, pull=True)
stop = threading.Event()
threading.Thread(target=puller.pull, args=(base, agent_token), kwargs={"wait_ms": 2_000}, daemon=True).start()
pulled_id = client.submit("pull-shout", "pull it", "pulled", timeout_ms=20_000)
# Followed as a stream of events, to its end.
streamed = [event["type"] for event in client.stream(pulled_id)]
pulled = client.task(pulled_id)
print(json.dumps({"check": "pulled", "status": pulled["status"], "output": pulled.get("output"),
                  "agent": pulled.get("agent_id"), "streamed": streamed}))


# The same from asyncio.
async def from_asyncio():
    async_client = AsyncClient(base, producer)
    task_id = await async_client.submit("shout", "async", "hey", timeout_ms=20_000)
    types = [event["type"] async for event in async_client.stream(task_id)]
    return (await async_client.wait(task_id))["status"], types


status, types = asyncio.run(from_asyncio())
print(json.dumps({"check": "async", "status": status, "streamed": types}))
stop.set()
