"""booboo protocol bodies shaped like the ones booboo-sdk 0.16.0 sends."""


def frame(function="handler", line="total = price / qty", filename="/srv/app/shop/views.py", lineno=42, **extra):
    return {
        "filename": filename,
        "function": function,
        "lineno": lineno,
        "context_line": line,
        "pre_context": ["def handler(price, qty):"],
        "post_context": ["    return total"],
        "vars": {"price": "10", "qty": "0"},
        "in_app": True,
        **extra,
    }


def event(**overrides):
    frames = overrides.pop("frames", [frame()])
    body = {
        "message": "division by zero",
        "exception_type": "ZeroDivisionError",
        "level": "error",
        "stacktrace": frames,
        "exceptions": [{"type": "ZeroDivisionError", "value": "division by zero", "stacktrace": frames, "chain_type": None}],
        "context": {"sdk": {"name": "booboo-sdk", "version": "0.16.0"}, "runtime": {"name": "Python", "version": "3.11.7"}},
        "tags": {"runtime": "python"},
        "environment": "production",
        "release": "1.0.0",
    }
    body.update(overrides)
    return body
