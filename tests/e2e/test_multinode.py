"""Scale-out end to end: two booboo nodes on one PostgreSQL database behind
nginx (docs/nginx-booboo.conf, as shipped). Events of a few fingerprints go
through nginx from several threads; one node is killed midway; every
acknowledged event must be stored exactly once and every count be exact."""

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, Server, create_project, free_port, http, psql
from payloads import event, frame

FINGERPRINTS = ["checkout", "login", "search"]


class Nginx:
    """Debian's nginx running docs/nginx-booboo.conf with real addresses."""

    def __init__(self, workdir: Path, upstream_ports: list[int]):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise RuntimeError("nginx is not installed: scripts/test installs Debian's nginx when it can (apt-get install nginx)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        example = (ROOT / "docs" / "nginx-booboo.conf").read_text()
        site = example.replace("127.0.0.1:8000", f"127.0.0.1:{self.port}")
        site = site.replace("127.0.0.1:8001", f"127.0.0.1:{upstream_ports[0]}").replace("127.0.0.1:8002", f"127.0.0.1:{upstream_ports[1]}")
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "booboo.conf").write_text(site)
        (workdir / "nginx.conf").write_text(
            f"""
            worker_processes 1;
            pid {workdir}/nginx.pid;
            error_log {workdir}/error.log warn;
            events {{ worker_connections 512; }}
            http {{
                access_log off;
                client_body_temp_path {workdir}/body;
                proxy_temp_path {workdir}/proxy;
                fastcgi_temp_path {workdir}/fastcgi;
                uwsgi_temp_path {workdir}/uwsgi;
                scgi_temp_path {workdir}/scgi;
                include {workdir}/booboo.conf;
            }}
            """
        )
        self.process = subprocess.Popen([binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if http("GET", self.url + "/healthz", timeout=2).status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not come up:\n{(workdir / 'error.log').read_text(errors='replace')}")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def two_nodes(tmp_path, pg_database_url):
    env = {"BOOBOO_DATABASE_URL": pg_database_url}
    a = Server(tmp_path / "node-a", extra_env=env).start()
    b = Server(tmp_path / "node-b", extra_env=env).start()
    lb = Nginx(tmp_path / "nginx", [a.port, b.port])
    yield a, b, lb
    lb.stop()
    for node in (a, b):
        node.kill()


def test_two_nodes_behind_nginx_store_every_acknowledged_event_exactly_once(two_nodes):
    a, b, lb = two_nodes
    project = create_project(a)
    acked = {}  # event_id -> (fingerprint, user)
    lock = threading.Lock()
    sent = collections.Counter()
    per_thread = 400

    def send(seed):
        rng = random.Random(seed)
        for n in range(per_thread):
            which = rng.choice(FINGERPRINTS)
            user = f"user{rng.randrange(25)}"
            event_id = uuid.uuid4().hex
            body = event(event_id=event_id, frames=[frame(function=which, line=f"{which}()")], context={"user": {"id": user}})
            for attempt in range(20):
                try:
                    r = http("POST", lb.url + "/", json.dumps(body).encode(), {"X-Booboo-DSN": project.ingest_token, "Content-Type": "application/json"}, timeout=10)
                except OSError:
                    time.sleep(0.05)
                    continue
                if r.status == 200:
                    assert r.json()["id"] == event_id
                    with lock:
                        acked[event_id] = (which, user)
                    break
                assert r.status in (502, 503, 504), (r.status, r.body[:200])
                time.sleep(0.05 * (attempt + 1))
            with lock:
                sent[which] += 1

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    while len(acked) < 800:
        time.sleep(0.02)
    b.process.send_signal(signal.SIGKILL)  # node B dies mid-way, requests in flight
    for t in threads:
        t.join()
    assert len(acked) >= 6 * per_thread * 0.95, f"only {len(acked)} of {6 * per_thread} acknowledged"

    # Read everything back through the surviving node.
    issues = {i["culprit"].split(" ")[0]: i for i in project.issues()}
    assert sorted(issues) == sorted(FINGERPRINTS), issues.keys()
    stored_ids = set()
    for name, issue in issues.items():
        ids, users, cursor = [], set(), ""
        while True:
            page = project.api(f"/issues/{issue['id']}/events?limit=500&cursor={cursor}")
            ids += [e["id"] for e in page["items"]]
            users |= {e["user"]["id"] for e in page["items"]}
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(ids) == len(set(ids)), f"{name}: an event was stored twice"
        assert issue["count"] == len(ids), f"{name}: count {issue['count']} but {len(ids)} events stored"
        assert issue["users"] == len(users), f"{name}: users {issue['users']} but {len(users)} distinct among its events"
        assert all(acked[e][0] == name for e in ids if e in acked), f"{name}: holds another fingerprint's event"
        stored_ids |= set(ids)
    missing = set(acked) - stored_ids
    assert not missing, f"{len(missing)} acknowledged events are missing"
    total_rows = int(psql(f"SELECT count(*) FROM {_schema(a)}.events WHERE project_id = (SELECT id FROM {_schema(a)}.projects WHERE slug = '{project.slug}')"))
    assert total_rows == len(stored_ids)


def _schema(server):
    url = server.env["BOOBOO_DATABASE_URL"]
    return url.split("search_path%3D", 1)[1].split("&", 1)[0]


def test_a_node_survives_losing_its_database_connections(tmp_path, pg_database_url):
    node = Server(tmp_path / "node", extra_env={"BOOBOO_DATABASE_URL": pg_database_url}).start()
    try:
        project = create_project(node)
        assert node.post_event(project.ingest_token, event()).status == 200
        schema = _schema(node)
        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{schema}'")
        statuses = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = node.post_event(project.ingest_token, event())
            statuses.append(r.status)
            if r.status == 200:
                break
            assert r.status == 503 and r.headers.get("retry-after"), (r.status, r.body)
            time.sleep(0.2)
        assert statuses[-1] == 200, statuses
        assert node.process.poll() is None, "the node crashed"
        assert project.wait_for_issues(1)[0]["count"] == 2
    finally:
        node.kill()


class Browser:
    """A cookie-keeping HTTP client: one person's browser session."""

    def __init__(self):
        import http.cookiejar
        import urllib.request

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, url):
        import urllib.error

        try:
            with self.opener.open(url, timeout=15) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, url, fields):
        import urllib.error
        import urllib.parse

        data = urllib.parse.urlencode(fields).encode()
        try:
            with self.opener.open(url, data=data, timeout=15) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


