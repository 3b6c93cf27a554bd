"""What an event carries, checked through booboo.testing.capture_events()."""

import json
import os
import re
import sys
import textwrap
import time

import pytest

import booboo
from booboo.testing import capture_events

HERE = os.path.abspath(__file__)


def raise_value_error(items, password, api_key="k", Auth_Header="h"):
    __hidden__ = 1  # noqa: F841 - dunder locals are left out
    count = len(items)
    raise ValueError("bad items: %d" % count)


def captured(function, *args, **options):
    with capture_events(**options) as events:
        try:
            function(*args)
        except Exception:
            event_id = booboo.capture_exception()
    assert len(events) == 1
    assert events[0]["event_id"] == event_id
    return events[0]


def test_event_has_every_protocol_field_and_nothing_else():
    event = captured(raise_value_error, [1, 2], "hunter2", environment="staging", release="1.2.3")
    assert set(event) == {
        "event_id", "timestamp", "message", "exception_type", "level", "stacktrace",
        "exceptions", "context", "tags", "environment", "release", "handled",
    }
    assert event["handled"] is True  # captured by the application itself
    assert re.fullmatch(r"[0-9a-f]{32}", event["event_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event["timestamp"])
    assert event["message"] == "bad items: 2"
    assert event["exception_type"] == "ValueError"
    assert event["level"] == "error"
    assert event["environment"] == "staging"
    assert event["release"] == "1.2.3"
    assert event["tags"] == {"runtime": "python"}
    assert event["context"]["sdk"] == {"name": "booboo-sdk", "version": booboo.__version__}
    assert event["context"]["runtime"]["name"] == "Python"
    assert event["context"]["runtime"]["version"].startswith("%d.%d." % sys.version_info[:2])
    assert "user" not in event["context"]


def test_frames_oldest_first_with_source_and_in_app():
    event = captured(raise_value_error, [1], "pw")
    frames = event["stacktrace"]
    assert [f["function"] for f in frames] == ["captured", "raise_value_error"]
    last = frames[-1]
    assert last["filename"] == HERE
    assert last["context_line"] == '    raise ValueError("bad items: %d" % count)'
    assert last["pre_context"][-1] == "    count = len(items)"
    assert len(last["pre_context"]) == 5 and len(last["post_context"]) == 5
    assert last["post_context"][0] == ""
    assert last["in_app"] is True
    with open(HERE) as source:
        assert source.read().splitlines()[last["lineno"] - 1] == last["context_line"]


def test_locals_are_reprs_scrubbed_and_without_dunders():
    frame = captured(raise_value_error, [1, 2], "hunter2")["stacktrace"][-1]
    assert frame["vars"] == {
        "items": "[1, 2]",
        "password": "[filtered]",
        "api_key": "[filtered]",
        "Auth_Header": "[filtered]",
        "count": "2",
    }
    assert "hunter2" not in json.dumps(frame)


@pytest.mark.parametrize(
    "name",
    ["password", "DB_PASSWORD", "client_secret", "csrftoken", "API_KEY", "oauth_state",
     "credentials", "private_key", "MyAuthThing"],
)
def test_every_sensitive_name_is_filtered(name):
    def crash():
        namespace = {name: "s3cr3t-value"}
        exec("def inner(%s):\n    raise RuntimeError('x')\n" % name, namespace)
        namespace["inner"](namespace[name])

    event = captured(crash)
    assert event["stacktrace"][-1]["vars"] == {name: "[filtered]"}
    assert "s3cr3t-value" not in json.dumps(event["stacktrace"][-1])


def test_sensitive_keys_inside_dict_locals_are_filtered_too():
    def crash():
        settings = {"user": "ann", "password": "hunter2"}  # noqa: F841
        raise RuntimeError("x")

    frame = captured(crash)["stacktrace"][-1]
    assert frame["vars"]["settings"] == "{'user': 'ann', 'password': [filtered]}"


def test_at_most_50_locals_each_at_most_200_characters():
    def crash():
        namespace = {}
        body = "\n".join("    v%02d = 'x' * 500" % i for i in range(70))
        exec("def many():\n%s\n    raise RuntimeError('x')\n" % body, namespace)
        namespace["many"]()

    frame = captured(crash)["stacktrace"][-1]
    assert len(frame["vars"]) == 50
    assert list(frame["vars"])[:2] == ["v00", "v01"]
    assert all(len(value) == 200 for value in frame["vars"].values())
    assert frame["vars"]["v00"].startswith("'xxx") and frame["vars"]["v00"].endswith("...")


def test_reprs_match_builtin_repr_when_short():
    def crash():
        values = [(1,), {"a": [1, 2.5, None]}, {3}, frozenset(), b"\x00", "it's", (), set()]  # noqa: F841
        raise RuntimeError("x")

    frame = captured(crash)["stacktrace"][-1]
    assert frame["vars"]["values"] == repr(
        [(1,), {"a": [1, 2.5, None]}, {3}, frozenset(), b"\x00", "it's", (), set()]
    )


class Plain:
    pass


def test_default_object_reprs_match_builtin_repr():
    def crash():
        here, builtin, nested = Plain(), object(), [Plain()]  # noqa: F841
        raise RuntimeError("x")

    with capture_events() as events:
        try:
            crash()
        except RuntimeError as exc:
            frame_locals = exc.__traceback__.tb_next.tb_frame.f_locals
            expected = {name: repr(frame_locals[name]) for name in ("here", "builtin", "nested")}
            booboo.capture_exception()
    assert events[0]["stacktrace"][-1]["vars"] == expected


class ReprRaises:
    def __repr__(self):
        raise KeyError("no repr for you")


class ReprLoopsForever:
    def __repr__(self):
        n = 0
        while True:
            n += 1


class StrRaises(Exception):
    def __str__(self):
        raise RuntimeError("no str either")


def test_unrepresentable_locals_do_not_break_capture():
    def crash():
        broken = ReprRaises()  # noqa: F841
        endless = ReprLoopsForever()  # noqa: F841
        fine = 42  # noqa: F841
        raise StrRaises()

    started = time.perf_counter()
    event = captured(crash)
    assert time.perf_counter() - started < 5  # the endless repr was cut off
    frame = event["stacktrace"][-1]
    assert frame["vars"]["broken"] == "<ReprRaises: repr() raised KeyError>"
    assert frame["vars"]["endless"] == "<ReprLoopsForever: repr() took too long>"
    assert frame["vars"]["fine"] == "42"
    assert event["message"] == "<StrRaises: str() raised RuntimeError>"
    assert event["exception_type"] == "StrRaises"


def test_huge_locals_cost_little_and_are_cut():
    def crash():
        text = "y" * 50_000_000  # noqa: F841
        numbers = list(range(2_000_000))  # noqa: F841
        nested = [[list(range(100))] * 1000] * 1000  # noqa: F841
        raise RuntimeError("x")

    with capture_events() as events:
        try:
            crash()
        except RuntimeError:
            started = time.perf_counter()
            booboo.capture_exception()
            took = time.perf_counter() - started
    assert took < 1  # a full repr of these would take seconds and a gigabyte
    frame = events[0]["stacktrace"][-1]
    assert frame["vars"]["text"].startswith("'yyyy") and len(frame["vars"]["text"]) == 200
    assert frame["vars"]["numbers"].startswith("[0, 1, 2, 3") and len(frame["vars"]["numbers"]) == 200
    assert frame["vars"]["nested"].startswith("[[[0, 1, 2")


def test_chain_with_cause_and_context():
    def crash():
        try:
            try:
                {}["missing"]
            except KeyError:
                int("not a number")  # raised while handling: context
        except ValueError as exc:
            raise RuntimeError("lookup failed") from exc  # cause

    event = captured(crash)
    chain = event["exceptions"]
    assert [(e["type"], e["chain_type"]) for e in chain] == [
        ("RuntimeError", None), ("ValueError", "cause"), ("KeyError", "context"),
    ]
    assert chain[0]["value"] == "lookup failed"
    assert chain[2]["value"] == "'missing'"
    assert chain[0]["stacktrace"] == event["stacktrace"]
    assert chain[2]["stacktrace"][-1]["context_line"].strip() == '{}["missing"]'


def test_a_lone_exception_and_a_chained_one_show_the_same_frames():
    # A lone exception takes a shorter path than a chain; both must read a
    # frame the same way.
    plain = Plain()

    def crash(items, mapping, text, owner):
        secret = "s3cr3t"  # noqa: F841
        raise ValueError("x")

    def chained():
        try:
            crash([1, "two"], {"token": "t", "ok": [3]}, "y" * 300, plain)
        except ValueError as exc:
            raise RuntimeError("wrapped") from exc

    lone = captured(crash, [1, "two"], {"token": "t", "ok": [3]}, "y" * 300, plain)
    inner = captured(chained)["exceptions"][1]
    assert inner["type"] == "ValueError" and inner["chain_type"] == "cause"
    assert inner["stacktrace"][-1] == lone["stacktrace"][-1]
    assert lone["stacktrace"][-1]["vars"]["secret"] == "[filtered]"
    assert lone["stacktrace"][-1]["vars"]["mapping"] == "{'token': [filtered], 'ok': [3]}"
    assert lone["stacktrace"][-1]["vars"]["owner"] == repr(plain)
    assert lone["exception_type"] == "ValueError" and lone["message"] == "x"


def test_suppressed_context_is_left_out():
    def crash():
        try:
            {}["missing"]
        except KeyError:
            raise LookupError("clean") from None

    assert [e["type"] for e in captured(crash)["exceptions"]] == ["LookupError"]


@pytest.mark.skipif(
    sys.version_info < (3, 9),
    reason="CPython 3.8 itself loops forever raising anything while such a chain is handled",
)
def test_cyclic_chain_terminates():
    def crash():
        first, second = ValueError("a"), ValueError("b")
        first.__context__, second.__context__ = second, first
        raise first

    assert [e["value"] for e in captured(crash)["exceptions"]] == ["a", "b"]


def recurse(depth):
    padding = "p" * 150  # noqa: F841
    return recurse(depth + 1)


def test_deep_recursion_is_trimmed_not_dropped():
    event = captured(recurse, 0)
    assert event["exception_type"] == "RecursionError"
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(body) <= 102_400
    frames = event["stacktrace"]
    assert frames[0]["function"] == "captured" and frames[-1]["function"] == "recurse"
    assert 10 <= len(frames) < 1000  # frames from the middle of the recursion went
    assert frames[-1]["context_line"].strip() == "return recurse(depth + 1)"


def test_trimming_removes_locals_before_context_lines():
    def layer(n):
        blob = ["z" * 60] * 40  # noqa: F841
        other = {"k%d" % i: "v" * 50 for i in range(30)}  # noqa: F841
        if n == 0:
            raise RuntimeError("deep enough")
        layer(n - 1)

    event = captured(layer, 60)
    frames = event["stacktrace"]
    assert len(frames) == 62  # nothing cut but locals
    assert frames[-1]["vars"]["blob"].startswith("['zzz")  # the frames nearest the raise keep theirs
    assert frames[1]["vars"] == {}
    assert all(f["pre_context"] for f in frames)


def test_non_utf8_source_files(tmp_path):
    latin = tmp_path / "latin_module.py"
    latin.write_bytes(
        b"# -*- coding: latin-1 -*-\n"
        b"def fail():\n"
        b"    caf\xe9 = 'cr\xe8me'\n"
        b"    raise ValueError(caf\xe9)  # d\xe9j\xe0 vu\n"
    )
    garbled = tmp_path / "garbled_module.py"
    garbled.write_bytes(b"def fail():\n    raise ValueError('bad')  # \xff\xfe not utf-8\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import latin_module

        event = captured(latin_module.fail)
        frame = event["stacktrace"][-1]
        assert frame["context_line"] == "    raise ValueError(caf\u00e9)  # d\u00e9j\u00e0 vu"
        assert frame["vars"] == {"caf\u00e9": "'cr\u00e8me'"}
        assert event["message"] == "cr\u00e8me"

        # Code compiled from text while its file on disk does not decode.
        namespace = {}
        exec(compile("def fail():\n    raise ValueError('bad')\n", str(garbled), "exec"), namespace)
        frame = captured(namespace["fail"])["stacktrace"][-1]
        assert frame["filename"] == str(garbled)
        assert frame["context_line"] == "" and frame["pre_context"] == []
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("latin_module", None)


def test_in_app_is_false_for_stdlib_and_site_packages():
    import json as stdlib_json

    def crash():
        stdlib_json.loads("{not json")

    frames = captured(crash)["stacktrace"]
    assert frames[-1]["filename"].endswith(os.path.join("json", "decoder.py"))
    assert frames[-1]["in_app"] is False
    assert frames[0]["in_app"] is True

    from booboo import _event

    assert _event.is_in_app("/srv/venv/lib/python3.11/site-packages/flask/app.py") is False
    assert _event.is_in_app("/usr/lib/python3/dist-packages/yaml/__init__.py") is False
    assert _event.is_in_app("<frozen importlib._bootstrap>") is False
    assert _event.is_in_app("/srv/app/views.py") is True


def test_user_tags_and_contexts_attach_to_later_events():
    with capture_events() as events:
        booboo.set_user({"id": 7, "email": "ann@example.com", "plan": "pro"})
        booboo.set_tag("region", "eu-west")
        booboo.set_tag("shard", 3)
        booboo.set_context("order", {"id": "A-1", "total": 12.5})
        booboo.capture_message("first")
        booboo.set_user(None)
        booboo.set_tag("shard", None)
        booboo.capture_message("second", level="warning")
    first, second = events
    assert first["context"]["user"] == {"id": 7, "email": "ann@example.com", "plan": "pro"}
    assert first["tags"] == {"runtime": "python", "region": "eu-west", "shard": "3"}
    assert first["context"]["order"] == {"id": "A-1", "total": 12.5}
    assert "user" not in second["context"]
    assert second["tags"] == {"runtime": "python", "region": "eu-west"}
    assert second["level"] == "warning"


def test_message_events():
    with capture_events() as events:
        event_id = booboo.capture_message("disk almost full", level="warning")
        booboo.capture_message("odd level", level="fatal")
    assert events[0]["event_id"] == event_id
    assert events[0]["message"] == "disk almost full"
    assert events[0]["exception_type"] == ""
    assert events[0]["stacktrace"] == [] and events[0]["exceptions"] == []
    assert events[1]["level"] == "info"


def test_capture_exception_arguments():
    with capture_events() as events:
        assert booboo.capture_exception() is None  # nothing is being handled
        assert booboo.capture_exception(ValueError("never raised")) is not None
        try:
            raise KeyError("k")
        except KeyError:
            assert booboo.capture_exception(sys.exc_info()) is not None
        assert booboo.capture_exception("not an exception") is None
    assert [e["exception_type"] for e in events] == ["ValueError", "KeyError"]
    assert events[0]["stacktrace"] == []


def test_before_send_can_change_drop_or_fail(caplog):
    seen = []

    def before_send(event):
        seen.append(event["message"])
        if event["message"] == "drop me":
            return None
        if event["message"] == "explode":
            raise RuntimeError("hook bug")
        event["tags"]["scrubbed"] = "yes"
        return event

    with capture_events(before_send=before_send) as events:
        assert booboo.capture_message("keep me") is not None
        assert booboo.capture_message("drop me") is None
        assert booboo.capture_message("explode") is None
        stats = booboo.stats()
    assert seen == ["keep me", "drop me", "explode"]
    assert [e["message"] for e in events] == ["keep me"]
    assert events[0]["tags"]["scrubbed"] == "yes"
    assert stats["dropped"] == {"before_send_dropped": 1, "before_send_failed": 1}
    assert "before_send raised RuntimeError: hook bug" in caplog.text


def test_ignore_errors_and_sample_rate():
    with capture_events(ignore_errors=[LookupError]) as events:
        assert booboo.capture_exception(KeyError("k")) is None  # a LookupError subclass
        assert booboo.capture_exception(ValueError("v")) is not None
        assert booboo.stats()["dropped"] == {"ignored_error": 1}
    assert len(events) == 1

    with capture_events(sample_rate=0.0) as events:
        for _ in range(5):
            booboo.capture_message("m")
        assert booboo.stats()["dropped"] == {"sampled_out": 5}
    assert events == []


def test_capture_events_uses_the_active_client(server):
    booboo.init(server.dsn, environment="prod", release="r9")
    with capture_events() as events:
        booboo.capture_message("recorded, not sent")
    assert events[0]["environment"] == "prod" and events[0]["release"] == "r9"
    booboo.flush(5)
    assert server.events() == []
    with pytest.raises(TypeError):
        with capture_events(release="x"):
            pass


def test_non_json_values_from_before_send_are_sent_as_reprs():
    def before_send(event):
        event["context"]["extra"] = {"when": object, "nums": (1, 2)}
        return event

    with capture_events(before_send=before_send) as events:
        booboo.capture_message("m")
    assert events[0]["context"]["extra"] == {"when": "<class 'object'>", "nums": [1, 2]}


def test_events_that_cannot_fit_are_dropped_and_counted(caplog):
    with capture_events() as events:
        booboo.set_context("huge", {"k%d" % i: "v" * 1000 for i in range(200)})
        assert booboo.capture_message("m") is None
        assert booboo.stats()["dropped"] == {"too_large": 1}
    assert events == []
    assert "larger than 102400 bytes" in caplog.text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dsn": "http://127.0.0.1:9/acme/web"}, "has no token"),
        ({"dsn": "ftp://tok@host/a/b"}, "must start with http:// or https://"),
        ({"dsn": "http://tok@:80/a"}, "has no host name"),
        ({"dsn": "http://tok@host:99999/a"}, "invalid port"),
        ({"dsn": "tok en"}, "characters a token never has"),
        ({"dsn": " http://tok@host/a/b"}, "whitespace"),
        ({"dsn": "baretoken"}, "pass endpoint="),
        ({"dsn": "baretoken", "endpoint": "http://u:p@host/"}, "must not contain credentials"),
        ({"dsn": "http://tok@host/a/b", "sample_rate": 2}, "sample_rate must be a number from 0.0 to 1.0"),
        ({"dsn": "http://tok@host/a/b", "max_queue": 0}, "max_queue must be"),
        ({"dsn": "http://tok@host/a/b", "shutdown_timeout": -1}, "shutdown_timeout must be"),
        ({"dsn": "http://tok@host/a/b", "before_send": "no"}, "before_send must be a function"),
        ({"dsn": "http://tok@host/a/b", "ignore_errors": [ValueError, "x"]}, "exception classes"),
        ({"dsn": "http://tok@host/a/b", "debug": "yes"}, "debug must be True or False"),
        ({"dsn": "http://tok@host/a/b", "release": 3}, "release must be a string"),
        ({"dsn": "http://tok@host/a/b", "environment": 3}, "environment must be a string"),
    ],
)
def test_invalid_configuration_raises_at_init_with_the_reason(kwargs, message):
    with pytest.raises(ValueError) as raised:
        booboo.init(**kwargs)
    assert message in str(raised.value)
    assert "tok@" not in str(raised.value)  # the token is never shown
    assert booboo.stats()["sent"] == 0


def test_unknown_option_and_bad_app_raise_type_errors():
    hook_before = sys.excepthook
    with pytest.raises(TypeError, match="unknown option 'sample'"):
        booboo.init("http://tok@host/a/b", sample=0.5)
    with pytest.raises(TypeError, match="must be a Flask or FastAPI application"):
        booboo.init("http://tok@host/a/b", app=object())
    assert sys.excepthook is hook_before


def test_missing_dsn_raises_and_environment_fills_gaps(monkeypatch, server):
    monkeypatch.delenv("BOOBOO_DSN", raising=False)
    with pytest.raises(ValueError, match="no DSN given"):
        booboo.init()
    monkeypatch.setenv("BOOBOO_DSN", server.dsn)
    monkeypatch.setenv("BOOBOO_ENVIRONMENT", "from-env")
    monkeypatch.setenv("BOOBOO_RELEASE", "rel-env")
    booboo.init()
    with capture_events() as events:
        booboo.capture_message("m")
    assert (events[0]["environment"], events[0]["release"]) == ("from-env", "rel-env")
    booboo.init(environment="explicit", release="explicit-rel")
    with capture_events() as events:
        booboo.capture_message("m")
    assert (events[0]["environment"], events[0]["release"]) == ("explicit", "explicit-rel")


def test_misuse_after_init_never_raises(server, caplog):
    booboo.init(server.dsn)
    booboo.set_user("not a dict")
    booboo.set_tag(None, "v")
    booboo.set_context("sdk", {"x": 1})
    booboo.set_context("extra", [1, 2])
    assert booboo.flush("soon") in (True, False)
    booboo.capture_message(object())
    assert "flush() takes a number of seconds or None, not 'soon'" in caplog.text
    assert "set_user() takes a dict" in caplog.text
    assert "set_context() needs a string name other than 'sdk'" in caplog.text


def test_import_loads_only_the_standard_library():
    code = textwrap.dedent(
        """
        import sys, sysconfig
        before = set(sys.modules)
        import booboo
        new = sorted(set(sys.modules) - before)
        stdlib = sysconfig.get_paths()["stdlib"]
        def outside_stdlib(name):
            path = getattr(sys.modules[name], "__file__", None) or ""
            return path and (not path.startswith(stdlib) or "-packages" in path)
        outside = [m for m in new if m.split('.')[0] != 'booboo' and outside_stdlib(m)]
        print(outside, [m for m in new if m.startswith('booboo')])
        """
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] ['booboo', 'booboo._client', 'booboo._event', 'booboo._scope']"
