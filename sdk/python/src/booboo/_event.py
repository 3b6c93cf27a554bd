"""Building protocol events: frames, the exception chain, locals, scrubbing, size.

An event is built in two halves so that the thread that crashed does as little
as possible:

* ``snapshot_exception`` runs on the calling thread. It must, because a
  frame's locals and the objects they point to keep changing once the
  application goes on. It walks the tracebacks and reads every local: one
  whose value cannot change any more (a number, a string, a small container
  of those, copied if mutable) is kept as it is; any other becomes a short,
  scrubbed ``repr()`` string at once. Nothing it keeps refers to a frame.
* ``complete`` may run later, on the sender's thread. It adds what does not
  change: the reprs of the values kept, source lines, ``in_app``, the
  timestamp's text.

Nothing in this module raises to its caller for a bad value from the
application: a ``repr()`` that raises or hangs becomes a placeholder string.
"""

import os
import sys
import time

PROTOCOL_BODY_LIMIT = 102_400
"""The largest body, in bytes before compression, that every server accepts."""

MAX_REPR = 200
MAX_LOCALS = 50
CONTEXT_LINES = 5
MAX_SOURCE_LINE = 500
MAX_MESSAGE = 8192
MAX_CHAIN = 20
MAX_FRAMES = 1000
"""Frames kept per stack at capture time; the rest, from the middle, never leave the process."""
FRAMES_WITH_LOCALS = 100
"""Locals are read only for this many frames nearest the raise of each stack."""
REPR_TIME_LIMIT = 0.05
"""Seconds one Python-level ``__repr__`` may run before it is interrupted."""
LOCALS_TIME_BUDGET = 0.25
"""Seconds all ``repr()`` calls of one capture may take together."""

FILTERED = "[filtered]"

_SENSITIVE_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "auth",
    "credential",
    "private",
)
_SENSITIVE_HEADERS = frozenset(
    {"cookie", "set-cookie", "x-forwarded-for", "x-real-ip", "forwarded"}
)
_sensitive_names = {}
_harmless_names = set()
"""The names is_sensitive() found harmless, for checking all keys of a dict at once."""


def is_sensitive(name):
    """Whether a variable, key or header name suggests its value is a secret."""
    hit = _sensitive_names.get(name)
    if hit is None:
        lower = name.lower()
        hit = False
        for word in _SENSITIVE_WORDS:
            if word in lower:
                hit = True
                break
        # Names repeat (the same functions crash again), so the answer is
        # remembered; the bound keeps generated names from growing it forever.
        if len(_sensitive_names) < 4096:
            _sensitive_names[name] = hit
            if not hit and len(name) <= MAX_REPR:
                _harmless_names.add(name)
    return hit


_KEEP, _FILTER, _SKIP = 0, 1, 2
_local_name_kinds = {}
_plain_local_names = set()
"""The names _local_name_kind() found neither secret nor dunder, for checking all locals of a frame at once."""


def _local_name_kind(name):
    """What to do with a local of this name: keep its repr, filter it, or leave it out."""
    kind = _local_name_kinds.get(name)
    if kind is None:
        if name[:2] == "__" and name[-2:] == "__":
            kind = _SKIP
        elif is_sensitive(name):
            kind = _FILTER
        else:
            kind = _KEEP
        if len(_local_name_kinds) < 4096:
            _local_name_kinds[name] = kind
            if kind == _KEEP:
                _plain_local_names.add(name)
    return kind


# --- repr() that cannot break or stall a capture ---------------------------


class _ReprTimeout(BaseException):
    """Raised inside a slow ``__repr__`` by the trace function.

    A BaseException, so that an ``except Exception`` in the application's own
    ``__repr__`` does not swallow it.
    """


def _python_function():
    pass


_PY_FUNCTION = type(_python_function)
_SCALARS = frozenset({int, float, bool, type(None), complex})
_CONTAINER_REPRS = {
    list: list.__repr__,
    tuple: tuple.__repr__,
    dict: dict.__repr__,
    set: set.__repr__,
    frozenset: frozenset.__repr__,
}
_NESTING_LIMIT = 3
_OBJECT_REPR = object.__repr__


def safe_repr(value, budget_end):
    """``repr(value)`` cut to MAX_REPR characters, never raising.

    Builtin strings and containers are rendered only as far as needed, so a
    list of a million items costs no more than a short one. A ``__repr__``
    written in Python gets REPR_TIME_LIMIT seconds, and none at all once
    ``budget_end`` (a perf_counter value) has passed; one written in C cannot
    be interrupted, but the builtin ones that can be large are handled here.
    """
    try:
        text = _bounded_repr(value, MAX_REPR + 1, 0, budget_end)
    except _ReprTimeout:
        text = "<%s: repr() took too long>" % _type_name(value)
    except Exception as exc:
        text = "<%s: repr() raised %s>" % (_type_name(value), _type_name(exc))
    if len(text) > MAX_REPR:
        text = text[: MAX_REPR - 3] + "..."
    return text