def csrf_of(page):
    import re

    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_sessions_setup_link_and_revoked_keys_work_across_nodes(two_nodes):
    import re

    a, b, _ = two_nodes
    # The setup link node A printed works on node B: it lives in the database.
    token = re.search(r"/setup/([A-Za-z0-9_-]+)", a.log()).group(1)
    person = Browser()
    status, page = person.get(f"{b.url}/setup/{token}")
    assert status == 200, page
    status, page = person.post(
        f"{b.url}/setup/{token}",
        {"csrf": csrf_of(page), "email": "admin@example.com", "password": "correct horse battery", "password_repeat": "correct horse battery"},
    )
    assert status == 200 and "admin@example.com" in page, page[:500]

    project = create_project(a)
    assert a.post_event(project.ingest_token, event()).status == 200
    # The session begun on node B is honoured by node A.
    status, page = person.get(f"{a.url}/projects/{project.org}/{project.slug}")
    assert status == 200 and "ZeroDivisionError" in page, page[:500]

    # Signing in through node A gives a session node B knows.
    other = Browser()
    status, page = other.get(f"{a.url}/signin")
    status, page = other.post(f"{a.url}/signin", {"csrf": csrf_of(page), "email": "admin@example.com", "password": "correct horse battery", "next": ""})
    assert status == 200, page[:500]
    status, page = other.get(f"{b.url}/projects/{project.org}/{project.slug}")
    assert status == 200 and "ZeroDivisionError" in page, page[:500]

    # A key revoked through node A is refused by node B at once.
    status, setup_page = other.get(f"{a.url}/projects/{project.org}/{project.slug}/setup")
    assert status == 200
    key_id = re.search(rf'/projects/{project.org}/{project.slug}/keys/(\d+)/revoke', setup_page).group(1)
    status, _ = other.post(f"{a.url}/projects/{project.org}/{project.slug}/keys/{key_id}/revoke", {"csrf": csrf_of(setup_page)})
    assert status == 200
    refused = b.post_event(project.ingest_token, event())
    assert refused.status == 401, refused.body
