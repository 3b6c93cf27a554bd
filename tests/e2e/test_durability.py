"""Acknowledged means stored: killing the server, gently or not, loses no
event it has answered 2xx for."""

import signal
import threading
import time
import uuid

from conftest import Server, create_project
from payloads import event


def send_until_stopped(server, token, acked, stop):
    while not stop.is_set():
        event_id = uuid.uuid4().hex
        try:
            response = server.post_event(token, event(event_id=event_id))
        except OSError:
            time.sleep(0.01)
            continue
        if response.status == 200:
            acked.add(event_id)


def stored_event_ids(project, issue_id):
    ids, cursor = [], ""
    while True:
        page = project.api(f"/issues/{issue_id}/events?limit=500&cursor={cursor}")
        ids += [e["id"] for e in page["items"]]
        if not page["next_cursor"]:
            return ids
        cursor = page["next_cursor"]


def hammer_then_stop(server, project, how):
    acked, stop = set(), threading.Event()
    threads = [threading.Thread(target=send_until_stopped, args=(server, project.ingest_token, acked, stop)) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    how()
    stop.set()
    for t in threads:
        t.join()
    return acked


def check_all_there(data_dir, project, acked):
    restarted = Server(data_dir).start()
    try:
        project.server = restarted
        [issue] = project.wait_for_issues(1)
        ids = stored_event_ids(project, issue["id"])
        assert len(ids) == len(set(ids)), "an event was stored twice"
        missing = acked - set(ids)
        assert not missing, f"{len(missing)} acknowledged events are missing after the restart"
        assert issue["count"] == len(ids), "the issue's count disagrees with its stored events"
    finally:
        restarted.stop()


def test_every_acknowledged_event_survives_sigkill(fresh_server):
    server = fresh_server.start()
    project = create_project(server)
    acked = hammer_then_stop(server, project, lambda: server.process.send_signal(signal.SIGKILL))
    server.process.wait()
    assert len(acked) >= 300
    check_all_there(server.data_dir, project, acked)


def test_sigterm_finishes_what_was_accepted_and_exits_cleanly(fresh_server):
    server = fresh_server.start()
    project = create_project(server)
    acked = hammer_then_stop(server, project, lambda: server.process.send_signal(signal.SIGTERM))
    assert server.process.wait(timeout=30) == 0, server.log()[-2000:]
    check_all_there(server.data_dir, project, acked)