_type_names = {}


def _type_name(value):
    """``type(value).__name__``, remembered per type (a builtin type's name is decoded anew each time)."""
    kind = type(value)
    name = _type_names.get(kind)
    if name is None:
        try:
            name = kind.__name__
        except Exception:  # a hostile metaclass
            return "object"
        if type(name) is not str:
            return "object"
        if len(_type_names) < 1024:
            _type_names[kind] = name
    return name


_SCALAR, _TEXT, _CONTAINER, _PYTHON, _NATIVE, _DEFAULT = range(6)
"""The ways of rendering: ``_DEFAULT`` is ``object.__repr__``, which shows only the type and address."""
_repr_ways = {}


def _repr_way(kind):
    """How values of this type are rendered, as ``(way, builtin_base)``; remembered per type."""
    way = _repr_ways.get(kind)
    if way is None:
        if kind in _SCALARS:
            way = (_SCALAR, None)
        elif kind is str or kind is bytes or kind is bytearray:
            way = (_TEXT, None)
        elif kind in _CONTAINER_REPRS:
            way = (_CONTAINER, kind)
        else:
            way = None
            inherited = kind.__repr__
            for base, base_repr in _CONTAINER_REPRS.items():
                # A subclass that kept the builtin repr prints exactly like the builtin.
                if inherited is base_repr and issubclass(kind, base):
                    way = (_CONTAINER, base)
                    break
            if way is None:
                if inherited is _OBJECT_REPR:
                    way = (_DEFAULT, None)
                elif type(inherited) is _PY_FUNCTION:
                    way = (_PYTHON, None)
                else:
                    way = (_NATIVE, None)
        if len(_repr_ways) < 1024:
            _repr_ways[kind] = way
    return way


def _bounded_repr(value, room, depth, budget_end):
    way, base = _repr_way(type(value))
    if way == _SCALAR:
        return repr(value)
    if way == _TEXT:
        return repr(value[:room]) if len(value) > room else repr(value)
    if way == _CONTAINER:
        if depth >= _NESTING_LIMIT:
            return "[...]" if base is list else "{...}" if base in (dict, set) else "(...)"
        if _small_and_flat(value, base):
            return _CONTAINER_REPRS[base](value)
        return _container_repr(value, base, room, depth + 1, budget_end)
    if way == _PYTHON:
        return _traced_repr(value, budget_end)
    return repr(value)


_FLAT_LIMIT = 32


def _small_and_flat(value, kind):
    """Whether the builtin repr of this container is cheap: few items, none large or nested.

    Such containers are the common case, and the builtin repr is many times
    faster than rendering them piece by piece.
    """
    if kind.__len__(value) > _FLAT_LIMIT:
        return False
    scalars = _SCALARS
    if kind is dict:
        keys = dict.keys(value)
        if not keys <= _harmless_names:  # the usual case settles all keys at once
            for key in keys:
                if type(key) is str:
                    if len(key) > MAX_REPR or is_sensitive(key):
                        return False
                elif type(key) not in scalars:
                    return False
        for item in dict.values(value):
            if type(item) not in scalars and not (type(item) is str and len(item) <= MAX_REPR):
                return False
        return True
    for item in kind.__iter__(value):
        if type(item) not in scalars and not (type(item) is str and len(item) <= MAX_REPR):
            return False
    return True


def _container_repr(value, kind, room, depth, budget_end):
    # Iterating through the builtin's own methods keeps a subclass's
    # overridden __iter__ or items() (arbitrary Python) out of the picture.
    if kind is dict:
        opening, closing, items = "{", "}", dict.items(value)
    elif kind is list:
        opening, closing, items = "[", "]", list.__iter__(value)
    elif kind is tuple:
        one = tuple.__len__(value) == 1
        opening, closing, items = "(", ",)" if one else ")", tuple.__iter__(value)
    elif kind is set:
        if not set.__len__(value):
            return "set()"
        opening, closing, items = "{", "}", set.__iter__(value)
    else:
        if not frozenset.__len__(value):
            return "frozenset()"
        opening, closing, items = "frozenset({", "})", frozenset.__iter__(value)
    parts = [opening]
    used = len(opening)
    for item in items:
        if used >= room:
            parts.append("...")
            break
        if used > len(opening):
            parts.append(", ")
            used += 2
        if kind is dict:
            key, item = item
            text = _bounded_repr(key, room - used, depth, budget_end) + ": "
            if isinstance(key, str) and is_sensitive(key):
                text += FILTERED
            else:
                text += _bounded_repr(item, room - used - len(text), depth, budget_end)
        else:
            text = _bounded_repr(item, room - used, depth, budget_end)
        parts.append(text)
        used += len(text)
    parts.append(closing)
    return "".join(parts)


