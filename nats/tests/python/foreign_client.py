"""A producer and consumer that is not Pantheon: plain nats-py and msgpack, following only
schemas/asyncapi.yaml.

    foreign_client.py publish <nats url> <task uuid>   submits a task (task_submitted, version 1)
    foreign_client.py read <nats url> <task uuid>      prints the task's events as JSON lines
"""

import asyncio
import json
import sys
import time
import uuid

import msgpack
import nats
from nats.js.errors import APIError


async def publish(url, task_id):
    nc = await nats.connect(url)
    js = nc.jetstream()
    subject = f"pantheon.task.{task_id}"
    event_id = str(uuid.uuid4())
    payload = msgpack.packb({
        "task_id": str(uuid.UUID(task_id)),  # UUIDs are hyphenated text, as in JSON
        "spec": {"capability": "echo", "description": "say hello", "input": {"text": "hello"},
                 "submitter": "py-producer"},
        "channel": "nats",
        "signed_by": "00" * 32,
        "signature": "00" * 64,
    })
    headers = {
        "Nats-Msg-Id": event_id,
        "Nats-Expected-Last-Subject-Sequence": "0",
        "Pantheon-Version": "1",
        "Pantheon-Event-Type": "task_submitted",
        "Pantheon-Schema-Version": "1",
        "Pantheon-Occurred-At-Ms": str(int(time.time() * 1000)),
        "Pantheon-Emitter": "producer:py",
    }
    ack = await js.publish(subject, payload, headers=headers)
    assert not ack.duplicate
    # The same event again: acknowledged as a duplicate, nothing written.
    again = await js.publish(subject, payload, headers=headers)
    assert again.duplicate and again.seq == ack.seq, again
    # Another event claiming the new stream: refused, someone got there first.
    rival = dict(headers, **{"Nats-Msg-Id": str(uuid.uuid4())})
    try:
        await js.publish(subject, payload, headers=rival)
        raise SystemExit("a second version 1 was accepted")
    except APIError as error:
        assert error.err_code == 10071, error
    print(json.dumps({"published": event_id, "sequence": ack.seq}))
    await nc.close()


async def read(url, task_id):
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.subscribe(f"pantheon.task.{task_id}", ordered_consumer=True)
    while True:
        msg = await sub.next_msg(timeout=5)
        body = msgpack.unpackb(msg.data, raw=False)
        print(json.dumps({
            "event_id": msg.headers["Nats-Msg-Id"],
            "event_type": msg.headers["Pantheon-Event-Type"],
            "version": int(msg.headers["Pantheon-Version"]),
            "position": msg.metadata.sequence.stream,
            "body": body,
        }, default=lambda value: value.hex() if isinstance(value, bytes) else str(value)))
        if msg.metadata.num_pending == 0:
            break
    await nc.close()


if __name__ == "__main__":
    mode, url, task = sys.argv[1:4]
    asyncio.run(publish(url, task) if mode == "publish" else read(url, task))
