"""The project setup page's snippets, copied from the page and run as they
are: the install line in a fresh virtualenv installs the SDK this server
serves (built into the binary from sdk/python), and each framework's lines,
with only a failing route added, make an event arrive."""

from __future__ import annotations

import html
import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import VENV_CACHE, Server, create_project, http as plain_http

PASSWORD = "correct horse battery"


def signed_in_page(server: Server, email: str, path: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(server.url + "/signin", timeout=30).read().decode()
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form).group(1)
    fields = urllib.parse.urlencode({"csrf": csrf, "email": email, "password": PASSWORD}).encode()
    opener.open(server.url + "/signin", fields, timeout=30).read()
    return opener.open(server.url + path, timeout=30).read().decode()


def snippet(page: str, name: str) -> str:
    found = re.search(rf'<pre class="code" id="snippet-{name}">(.*?)</pre>', page, re.S)
    assert found, f"no {name} snippet on the setup page"
    return html.unescape(found.group(1))


def fresh_venv(name: str, requirements: list[str]) -> Path:
    """A virtualenv with the framework only; the SDK is installed by the
    page's own install line, so a stale copy can never answer for it."""
    venv = VENV_CACHE / f"setup-{name}"
    marker = venv / ".installed"
    wanted = "\n".join(requirements)
    if not (marker.exists() and marker.read_text() == wanted):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        if requirements:
            subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *requirements], check=True)
        marker.write_text(wanted)
    subprocess.run([str(venv / "bin" / "pip"), "uninstall", "--quiet", "--yes", "booboo-sdk"], capture_output=True)
    return venv


def run_in(venv: Path, directory: Path, command: list[str] | str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOBOO_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    result = subprocess.run(command, cwd=directory, env=env, shell=isinstance(command, str), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0 or "Traceback" in result.stderr, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def setup_page(server):
    project = create_project(server)
    page = signed_in_page(server, project.email, f"/projects/{project.org}/{project.slug}/setup")
    return project, page


def test_the_install_line_downloads_the_sdk_this_server_ships(server, setup_page):
    _, page = setup_page
    install = snippet(page, "install")
    assert install.startswith(f"pip install {server.url}/sdk/python/booboo-sdk-"), install
    url = install.split()[-1]
    answer = plain_http("GET", url)
    assert answer.status == 200 and answer.body[:2] == b"\x1f\x8b", "a gzip file"
    wrong = plain_http("GET", server.url + "/sdk/python/booboo-sdk-0.0.1.tar.gz")
    assert wrong.status == 404 and b"offers booboo-sdk-" in wrong.body


FAILING_ROUTE = {
    "flask": """

@app.route("/boom")
def boom():
    raise ValueError("setup snippet flask")


print(app.test_client().get("/boom").status_code)
""",
    "fastapi": """

@app.get("/boom")
def boom():
    raise ValueError("setup snippet fastapi")


from fastapi.testclient import TestClient

print(TestClient(app, raise_server_exceptions=False).get("/boom").status_code)
""",
}


@pytest.mark.parametrize(
    "framework,requirements",
    [("python", []), ("django", ["django"]), ("flask", ["flask"]), ("fastapi", ["fastapi", "httpx"])],
)
def test_each_snippet_pasted_verbatim_reports_an_error(server, setup_page, tmp_path, framework, requirements):
    project, page = setup_page
    venv = fresh_venv(framework, requirements)
    run_in(venv, tmp_path, snippet(page, "install"))
    installed = run_in(venv, tmp_path, ["python", "-c", "import booboo; print(booboo.__version__, booboo.__file__)"])
    assert str(venv) in installed.stdout, "the SDK came from the install line, not from elsewhere"

    code = snippet(page, framework)
    if framework == "python":
        (tmp_path / "app.py").write_text(code + '\n\nraise RuntimeError("setup snippet python")\n')
    elif framework == "django":
        (tmp_path / "settings.py").write_text(
            'SECRET_KEY = "setup-test"\nDEBUG = False\nALLOWED_HOSTS = ["*"]\nROOT_URLCONF = "urls"\n\n' + code + "\n"
        )
        (tmp_path / "urls.py").write_text(
            "from django.urls import path\n\n\ndef boom(request):\n"
            '    raise ValueError("setup snippet django")\n\n\nurlpatterns = [path("boom", boom)]\n'
        )
        (tmp_path / "app.py").write_text(
            "import os\n\nos.environ['DJANGO_SETTINGS_MODULE'] = 'settings'\nimport django\n\ndjango.setup()\n"
            "from django.test import Client\n\nprint(Client(raise_request_exception=False).get('/boom').status_code)\n"
        )
    else:
        (tmp_path / "app.py").write_text(code + FAILING_ROUTE[framework])
    result = run_in(venv, tmp_path, ["python", "app.py"], timeout=120)
    if framework != "python":
        assert result.stdout.strip().endswith("500"), result.stdout + result.stderr

    title = f"setup snippet {framework}"
    deadline = time.monotonic() + 20
    while True:
        matching = [i for i in project.issues() if title in i["title"]]
        if matching or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert matching, f"no event from the {framework} snippet arrived:\n{result.stderr[-2000:]}\n{server.log()[-2000:]}"