def _traced_repr(value, budget_end):
    """``repr()`` through a Python-level ``__repr__``, stopped when its time is up."""
    deadline = time.perf_counter() + REPR_TIME_LIMIT
    if deadline > budget_end:
        if time.perf_counter() > budget_end:
            raise _ReprTimeout
        deadline = budget_end
    return _call_before(deadline, repr, value)


def _call_before(deadline, function, value):
    """``function(value)`` under a trace function that raises _ReprTimeout past ``deadline``.

    The trace function sees each new line of Python code run meanwhile; code
    in C, or a loop that stays on one line, is not interrupted.
    """
    clock = time.perf_counter

    def stop_when_late(frame, event, arg):
        if clock() > deadline:
            raise _ReprTimeout
        return stop_when_late

    previous = sys.gettrace()
    sys.settrace(stop_when_late)
    try:
        return function(value)
    finally:
        sys.settrace(previous)  # a debugger's or coverage's tracer comes back


def safe_str(exc, deadline):
    """``str(exc)`` for a message, never raising, cut at MAX_MESSAGE characters."""
    try:
        if type(type(exc).__str__) is _PY_FUNCTION:
            text = _call_before(deadline, str, exc)
        else:
            text = str(exc)
        if type(text) is not str:
            text = str(text)
    except _ReprTimeout:
        text = "<%s: str() took too long>" % _type_name(exc)
    except Exception as error:
        text = "<%s: str() raised %s>" % (_type_name(exc), _type_name(error))
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return text


# --- the calling thread's half ---------------------------------------------


class Pending:
    """An event as captured: everything that could change has been copied.

    ``base`` holds the protocol fields known at capture time. ``chain`` is a
    list of ``(type_name, value, frames, chain_type)``; each frame is a tuple
    ``(code, offset, lineno, locals, module_globals)``: the code object, which
    cannot change and gives the file and function names later; the line
    number, or None and the instruction offset to look it up in the code
    later; and ``locals``, ``(kept, texts)`` from ``_locals_of``: values that
    cannot change any more, rendered later, and reprs finished at capture
    time. The module globals are kept only so that source lines of modules
    loaded from a zip or another loader can be found later. ``scope`` is
    ``(user, tags, contexts, breadcrumbs, request)`` as the capture saw them;
    ``stack`` the frames of a message event that carries the stack it was
    logged from. Made by ``new_pending``.
    """

    __slots__ = ("event_id", "created", "base", "chain", "scope", "stack")


def new_pending(base, chain, scope, stack=None):
    """A Pending with a new event id and the time now.

    Pending has no ``__init__``: the attributes are set here, because calling
    a Python ``__init__`` from the class call costs the capturing thread more
    than this (on a cold cache, most of all).
    """
    pending = Pending()
    try:
        pending.event_id = _event_ids.pop()
    except IndexError:
        pending.event_id = os.urandom(16).hex()
    pending.created = time.time()
    pending.base = base
    pending.chain = chain
    pending.scope = scope
    pending.stack = stack
    return pending


_EVENT_IDS_AHEAD = 64
_event_ids = []
"""Event ids made ahead of need by the sender's thread, so that a capture makes no system call
for its id: on a busy machine the ``getrandom`` call of ``os.urandom(16)`` cost the capturing
thread several microseconds. ``list.pop`` is atomic, so two threads never take the same id; a
forked child starts with none, so it never repeats its parent's."""
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_event_ids.clear)


def make_event_ids_ahead():
    """Top up the ids captures take; called on the sender's thread, so their cost is not the application's."""
    if len(_event_ids) < _EVENT_IDS_AHEAD // 2:
        block = os.urandom(16 * _EVENT_IDS_AHEAD).hex()
        _event_ids.extend([block[start : start + 32] for start in range(0, len(block), 32)])


def snapshot_exception(exc, scope, request=None):
    """Copy what an event needs from ``exc`` and its chain; return a Pending."""
    started = time.perf_counter()
    budget_end = started + LOCALS_TIME_BUDGET
    if exc.__cause__ is None and exc.__context__ is None:
        # A lone exception, the usual case: no chain to follow, no frame
        # shown twice, so no set of exceptions seen and no map of frames read.
        type_name = _type_name(exc)
        chain = [(type_name, safe_str(exc, started + REPR_TIME_LIMIT),
                  _snapshot_frames(exc.__traceback__, None, budget_end), None)]
    else:
        chain = _snapshot_chain(exc, budget_end)
        type_name = chain[0][0]
    base = {"message": chain[0][1], "exception_type": type_name, "level": "error"}
    if request is not None:
        base["request"] = request
    return new_pending(base, chain, scope)


