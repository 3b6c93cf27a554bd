"""Whole-process behaviour, in subprocesses: hooks, exit with pending events, fork."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

import booboo


def run_python(code, timeout=60, **env):
    environment = dict(os.environ, **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env=environment,
    )


def test_uncaught_exception_is_reported_and_still_printed(server):
    result = run_python(
        """
        import booboo
        booboo.init(%r)
        def handler():
            secret_value = "s3cret"
            order_id = 41
            raise ZeroDivisionError("order %%d" %% order_id)
        handler()
        """ % server.dsn
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ZeroDivisionError: order 41" in result.stderr
    (event,) = server.wait_for_events(1)
    assert event["exception_type"] == "ZeroDivisionError"
    assert event["stacktrace"][-1]["function"] == "handler"
    assert event["stacktrace"][-1]["vars"] == {"secret_value": "[filtered]", "order_id": "41"}


def test_excepthook_chains_to_the_previous_hook(server):
    result = run_python(
        """
        import sys, booboo
        def mine(kind, value, tb):
            print("previous hook saw", kind.__name__)
        sys.excepthook = mine
        booboo.init(%r)
        raise KeyError("x")
        """ % server.dsn
    )
    assert "previous hook saw KeyError" in result.stdout
    server.wait_for_events(1)


def test_keyboard_interrupt_and_system_exit_are_not_errors(server):
    for code in ("raise KeyboardInterrupt", "raise SystemExit(3)", "import sys; sys.exit('bye')"):
        result = run_python("import booboo\nbooboo.init(%r)\n%s\n" % (server.dsn, code))
        assert result.returncode != 0
    booboo.init(server.dsn)  # one handshake more; its arrival shows the server kept up
    server.wait_for(lambda rs: len(rs) >= 4)
    assert server.events() == []


def test_thread_crash_is_reported_and_still_printed(server):
    result = run_python(
        """
        import sys, threading, booboo
        booboo.init(%r)
        def work():
            raise RuntimeError("worker died")
        for target in (work, lambda: sys.exit(0)):
            thread = threading.Thread(target=target, name="worker-1")
            thread.start()
            thread.join()
        print("main carried on")
        """ % server.dsn
    )
    assert result.returncode == 0
    assert "main carried on" in result.stdout
    assert "Exception in thread worker-1" in result.stderr
    assert "RuntimeError: worker died" in result.stderr
    (event,) = server.wait_for_events(1)
    assert event["message"] == "worker died"
    assert event["stacktrace"][-1]["function"] == "work"


def test_exit_with_pending_events_respects_shutdown_timeout(server):
    server.default = "hang"
    result = None
    started = time.monotonic()
    result = run_python(
        """
        import booboo
        booboo.init(%r, shutdown_timeout=1.5)
        for i in range(5):
            booboo.capture_message("pending %%d" %% i)
        print("main done")
        """ % server.dsn
    )
    elapsed = time.monotonic() - started
    assert result.stdout.strip() == "main done"
    assert result.returncode == 0
    assert elapsed < 1.5 + 3  # timeout plus interpreter start-up and slack
    assert "5 events were dropped: the SDK was shut down" in result.stderr


def test_exit_is_quick_when_everything_was_sent(server):
    started = time.monotonic()
    result = run_python(
        """
        import booboo
        booboo.init(%r, shutdown_timeout=30)
        booboo.capture_message("one")
        """ % server.dsn
    )
    assert result.returncode == 0
    assert time.monotonic() - started < 15
    server.wait_for_events(1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork exists only on POSIX")
def test_forked_child_has_its_own_working_sender(server):
    result = run_python(
        """
        import os, sys, booboo
        booboo.init(%r)
        booboo.capture_message("parent before fork")
        booboo.flush(10)
        pid = os.fork()
        if pid == 0:
            booboo.capture_message("from child %%d" %% os.getpid())
            ok = booboo.flush(10)
            os._exit(0 if ok and booboo.stats()["sent"] == 1 else 7)
        _, status = os.waitpid(pid, 0)
        booboo.capture_message("parent after fork")
        print("child exit", os.WEXITSTATUS(status), "parent flushed", booboo.flush(10))
        """ % server.dsn
    )
    assert "child exit 0 parent flushed True" in result.stdout, result.stderr
    messages = sorted(e["message"].split(" ")[0] + " " + e["message"].split(" ")[1] for e in server.events())
    assert messages == ["from child", "parent after", "parent before"]
    # Event ids are made ahead in batches; the child must not take the ones its parent will use.
    assert len({e["event_id"] for e in server.events()}) == 3
