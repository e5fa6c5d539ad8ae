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
stop.set()