def _snapshot_chain(exc, budget_end):
    """The ``chain`` of a Pending for an exception with a cause or a context."""
    clock = time.perf_counter
    seen_frames = {}
    chain = []
    seen = set()
    current, chain_type = exc, None
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        deadline = clock() + REPR_TIME_LIMIT
        value = safe_str(current, deadline if deadline < budget_end else budget_end)
        frames = _snapshot_frames(current.__traceback__, seen_frames, budget_end)
        chain.append((_type_name(current), value, frames, chain_type))
        if current.__cause__ is not None:
            current, chain_type = current.__cause__, "cause"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, chain_type = current.__context__, "context"
        else:
            current = None
    return chain


def snapshot_message(message, level, scope):
    text = message if type(message) is str else safe_str(message, time.perf_counter() + REPR_TIME_LIMIT)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return new_pending({"message": text, "exception_type": "", "level": level}, [], scope)


MAX_LOG_PARAMS = 32
_LEVEL_NAMES = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "fatal"}


def level_name(levelno):
    """The protocol's level for a logging level number."""
    name = _LEVEL_NAMES.get(levelno)
    if name is None:
        name = ("fatal" if levelno >= 50 else "error" if levelno >= 40 else "warning" if levelno >= 30
                else "info" if levelno >= 20 else "debug")
    return name


def log_fields(record):
    """The protocol fields that describe a log record: logger, level and ``logentry``.

    Runs on the logging thread, because the arguments may change afterwards.
    The template is ``record.msg`` as written in the code, so the server can
    group "timed out after %ss" as one issue whatever the number.
    """
    deadline = time.perf_counter() + REPR_TIME_LIMIT
    msg = record.msg
    template = msg if type(msg) is str else safe_str(msg, deadline)
    if len(template) > MAX_MESSAGE:
        template = template[: MAX_MESSAGE - 3] + "..."
    try:
        formatted = record.getMessage()
        if type(formatted) is not str:
            formatted = str(formatted)
    except Exception:
        formatted = template  # the arguments do not fit the template; logging will say so too
    if len(formatted) > MAX_MESSAGE:
        formatted = formatted[: MAX_MESSAGE - 3] + "..."
    args = record.args
    params = []
    if isinstance(args, dict):
        params.append({str(k): safe_repr(v, deadline) for k, v in list(args.items())[:MAX_LOG_PARAMS]})
    elif isinstance(args, tuple):
        params = [safe_repr(arg, deadline) for arg in args[:MAX_LOG_PARAMS]]
    return {
        "level": level_name(record.levelno),
        "logger": record.name if type(record.name) is str else str(record.name),
        "logentry": {"message": template, "params": params, "formatted": formatted},
    }


_this_package = os.path.dirname(os.path.abspath(__file__))


def snapshot_log_message(record, scope):
    """A message event for a log record without an exception, with the stack it was logged from."""
    fields = log_fields(record)
    base = {"message": fields["logentry"]["formatted"], "exception_type": "", "level": fields["level"],
            "handled": True}
    base.update(fields)
    return new_pending(base, [], scope, _caller_stack())


def _caller_stack():
    """The frames that led to the log call, oldest first, without logging's and the SDK's own.

    Only names and line numbers: a log message's locals are not read.
    """
    import logging

    logging_file = os.path.normcase(logging.__file__)
    logging_file_stem = os.path.splitext(logging_file)[0]
    frame = sys._getframe(1)
    # Skip up to and including the logging machinery that called the hook.
    while frame is not None:
        filename = os.path.normcase(frame.f_code.co_filename)
        if os.path.splitext(filename)[0] == logging_file_stem or filename.startswith(_this_package):
            frame = frame.f_back
            continue
        break
    frames = []
    while frame is not None and len(frames) < FRAMES_WITH_LOCALS:
        frames.append((frame.f_code, -1, frame.f_lineno or 0, NO_LOCALS, frame.f_globals))
        frame = frame.f_back
    frames.reverse()
    return frames


def _snapshot_frames(tb, seen_frames, budget_end):
    """The frames of one traceback, oldest first; ``seen_frames`` (or None) maps frames read before."""
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    if len(entries) > MAX_FRAMES:
        head = MAX_FRAMES // 10
        entries = entries[:head] + entries[len(entries) - (MAX_FRAMES - head):]
    if len(entries) <= FRAMES_WITH_LOCALS and seen_frames is None and _LINES_LATER:
        # The usual case, a lone exception with every frame's locals read.
        # A plain loop calling frames.append: on CPython 3.11 a comprehension
        # makes a function object each time, and a bound ``append`` a method
        # object; each is code that a capture starting cold must fetch.
        frames = []
        for entry in entries:
            frame = entry.tb_frame
            frames.append((frame.f_code, entry.tb_lasti, None, _locals_of(frame, budget_end), frame.f_globals))
        return frames
    first_with_locals = len(entries) - FRAMES_WITH_LOCALS
    frames = []
    append = frames.append
    position = 0
    for entry in entries:
        frame = entry.tb_frame
        if position < first_with_locals:
            local_vars = NO_LOCALS
        elif seen_frames is None:
            local_vars = _locals_of(frame, budget_end)
        else:
            # One frame can sit in several stacks of a chain; its locals are
            # the same object each time, so they are read once.
            local_vars = seen_frames.get(id(frame))
            if local_vars is None:
                local_vars = seen_frames[id(frame)] = _locals_of(frame, budget_end)
        position += 1
        # Where the code object can say later (Python 3.10+), the line number
        # is worked out on the sender's thread from the instruction offset:
        # reading tb_lineno makes CPython walk the line table now.
        if _LINES_LATER:
            append((frame.f_code, entry.tb_lasti, None, local_vars, frame.f_globals))
        else:
            append((frame.f_code, -1, entry.tb_lineno or 0, local_vars, frame.f_globals))
    return frames


