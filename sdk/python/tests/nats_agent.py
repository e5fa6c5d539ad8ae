"""The SDK's NATS mode against a federation running on NATS (tests/python_sdk.rs starts it):
    python nats_agent.py BASE_URL OPERATOR_TOKEN PRODUCER_TOKEN FEDERATION_KEY WORKDIR NATS_URL
Prints one JSON line per check."""
import json
import os
import sys
import threading
import time

from pantheon_agent import Agent, Client, generate_key

base, operator, producer, federation, workdir, nats_url = sys.argv[1:7]

public = generate_key(os.path.join(workdir, "nats-shouter.key"))
agent = Agent("nats-shouter", federation_key=federation, key_file=os.path.join(workdir, "nats-shouter.key"))


@agent.capability("nats-shout")
def shout(task):
    task.progress(30, "on it")
    return str(task.input).upper() + "!"


stop = threading.Event()
threading.Thread(target=agent.serve_nats, args=(nats_url, "agents.nats-shouter"), kwargs={"stop": stop},
                 daemon=True).start()
time.sleep(1.0)  # subscribed
Client(base, operator).register("nats-shouter", ["nats-shout"], public, nats_subject="agents.nats-shouter")
client = Client(base, producer)
done = client.execute("nats-shout", "shout over nats", "hi", timeout_ms=20_000)
print(json.dumps({"check": "nats", "status": done["status"], "output": done.get("output"),
                  "agent": done.get("agent_id")}))
streamed = [event["type"] for event in client.stream(done["task_id"])]
print(json.dumps({"check": "nats progress", "streamed": streamed}))

# Pull over NATS: an agent with no subject of its own asks the federation for its work.
puller_public = generate_key(os.path.join(workdir, "nats-puller.key"))
puller = Agent("nats-puller", federation_key=federation, key_file=os.path.join(workdir, "nats-puller.key"))


@puller.capability("nats-pull-shout")
def pull_shout(task):
    task.progress(60, "pulled")
    if task.input == "fail":
        raise RuntimeError("asked to fail")
    return str(task.input).upper() + "?"


Client(base, operator).register("nats-puller", ["nats-pull-shout"], puller_public, pull=True)
threading.Thread(target=puller.pull_nats, args=(nats_url,), kwargs={"stop": stop, "wait_ms": 2_000},
                 daemon=True).start()
pulled = client.execute("nats-pull-shout", "shout, pulled over nats", "hey", timeout_ms=20_000)
print(json.dumps({"check": "nats pull", "status": pulled["status"], "output": pulled.get("output"),
                  "agent": pulled.get("agent_id"),
                  "streamed": [event["type"] for event in client.stream(pulled["task_id"])]}))
failed = client.execute("nats-pull-shout", "fail, pulled over nats", "fail", timeout_ms=20_000, max_attempts=1)
print(json.dumps({"check": "nats pull failure", "status": failed["status"], "view": failed}))
stop.set()
