"""FastAPI, through its own test client: unhandled errors captured, responses unchanged."""

import asyncio

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient

import booboo
from booboo.testing import capture_events


class OutOfStock(Exception):
    pass


def make_app():
    app = FastAPI()

    @app.get("/ok")
    def ok():
        return {"ok": True}

    @app.get("/crash")
    def crash():
        cart = ["tea"]  # noqa: F841
        raise ZeroDivisionError("sync view")

    @app.get("/async-crash/{item_id}")
    async def async_crash(item_id: int):
        await asyncio.sleep(0)
        raise KeyError(item_id)

    @app.get("/missing")
    def missing():
        raise HTTPException(status_code=404, detail="no such thing")

    @app.get("/stock")
    def stock():
        raise OutOfStock("tea")

    @app.get("/typed/{number}")
    def typed(number: int):
        return {"number": number}

    @app.get("/stream")
    def stream():
        def chunks():
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks())

    @app.exception_handler(OutOfStock)
    async def out_of_stock(request, exc):
        return JSONResponse({"error": "out of stock"}, status_code=409)

    return app


PATHS = ["/ok", "/crash", "/async-crash/5", "/missing", "/stock", "/typed/abc", "/stream", "/nowhere",
         "/crash?q=1&secret=s"]


def responses(app):
    with TestClient(app, raise_server_exceptions=False) as client:
        result = {}
        for url in PATHS:
            response = client.get(url, headers={"Authorization": "Bearer t", "X-Trace": "t-1"})
            result[url] = (response.status_code, response.content, sorted(response.headers.items()))
        return result


def test_unhandled_errors_are_captured_and_responses_unchanged(server):
    plain = responses(make_app())
    app = make_app()
    booboo.init(server.dsn, app=app)
    with capture_events() as events:
        assert responses(app) == plain
    assert [plain[p][0] for p in PATHS] == [200, 500, 500, 404, 409, 422, 200, 404, 500]
    assert [e["exception_type"] for e in events] == ["ZeroDivisionError", "KeyError", "ZeroDivisionError"]
    crash = events[0]
    assert crash["request"]["method"] == "GET"
    assert crash["request"]["url"] == "http://testserver/crash"
    assert crash["request"]["headers"]["authorization"] == "[filtered]"
    assert crash["request"]["headers"]["x-trace"] == "t-1"
    assert crash["stacktrace"][-1]["function"] == "crash"
    assert crash["stacktrace"][-1]["vars"] == {"cart": "['tea']"}
    assert events[1]["request"]["url"] == "http://testserver/async-crash/5"
    assert events[1]["stacktrace"][-1]["vars"]["item_id"] == "5"
    assert events[2]["request"]["query_string"] == "q=1&secret=[filtered]"


def test_the_test_client_still_raises_by_default(server):
    app = make_app()
    booboo.init(server.dsn, app=app)
    with capture_events() as events:
        with TestClient(app) as client:
            with pytest.raises(ZeroDivisionError):
                client.get("/crash")
    assert len(events) == 1


def test_init_after_the_app_started_says_so(server):
    app = make_app()
    with TestClient(app) as client:
        client.get("/ok")
        with pytest.raises(ValueError, match="before the application starts serving"):
            booboo.init(server.dsn, app=app)