_LINES_LATER = hasattr(_python_function.__code__, "co_lines")


def _line_number(code, offset):
    """The line of the instruction at byte ``offset`` in ``code``, as ``tb_lineno`` gives it (0 if none)."""
    if offset < 0:
        return code.co_firstlineno
    try:
        for start, end, line in code.co_lines():
            if start <= offset < end:
                return line or 0
    except Exception:
        pass
    return 0


NO_LOCALS = ({}, None)
"""The locals of a frame that are not read."""

_ATOM, _TEXT_ATOM, _ADDRESS, _COPIED, _COPIED_DICT, _IMMUTABLE, _RENDERED = range(7)
_snapshot_kinds = {
    int: _ATOM, float: _ATOM, bool: _ATOM, type(None): _ATOM, complex: _ATOM,
    str: _TEXT_ATOM, bytes: _TEXT_ATOM,
    list: _COPIED, set: _COPIED, dict: _COPIED_DICT,
    tuple: _IMMUTABLE, frozenset: _IMMUTABLE,
}
"""How _locals_of keeps a value of exactly this type; other types are learnt on first sight."""


def _snapshot_kind(kind):
    """How _locals_of keeps a value of type ``kind`` that is not a builtin it knows; remembered.

    An object whose class keeps ``object.__repr__`` is kept as its type and
    address, all that repr shows; any other is rendered at once.
    """
    way = _repr_ways.get(kind) or _repr_way(kind)
    snapshot_kind = _ADDRESS if way[0] == _DEFAULT else _RENDERED
    if len(_snapshot_kinds) < 1024:
        _snapshot_kinds[kind] = snapshot_kind
    return snapshot_kind


def _locals_of(frame, budget_end):
    """A frame's locals as they are now, as ``(kept, texts)``.

    ``kept`` maps every name, in the frame's order, to a value that cannot
    change any more (a number, a string of at most MAX_REPR + 1 characters,
    a copy of a small container of those), to be rendered on the sender's
    thread. A name whose value could change once the application goes on
    maps to None there, and to its repr, finished now, in ``texts`` (None
    when there is no such name). Secret names are FILTERED; dunder names are
    left out.

    Every step here runs for every local of every frame of a crash, on the
    application's thread; the branches are ordered by how often they are
    taken, and the kind of each type is found with a single lookup.
    """
    texts = None
    try:
        f_locals = frame.f_locals
        if (
            type(f_locals) is dict
            and len(f_locals) <= MAX_LOCALS
            and _plain_local_names.issuperset(f_locals)
        ):
            # The usual case: names seen before, none secret or dunder, so
            # the namespace is copied at once.
            kept = f_locals.copy()
        else:
            kept, texts = _named_locals(f_locals)
        kinds = _snapshot_kinds
        scalars = _SCALARS
        # Values are replaced in place, so the locals keep their order.
        for name, value in kept.items():
            kind = kinds.get(type(value))
            if kind == _ATOM:
                continue
            if kind is None:
                kind = _snapshot_kind(type(value))
            if kind == _TEXT_ATOM:
                if len(value) > MAX_REPR:
                    kept[name] = value[: MAX_REPR + 1]
                continue
            if kind == _ADDRESS:
                # object.__repr__ shows only the type and address; formatted later.
                if texts is None:
                    texts = {}
                texts[name] = (type(value), id(value))
                kept[name] = None  # the queued event holds no reference to it
                continue
            if kind != _RENDERED and len(value) <= _FLAT_LIMIT:
                # A builtin container of at most _FLAT_LIMIT numbers and short
                # strings: its items cannot change, so a shallow copy renders
                # later exactly as the container would now. Secret keys of a
                # dict are filtered when it is rendered. (Gathering the items'
                # types with map(type, ...) in C measured no cheaper on
                # CPython 3.11 than this loop.)
                if kind == _COPIED_DICT:
                    if _harmless_names.issuperset(value) or _atoms_only(value.keys()):
                        items = value.values()
                    else:
                        items = None
                else:
                    items = value
                if items is not None:
                    for item in items:
                        if type(item) not in scalars and (type(item) is not str or len(item) > MAX_REPR):
                            break
                    else:
                        if kind != _IMMUTABLE:
                            kept[name] = value.copy()
                        continue
            if texts is None:
                texts = {}
            texts[name] = _repr_now(value, budget_end)
            kept[name] = None
    except Exception:
        # A module frame's namespace may change size under us while another
        # thread imports; a capture goes on without its locals.
        return NO_LOCALS
    return kept, texts


