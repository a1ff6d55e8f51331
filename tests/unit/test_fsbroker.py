"""The embedded broker never shows a worker a half-written message (a CI worker once died
reading an empty message file: Kombu creates `<name>.msg` before writing it)."""
from __future__ import annotations

import os

from kombu import Connection

from sandbox.adapters import fsbroker


def _connection(folder):
    return Connection(transport=fsbroker.Transport, transport_options={
        "data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False,
        "control_folder": str(folder / "control")})


def test_no_message_file_is_visible_before_it_is_complete(tmp_path, monkeypatch):
    seen_while_writing = []
    real_dumps = fsbroker.dumps

    def dumps_and_look(payload):
        # What a polling worker would find in the folder at the moment the body is written.
        seen_while_writing.append(sorted(os.path.getsize(tmp_path / n) for n in os.listdir(tmp_path)
                                         if n.endswith(".msg")))
        return real_dumps(payload)

    monkeypatch.setattr(fsbroker, "dumps", dumps_and_look)
    with _connection(tmp_path) as conn:
        queue = conn.SimpleQueue("jobs")
        queue.put({"job": "a"})
        queue.put({"job": "b"})
        got = []
        for _ in range(2):
            message = queue.get(timeout=10)
            message.ack()
            got.append(message.payload)
        assert got == [{"job": "a"}, {"job": "b"}]
        queue.close()
    # The first message is complete while the second is written; no empty file ever shows.
    assert seen_while_writing[0] == [] and len(seen_while_writing[1]) == 1 and seen_while_writing[1][0] > 0


def test_the_app_uses_the_atomic_transport_for_the_filesystem_broker(tmp_path):
    from sandbox.adapters.queue import celery_app
    from sandbox.config import load
    app = celery_app(load({"SANDBOX_HOME": str(tmp_path)}))
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, fsbroker.Transport)


def test_messages_come_out_in_the_order_they_were_put(tmp_path):
    # Many puts land in one millisecond; the old millisecond-and-uuid names shuffled them.
    # A queue name of its own: Kombu remembers declared exchanges per process, and the binding
    # of "jobs" lives in the previous test's control folder.
    with _connection(tmp_path) as conn:
        queue = conn.SimpleQueue("order")
        for n in range(50):
            queue.put({"n": n})
        got = []
        for _ in range(50):
            message = queue.get(timeout=10)
            message.ack()  # unacknowledged messages would hold the prefetch window shut
            got.append(message.payload["n"])
        assert got == list(range(50))
        queue.close()
