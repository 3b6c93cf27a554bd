"""Scopes: what one request, task or block sets stays with its own events."""

import asyncio
import threading

import pytest

import booboo
from booboo.testing import capture_events


def fail_as(user_id):
    booboo.set_user({"id": user_id})
    booboo.set_tag("who", user_id)
    booboo.add_breadcrumb("step of %s" % user_id)
    try:
        raise RuntimeError("failed for %s" % user_id)
    except RuntimeError:
        booboo.capture_exception()


def test_threads_in_their_own_scopes_keep_their_own_user(server):
    booboo.init(server.dsn)
    barrier = threading.Barrier(20)

    def worker(n):
        with booboo.new_scope():
            booboo.set_user({"id": "u%d" % n})
            barrier.wait(10)  # every thread has set its user before any captures
            fail_as_without_setting("u%d" % n)

    def fail_as_without_setting(user_id):
        try:
            raise RuntimeError(user_id)
        except RuntimeError:
            booboo.capture_exception()

    with capture_events() as events:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(events) == 20
    assert sorted(e["context"]["user"]["id"] for e in events) == sorted("u%d" % n for n in range(20))
    assert all(e["context"]["user"]["id"] == e["message"] for e in events)


def test_asyncio_tasks_in_their_own_scopes_do_not_mix(server):
    booboo.init(server.dsn)

    async def request(n, everyone_ready):
        with booboo.new_scope():
            booboo.set_user({"id": "t%d" % n})
            booboo.add_breadcrumb("task %d started" % n)
            await everyone_ready.wait()
            try:
                raise KeyError(n)
            except KeyError:
                booboo.capture_exception()

    async def main():
        ready = asyncio.Event()
        tasks = [asyncio.ensure_future(request(n, ready)) for n in range(30)]
        await asyncio.sleep(0)
        ready.set()
        await asyncio.gather(*tasks)

    with capture_events() as events:
        asyncio.run(main())
    assert len(events) == 30
    for event in events:
        n = event["message"]
        assert event["context"]["user"] == {"id": "t%s" % n}
        assert [b["message"] for b in event["breadcrumbs"]] == ["task %s started" % n]


def test_outside_any_scope_settings_are_process_wide_and_blocks_inherit_them(server):
    booboo.init(server.dsn)
    booboo.set_tag("region", "eu")
    with capture_events() as events:
        with booboo.new_scope():
            booboo.set_tag("job", "import")
            fail_as("inner")
        # What the block set is gone; the process-wide user was never touched.
        try:
            raise ValueError("outside")
        except ValueError:
            booboo.capture_exception()
        thread = threading.Thread(target=fail_as, args=("thread",))
        thread.start()
        thread.join()
    inner, outside, from_thread = events
    # A new thread starts outside any block: the process-wide scope.
    assert from_thread["tags"]["region"] == "eu"
    assert inner["tags"] == {"region": "eu", "job": "import", "who": "inner", "runtime": "python"}
    assert inner["context"]["user"] == {"id": "inner"}
    assert outside["tags"] == {"region": "eu", "runtime": "python"}
    assert "user" not in outside["context"]
    assert "breadcrumbs" not in outside


def test_a_thread_without_a_scope_of_its_own_shares_the_process_scope(server):
    booboo.init(server.dsn)
    done = threading.Event()

    def set_in_thread():
        booboo.set_user({"id": "from-thread"})
        done.set()

    threading.Thread(target=set_in_thread).start()
    assert done.wait(5)
    with capture_events() as events:
        try:
            raise ValueError("x")
        except ValueError:
            booboo.capture_exception()
    assert events[0]["context"]["user"] == {"id": "from-thread"}


def test_breadcrumbs_keep_the_newest_and_are_sent_in_order_with_timestamps(server):
    booboo.init(server.dsn, max_breadcrumbs=5)
    for n in range(8):
        booboo.add_breadcrumb("step %d" % n, category="job", data={"n": n, "api_token": "t"})
    booboo.add_breadcrumb("odd level", level="loud")
    with capture_events() as events:
        booboo.capture_message("done")
    crumbs = events[0]["breadcrumbs"]
    assert [c["message"] for c in crumbs] == ["step 4", "step 5", "step 6", "step 7", "odd level"]
    assert crumbs[0]["category"] == "job" and crumbs[0]["level"] == "info"
    assert crumbs[0]["data"] == {"n": 4, "api_token": "[filtered]"}
    assert crumbs[-1]["level"] == "info"
    stamps = [c["timestamp"] for c in crumbs]
    assert stamps == sorted(stamps) and all(s.endswith("Z") for s in stamps)


def test_max_breadcrumbs_zero_sends_none(server):
    booboo.init(server.dsn, max_breadcrumbs=0)
    booboo.add_breadcrumb("ignored")
    with capture_events() as events:
        booboo.capture_message("done")
    assert "breadcrumbs" not in events[0]


def test_new_scope_works_before_init_and_after_close():
    with booboo.new_scope():
        booboo.set_user({"id": "nobody"})
        booboo.add_breadcrumb("nothing to send to")
    assert booboo.stats() == {"sent": 0, "queued": 0, "dropped": {}}


@pytest.mark.parametrize("bad", [{"max_breadcrumbs": -1}, {"logging_level": "loud"}, {"event_level": True},
                                 {"send_user": "yes"}, {"logging": 1}])
def test_bad_new_options_are_refused_with_the_reason(server, bad):
    with pytest.raises(ValueError, match=list(bad)[0]):
        booboo.init(server.dsn, **bad)


def test_breadcrumbs_reach_the_server(server):
    booboo.init(server.dsn)
    booboo.add_breadcrumb("loaded the cart", category="shop", data={"items": 3})
    booboo.capture_message("checkout failed", level="error")
    [event] = server.wait_for_events(1)
    [crumb] = event["breadcrumbs"]
    assert crumb["message"] == "loaded the cart" and crumb["data"] == {"items": 3}