def _atoms_only(values):
    """Whether every one of ``values`` is a number or a string of at most MAX_REPR characters."""
    for item in values:
        if type(item) not in _SCALARS and not (type(item) is str and len(item) <= MAX_REPR):
            return False
    return True


def _named_locals(f_locals):
    """The slow path of _locals_of: names checked one by one, at most MAX_LOCALS.

    Returns ``(kept, texts)`` with secret names already FILTERED.
    """
    kept = {}
    texts = None
    kinds = _local_name_kinds
    try:
        for name, value in f_locals.items():
            kind = kinds.get(name)
            if kind is None:
                if type(name) is not str:
                    name = str(name)
                kind = _local_name_kind(name)
            if kind == _SKIP:
                continue
            if len(kept) >= MAX_LOCALS:
                break
            if kind == _FILTER:
                if texts is None:
                    texts = {}
                texts[name] = FILTERED
                value = None
            kept[name] = value
    except Exception:
        # A module frame's namespace may change size under us while another
        # thread imports; what was read so far is still worth sending.
        pass
    return kept, texts


def _repr_now(value, budget_end):
    """The repr of a value that could change later, bounded; or, for an object with
    ``object.__repr__``, its type and address, which is all that repr shows."""
    way = (_repr_ways.get(type(value)) or _repr_way(type(value)))[0]
    if way == _DEFAULT:
        return (type(value), id(value))
    try:
        text = repr(value) if way == _NATIVE else safe_repr(value, budget_end)
    except Exception:
        text = safe_repr(value, budget_end)
    if len(text) > MAX_REPR:
        text = text[: MAX_REPR - 3] + "..."
    return text


# --- the sender's half ------------------------------------------------------


def complete(pending, sdk_version, environment, release):
    """Turn a Pending into a protocol event dict."""
    import linecache

    source_cache = {}
    rendered_locals = {}
    built = {}  # id(frame tuple list) -> list of frame dicts
    exceptions = []
    for type_name, value, frames, chain_type in pending.chain:
        stack = built.get(id(frames))
        if stack is None:
            stack = [_frame_dict(frame, source_cache, linecache, rendered_locals) for frame in frames]
            built[id(frames)] = stack
        exceptions.append(
            {"type": type_name, "value": value, "stacktrace": stack, "chain_type": chain_type}
        )

    user, tags, contexts, breadcrumbs, _ = pending.scope
    context = {
        "sdk": {"name": "booboo-sdk", "version": sdk_version},
        "runtime": {"name": "Python", "version": _python_version()},
    }
    for name, data in contexts.items():
        context[name] = dict(data)
    if user:
        context["user"] = dict(user)
    all_tags = dict(tags)
    all_tags["runtime"] = "python"

    event = {"event_id": pending.event_id, "timestamp": rfc3339(pending.created)}
    event.update(pending.base)
    if exceptions:
        event["stacktrace"] = exceptions[0]["stacktrace"]
    elif pending.stack:
        event["stacktrace"] = [_frame_dict(frame, source_cache, linecache, rendered_locals)
                               for frame in pending.stack]
    else:
        event["stacktrace"] = []
    event["exceptions"] = exceptions
    event["context"] = context
    event["tags"] = all_tags
    event["environment"] = environment
    event["release"] = release
    if breadcrumbs:
        event["breadcrumbs"] = [_breadcrumb_dict(crumb) for crumb in breadcrumbs]
    return event


def _breadcrumb_dict(crumb):
    timestamp, kind, category, message, level, data = crumb
    out = {"timestamp": rfc3339(timestamp), "type": kind, "level": level}
    if category:
        out["category"] = category
    if message is not None:
        out["message"] = message
    if data:
        out["data"] = {key: FILTERED if isinstance(key, str) and is_sensitive(key) else value
                       for key, value in data.items()}
    return out


def _python_version():
    info = sys.version_info
    text = "%d.%d.%d" % (info[0], info[1], info[2])
    if info[3] != "final":
        text += "%s%d" % ({"alpha": "a", "beta": "b", "candidate": "rc"}.get(info[3], ""), info[4])
    return text


def rfc3339(seconds):
    whole = int(seconds)
    micros = int((seconds - whole) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%06dZ" % micros


def _rendered(local_vars):
    """A frame's locals, ``(kept, texts)`` from _locals_of, as the protocol's name-to-repr dict."""
    kept, texts = local_vars
    rendered = {}
    for name, value in kept.items():
        text = texts.get(name) if texts is not None else None
        if text is None:
            text = safe_repr(value, time.perf_counter() + REPR_TIME_LIMIT)
        elif type(text) is tuple:
            text = _default_repr(*text)
        rendered[name] = text
    return rendered


_type_module = type.__dict__["__module__"].__get__
_type_qualname = type.__dict__["__qualname__"].__get__
_type_plain_name = type.__dict__["__name__"].__get__


def _default_repr(kind, address):
    """What ``object.__repr__`` shows for an object of type ``kind`` at ``address``."""
    try:
        module = _type_module(kind)
    except Exception:
        module = None
    try:
        if type(module) is str and module != "builtins":
            text = "<%s.%s object at %#x>" % (module, _type_qualname(kind), address)
        else:
            text = "<%s object at %#x>" % (_type_plain_name(kind), address)
    except Exception as exc:
        text = "<object: repr() raised %s>" % _type_name(exc)
    if len(text) > MAX_REPR:
        text = text[: MAX_REPR - 3] + "..."
    return text


def _frame_dict(frame, source_cache, linecache, rendered_locals):
    code, offset, lineno, local_vars, module_globals = frame
    filename, function = code.co_filename, code.co_name
    if lineno is None:
        lineno = _line_number(code, offset)
    # A frame shared by several exceptions of a chain has its locals read
    # once; frames whose locals were not read each get a dict of their own,
    # so a before_send that fills one does not fill them all.
    if local_vars is NO_LOCALS:
        rendered = {}
    else:
        rendered = rendered_locals.get(id(local_vars))
        if rendered is None:
            rendered = rendered_locals[id(local_vars)] = _rendered(local_vars)
    lines = source_cache.get(filename)
    if lines is None:
        lines = _source_lines(filename, module_globals, linecache)
        source_cache[filename] = lines
    index = lineno - 1
    if 0 <= index < len(lines):
        context_line = _source_line(lines[index])
        pre = [_source_line(line) for line in lines[max(0, index - CONTEXT_LINES) : index]]
        post = [_source_line(line) for line in lines[index + 1 : index + 1 + CONTEXT_LINES]]
    else:
        context_line, pre, post = "", [], []
    return {
        "filename": filename,
        "function": function,
        "lineno": lineno,
        "context_line": context_line,
        "pre_context": pre,
        "post_context": post,
        "vars": rendered,
        "in_app": is_in_app(filename),
    }


def _source_lines(filename, module_globals, linecache):
    try:
        # The file may have been edited since it was imported (a reloading
        # development server); checkcache drops the stale copy.
        linecache.checkcache(filename)
        return linecache.getlines(filename, module_globals)
    except Exception:
        # linecache swallows unreadable and undecodable files itself; this
        # is for loaders that raise something else.
        return []


def _source_line(line):
    line = line.rstrip("\r\n")
    if len(line) > MAX_SOURCE_LINE:
        line = line[: MAX_SOURCE_LINE - 3] + "..."
    return line


_library_roots = None


def is_in_app(filename):
    """False for the standard library, installed packages and this SDK."""
    global _library_roots
    if filename.startswith("<"):
        return not filename.startswith("<frozen")
    for marker in ("site-packages", "dist-packages"):
        if marker in filename:
            for sep in ("/", "\\"):
                if sep + marker + sep in filename:
                    return False
    if _library_roots is None:
        roots = set()
        for path in (os.path.dirname(os.__file__), os.path.dirname(__file__)):
            roots.add(os.path.join(path, ""))
            roots.add(os.path.join(os.path.realpath(path), ""))
        _library_roots = tuple(roots)
    return not filename.startswith(_library_roots)


# --- request data from the framework integrations ---------------------------


def request_data(method, url, headers, query_string):
    """The protocol's ``request`` object, with secrets in headers and query removed."""
    scrubbed = {}
    for name, value in headers:
        lower = name.lower()
        if lower in _SENSITIVE_HEADERS or is_sensitive(lower):
            value = FILTERED
        if name in scrubbed:
            scrubbed[name] += ", " + value
        else:
            scrubbed[name] = value
    return {
        "method": method,
        "url": url,
        "headers": scrubbed,
        "query_string": scrub_query(query_string),
    }


def wsgi_request_data(environ):
    """``request`` for a WSGI environ: the URL without its query, scrubbed headers and query."""
    scheme = environ.get("wsgi.url_scheme") or "http"
    host = environ.get("HTTP_HOST")
    if not host:
        host = environ.get("SERVER_NAME", "")
        port = environ.get("SERVER_PORT", "")
        if port and port != ("443" if scheme == "https" else "80"):
            host += ":" + port
    from urllib.parse import quote

    path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/;=,:@")
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").title(), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append((key.replace("_", "-").title(), value))
    return request_data(environ.get("REQUEST_METHOD", ""), "%s://%s%s" % (scheme, host, path), headers,
                        environ.get("QUERY_STRING", ""))


def scrub_query(query_string):
    """Replace the values of query parameters whose names look secret."""
    if not query_string:
        return ""
    pieces = []
    for piece in query_string.split("&"):
        name, sep, _ = piece.partition("=")
        if sep and is_sensitive(_unquote_name(name)):
            piece = name + "=" + FILTERED
        pieces.append(piece)
    return "&".join(pieces)


def _unquote_name(name):
    if "%" not in name and "+" not in name:
        return name
    from urllib.parse import unquote_plus

    return unquote_plus(name)


# --- the body on the wire ---------------------------------------------------


def encode(event, limit=PROTOCOL_BODY_LIMIT):
    """Serialise an event to at most ``limit`` bytes of JSON.

    Returns ``(body, trimmed)``; ``body`` is None when even the harshest
    trimming leaves it too large. Trimming changes ``event`` in place, in
    this order: locals, then source context lines, then frames from the
    middle of long stacks, then long texts.
    """
    body = _dumps(event)
    if len(body) <= limit:
        return body, False
    for step in _TRIM_STEPS:
        if step(event):
            body = _dumps(event)
            if len(body) <= limit:
                return body, True
    return None, True


def _dumps(value):
    import json

    return json.dumps(
        value,
        ensure_ascii=False,
        separators=(",", ":"),
        skipkeys=True,
        default=_json_fallback,
        allow_nan=False,
    ).encode("utf-8", "replace")  # a lone surrogate is not valid UTF-8 for any server


def _json_fallback(value):
    # before_send may put anything in the event; sending its repr beats
    # losing the event.
    return safe_repr(value, time.perf_counter() + REPR_TIME_LIMIT)


_KEEP_NEAR_RAISE = 5


def _keep_newest_breadcrumbs(keep):
    def step(event):
        crumbs = event.get("breadcrumbs")
        if isinstance(crumbs, list) and len(crumbs) > keep:
            del crumbs[: len(crumbs) - keep]
            return True
        return False

    return step


def _stacks(event):
    stacks = {}
    candidates = [event.get("stacktrace")]
    for entry in event.get("exceptions") or ():
        if isinstance(entry, dict):
            candidates.append(entry.get("stacktrace"))
    for stack in candidates:
        if isinstance(stack, list):
            stacks[id(stack)] = stack
    return list(stacks.values())


def _frames(event, keep_near_raise):
    for stack in _stacks(event):
        cut = max(0, len(stack) - keep_near_raise)
        for frame in stack[:cut]:
            if isinstance(frame, dict):
                yield frame


def _drop_locals(keep_near_raise):
    def step(event):
        changed = False
        for frame in _frames(event, keep_near_raise):
            if frame.get("vars"):
                frame["vars"] = {}
                changed = True
        return changed

    return step


def _drop_context_lines(keep_near_raise):
    def step(event):
        changed = False
        for frame in _frames(event, keep_near_raise):
            if frame.get("pre_context") or frame.get("post_context"):
                frame["pre_context"] = []
                frame["post_context"] = []
                changed = True
        return changed

    return step


def _drop_middle_frames(keep):
    def step(event):
        changed = False
        for stack in _stacks(event):
            if len(stack) > keep:
                head = keep // 4
                stack[:] = stack[:head] + stack[len(stack) - (keep - head) :]
                changed = True
        return changed

    return step


def _shorten_texts(event):
    changed = False
    limit = 1024
    if isinstance(event.get("message"), str) and len(event["message"]) > limit:
        event["message"] = event["message"][: limit - 3] + "..."
        changed = True
    for entry in event.get("exceptions") or ():
        if isinstance(entry, dict) and isinstance(entry.get("value"), str) and len(entry["value"]) > limit:
            entry["value"] = entry["value"][: limit - 3] + "..."
            changed = True
    for frame in _frames(event, 0):
        line = frame.get("context_line")
        if isinstance(line, str) and len(line) > 200:
            frame["context_line"] = line[:197] + "..."
            changed = True
    return changed


_TRIM_STEPS = (
    _drop_locals(_KEEP_NEAR_RAISE),
    _drop_locals(0),
    _drop_context_lines(_KEEP_NEAR_RAISE),
    _drop_context_lines(0),
    _keep_newest_breadcrumbs(50),
    _keep_newest_breadcrumbs(10),
    _keep_newest_breadcrumbs(0),
    _drop_middle_frames(200),
    _drop_middle_frames(100),
    _drop_middle_frames(50),
    _drop_middle_frames(20),
    _shorten_texts,
)
