"""tickwheel from Python: the wheel, the loop and connections, through ctypes.

The module loads the shared library at its first use and needs no compiler:
the library named by load(path), else by the environment variable
TICKWHEEL_LIB, else the one ctypes.util.find_library("tickwheel") finds,
else libtickwheel.so.0 from the dynamic linker's search path.

Constants come from the library itself, not from a copy of the header:
TW_NEVER is what tw_idle_timeout_ns answers for two zero timeouts, the
TW_E* codes are the values tw_err_name names, and the default tick is what
tw_wheel_config_init writes.  The connection kinds (TW_CONN_IDLE ...) are the
header's enumeration, which the library does not export; a Loop checks their
count against the library when it makes its first connection.

Callbacks.  Every timer of a Wheel or Loop is armed with one C trampoline;
the Python callable is kept in the owner's table from the schedule until
the timer fires (unless its callback re-arms it) or is cancelled, and is
released then, so any number of distinct closures may be armed at once.
A callback that raises does not stop the others due in the same call: the
exception is recorded and raised again by the call that ran the callbacks
(advance, process, run, or a call that read an injected clock) once that
call has returned; when several raise, the first is raised and notes on it
name the others.  run() stops after the turn in which a callback raised.

Objects are used from one thread at a time, as the C objects are; only
Loop.stop may be called from another thread.  close() (or the end of a
with block) frees the C object; it may be called from one of the object's
own callbacks, as the C functions allow.  The full semantics are the C
library's: tickwheel(3) and the pages it lists; this module is described in
tickwheel-python(3).
"""

import ctypes
import ctypes.util
import itertools
import os
import weakref
from collections import namedtuple
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_char_p, c_int,
                    c_size_t, c_uint, c_uint32, c_uint64, c_void_p)

__all__ = [
    "TickwheelError", "Wheel", "Loop", "Conn", "Timer", "ConnEvent",
    "ManualClock", "load", "version",
    "TW_CONN_IDLE", "TW_CONN_CONNECT", "TW_CONN_PATH_VALIDATION",
    "TW_CONN_RETRANSMIT", "TW_CONN_ACK_DELAY", "TW_CONN_KEEPALIVE",
    "TW_CONN_PACING", "TW_CONN_CLOSE", "TW_CONN_KINDS",
    "TW_PERIODIC_CATCH_UP", "TW_PERIODIC_SKIP",
]

_U64_MAX = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1

# The connection kinds, in the order of the header's enumeration.
TW_CONN_IDLE = 0
TW_CONN_CONNECT = 1
TW_CONN_PATH_VALIDATION = 2
TW_CONN_RETRANSMIT = 3
TW_CONN_ACK_DELAY = 4
TW_CONN_KEEPALIVE = 5
TW_CONN_PACING = 6
TW_CONN_CLOSE = 7
TW_CONN_KINDS = 8
_CONN_MAX_LAYERS = 4
# Policies of schedule_periodic, as the header's TW_PERIODIC_*.
TW_PERIODIC_CATCH_UP = 0
TW_PERIODIC_SKIP = 1
_kinds_checked = False

# --------------------------------------------------------------------------
# Structures, as include/tickwheel.h lays them out.


class _WheelConfig(Structure):
    _fields_ = [("struct_size", c_size_t), ("tick_ns", c_uint64),
                ("max_timers", c_uint32), ("initial_timers", c_uint32)]


_WHEEL_STATS = ("now_ns", "live", "scheduled", "rescheduled", "cancelled",
                "fired", "cascaded", "capacity", "high_water", "reused",
                "bytes", "late_p50_ns", "late_p99_ns", "late_max_ns")
_LOOP_STATS = ("now_ns", "turns", "wakeups", "rearms", "fired",
               "budget_stops", "longest_turn_ns", "late_p50_ns",
               "late_p99_ns", "late_max_ns", "inbox_depth",
               "inbox_high_water", "inbox_refused", "inbox_run",
               "clock_backwards", "suspend_ns", "budget_time_stops",
               "batches_direct", "batches_handoff", "items_direct",
               "items_handoff", "catch_ups")
_CONN_STATS = ("live", "created", "arms", "lazy_arms", "wheel_ops",
               "wakeups", "early_wakeups", "events", "dropped",
               "batches_direct", "batches_handoff", "bytes")


def _stats_struct(name, fields):
    return type(name, (Structure,), {
        "_fields_": [("struct_size", c_size_t)] + [(f, c_uint64) for f in fields]})


_WheelStatsC = _stats_struct("_WheelStatsC", _WHEEL_STATS)
_LoopStatsC = _stats_struct("_LoopStatsC", _LOOP_STATS)
_ConnStatsC = _stats_struct("_ConnStatsC", _CONN_STATS)

WheelStats = namedtuple("WheelStats", _WHEEL_STATS)
LoopStats = namedtuple("LoopStats", _LOOP_STATS)
ConnStats = namedtuple("ConnStats", _CONN_STATS)

_TIMER_CB = CFUNCTYPE(None, c_uint64, c_uint64, c_void_p)
_CLOCK_FN = CFUNCTYPE(c_uint64, c_void_p)
_LOG_FN = CFUNCTYPE(None, c_int, c_char_p, c_void_p)


class _LoopConfig(Structure):
    _fields_ = [("struct_size", c_size_t), ("tick_ns", c_uint64),
                ("max_timers", c_uint32), ("inbox_capacity", c_uint32),
                ("budget_callbacks", c_uint32), ("clock", _CLOCK_FN),
                ("clock_userdata", c_void_p), ("log", _LOG_FN),
                ("log_userdata", c_void_p), ("batch_threshold", c_uint32),
                ("budget_ns", c_uint64)]


class _ConnEventC(Structure):
    _fields_ = [("conn", c_void_p), ("conn_id", c_uint32),
                ("reserved", c_uint32),
                ("events", c_uint32 * _CONN_MAX_LAYERS),
                ("now_ns", c_uint64), ("userdata", c_void_p)]


_CONN_CB = CFUNCTYPE(None, POINTER(_ConnEventC), c_void_p)
_NO_CONN_CB = _CONN_CB()        # NULL: queue mode

# --------------------------------------------------------------------------
# Loading the library.

_lib = None
_lib_path = None
_constants = {}

_P = c_void_p
_PROTOTYPES = {
    "tw_strerror": (ctypes.c_char_p, [c_int]),
    "tw_err_name": (ctypes.c_char_p, [c_int]),
    "tw_version": (ctypes.c_char_p, []),
    "tw_idle_timeout_ns": (c_uint64, [c_uint64, c_uint64, c_uint64]),
    "tw_wheel_config_init": (None, [_P]),
    "tw_wheel_new": (c_int, [_P, c_uint64, POINTER(c_void_p)]),
    "tw_wheel_free": (None, [_P]),
    "tw_wheel_schedule": (c_int, [_P, c_uint64, _TIMER_CB, _P, POINTER(c_uint64)]),
    "tw_wheel_schedule_relative": (c_int, [_P, c_uint64, _TIMER_CB, _P, POINTER(c_uint64)]),
    "tw_wheel_schedule_slack": (c_int, [_P, c_uint64, c_uint64, _TIMER_CB, _P,
                                        POINTER(c_uint64)]),
    "tw_wheel_cancel": (c_int, [_P, c_uint64]),
    "tw_wheel_reschedule": (c_int, [_P, c_uint64, c_uint64]),
    "tw_wheel_schedule_periodic": (c_int, [_P, c_uint64, c_uint64, c_uint, _TIMER_CB, _P,
                                           POINTER(c_uint64)]),
    "tw_wheel_deadline": (c_int, [_P, c_uint64, POINTER(c_uint64)]),
    "tw_wheel_period": (c_int, [_P, c_uint64, POINTER(c_uint64)]),
    "tw_wheel_next_deadline": (c_int, [_P, POINTER(c_uint64)]),
    "tw_wheel_advance": (c_int, [_P, c_uint64]),
    "tw_wheel_advance_max": (c_int, [_P, c_uint64, c_uint32]),
    "tw_wheel_now": (c_uint64, [_P]),
    "tw_wheel_stats_get": (c_int, [_P, _P]),
    "tw_wheel_verify": (c_int, [_P]),
    "tw_loop_config_init": (None, [_P]),
    "tw_loop_new": (c_int, [_P, _P, POINTER(c_void_p)]),
    "tw_loop_free": (None, [_P]),
    "tw_loop_run": (c_int, [_P]),
    "tw_loop_stop": (c_int, [_P]),
    "tw_loop_process": (c_int, [_P]),
    "tw_loop_fd": (c_int, [_P]),
    "tw_loop_now": (c_uint64, [_P]),
    "tw_loop_next_deadline": (c_int, [_P, POINTER(c_uint64)]),
    "tw_loop_schedule": (c_int, [_P, c_uint64, _TIMER_CB, _P, POINTER(c_uint64)]),
    "tw_loop_schedule_relative": (c_int, [_P, c_uint64, _TIMER_CB, _P, POINTER(c_uint64)]),
    "tw_loop_schedule_slack": (c_int, [_P, c_uint64, c_uint64, _TIMER_CB, _P,
                                       POINTER(c_uint64)]),
    "tw_loop_schedule_periodic": (c_int, [_P, c_uint64, c_uint64, c_uint, _TIMER_CB, _P,
                                          POINTER(c_uint64)]),
    "tw_loop_deadline": (c_int, [_P, c_uint64, POINTER(c_uint64)]),
    "tw_loop_period": (c_int, [_P, c_uint64, POINTER(c_uint64)]),
    "tw_loop_cancel": (c_int, [_P, c_uint64]),
    "tw_loop_reschedule": (c_int, [_P, c_uint64, c_uint64]),
    "tw_loop_stats_get": (c_int, [_P, _P]),
    "tw_conn_new": (c_int, [_P, c_uint32, _CONN_CB, _P, POINTER(c_void_p)]),
    "tw_conn_free": (None, [_P]),
    "tw_conn_id": (c_uint32, [_P]),
    "tw_conn_arm": (c_int, [_P, c_uint, c_uint64]),
    "tw_conn_arm_in": (c_int, [_P, c_uint, c_uint64]),
    "tw_conn_disarm": (c_int, [_P, c_uint]),
    "tw_conn_disarm_all": (c_int, [_P]),
    "tw_conn_deadline": (c_int, [_P, c_uint, POINTER(c_uint64)]),
    "tw_conn_armed": (c_uint32, [_P]),
    "tw_conn_set_idle_timeout": (c_int, [_P, c_uint64]),
    "tw_conn_set_slack": (c_int, [_P, c_uint, c_uint64]),
    "tw_conn_touch": (c_int, [_P]),
    "tw_conn_next_deadline": (c_int, [_P, POINTER(c_uint64)]),
    "tw_conn_poll": (c_int, [_P, POINTER(_ConnEventC), c_size_t]),
    "tw_conn_stats_get": (c_int, [_P, _P]),
}


def load(path=None):
    """Loads the library (once) and returns its path.

    path, or TICKWHEEL_LIB, names the file; without either the library is
    looked up by name.  A second call with another path raises RuntimeError.
    """
    global _lib, _lib_path
    if _lib is not None:
        if path is not None and os.path.realpath(path) != os.path.realpath(_lib_path):
            raise RuntimeError("tickwheel is already loaded from %s" % _lib_path)
        return _lib_path
    name = path or os.environ.get("TICKWHEEL_LIB") or \
        ctypes.util.find_library("tickwheel") or "libtickwheel.so.0"
    lib = ctypes.CDLL(name)
    for fn, (restype, argtypes) in _PROTOTYPES.items():
        f = getattr(lib, fn)
        f.restype = restype
        f.argtypes = argtypes
    _constants.update(_read_constants(lib))
    _lib, _lib_path = lib, name
    return name


def _read_constants(lib):
    consts = {}
    names = {}
    # The codes are negative errno values: every one lies in -1 .. -4095.
    for code in range(-1, -4096, -1):
        name = lib.tw_err_name(code)
        if name is not None:
            names[code] = name.decode()
            consts[name.decode()] = code
    consts["ERRORS"] = dict(names)
    consts["TW_NEVER"] = lib.tw_idle_timeout_ns(0, 0, 0)
    cfg = _WheelConfig()
    lib.tw_wheel_config_init(byref(cfg))
    consts["TW_TICK_DEFAULT_NS"] = cfg.tick_ns
    return consts


def _L():
    if _lib is None:
        load()
    return _lib


def __getattr__(name):
    # TW_NEVER, TW_E*, ERRORS, TW_TICK_DEFAULT_NS: read from the library
    # at first use.
    if name == "TW_NEVER" or name == "ERRORS" or name.startswith("TW_"):
        _L()
        if name in _constants:
            return _constants[name]
    raise AttributeError("module 'tickwheel' has no attribute %r" % name)


def __dir__():
    _L()
    return sorted(set(globals()) | set(_constants))


def version():
    """The library's version string, as tw_version gives it."""
    return _L().tw_version().decode()


# --------------------------------------------------------------------------
# Errors.


class TickwheelError(Exception):
    """A TW_E* code returned by the library.

    code is the negative value, name its TW_E* name (tw_err_name), strerror
    the library's text for it (tw_strerror), function the C function that
    returned it.
    """

    def __init__(self, code, function=None):
        lib = _L()
        name = lib.tw_err_name(code)
        self.code = code
        self.name = name.decode() if name else "TW_E?(%d)" % code
        self.strerror = lib.tw_strerror(code).decode()
        self.function = function
        where = "%s: " % function if function else ""
        super().__init__("%s%s: %s" % (where, self.name, self.strerror))


def _check(r, function):
    if r < 0:
        raise TickwheelError(r, function)
    return r


def _u64(value, what):
    try:
        v = value.__index__()
    except AttributeError:
        raise TypeError("%s must be an integer, not %s" % (what, type(value).__name__)) from None
    if not 0 <= v <= _U64_MAX:
        raise ValueError("%s out of the range of uint64_t: %d" % (what, v))
    return v


def _u32(value, what):
    v = _u64(value, what)
    if v > _U32_MAX:
        raise ValueError("%s out of the range of uint32_t: %d" % (what, v))
    return v


def _callable(fn):
    if not callable(fn):
        raise TypeError("callback must be callable, not %s" % type(fn).__name__)
    return fn


# --------------------------------------------------------------------------
# The trampolines: one C function per kind of callback for the whole
# process.  Their userdata is the token of the Python object they serve,
# looked up weakly, so a C object never keeps its Python owner alive.

_owners = weakref.WeakValueDictionary()
_tokens = itertools.count(1)


def _register(owner):
    token = next(_tokens)
    _owners[token] = owner
    return token


# Each catches what it calls: an exception must never reach ctypes, which
# would print it and carry on.
@_TIMER_CB
def _timer_trampoline(timer, deadline_ns, token):
    owner = _owners.get(token)
    if owner is not None:
        try:
            owner._fire(timer, deadline_ns)
        except BaseException as e:
            owner._record(e)


@_CLOCK_FN
def _clock_trampoline(token):
    owner = _owners.get(token)
    if owner is None:
        return 0
    return owner._read_clock()


@_LOG_FN
def _log_trampoline(level, message, token):
    owner = _owners.get(token)
    if owner is not None:
        owner._log_message(level, message)


@_CONN_CB
def _conn_trampoline(event, token):
    owner = _owners.get(token)
    if owner is not None:
        owner._conn_event(event.contents)


class _Owner:
    """What a Wheel and a Loop share: the timer table and recorded errors."""

    _prefix = ""    # "tw_wheel" or "tw_loop": the C functions' prefix

    def _fn(self, verb):
        return "%s_%s" % (self._prefix, verb)

    def _setup(self):
        self._ptr = None
        self._timers = {}        # handle -> (Timer, callable): armed timers
        self._running = 0        # the handle whose callback runs
        self._errors = []
        self._token = _register(self)

    # The table: a timer's callable lives here exactly while it is armed.
    # A firing timer leaves it, and comes back after its callback if it is
    # armed again then: periodic, or rescheduled by the callback.
    def _fire(self, handle, deadline_ns):
        entry = self._timers.pop(handle, None)
        if entry is None:
            return
        outer, self._running = self._running, handle
        try:
            entry[1](entry[0], deadline_ns)
        except BaseException as e:
            self._record(e)
        finally:
            self._running = outer
            if self._armed(handle):
                self._timers[handle] = entry

    def _armed(self, handle):
        if self._ptr is None:
            return False
        ret = c_uint64()
        return getattr(_L(), self._fn("deadline"))(self._ptr, handle, byref(ret)) == 0

    def _record(self, exc):
        self._errors.append(exc)

    def _raise_since(self, mark):
        """Raises what callbacks recorded since len(self._errors) was mark:
        the errors of the call that just returned.  Those of an outer call
        (a callback of this object calling it) stay for that call."""
        if len(self._errors) <= mark:
            return
        errors = self._errors[mark:]
        del self._errors[mark:]
        first = errors[0]
        if len(errors) > 1 and hasattr(first, "add_note"):
            for e in errors[1:]:
                first.add_note("also raised by a callback of the same call: %r" % (e,))
        raise first

    def _live(self):
        if self._ptr is None:
            raise ValueError("operation on a closed %s" % type(self).__name__)
        return self._ptr

    def _handle(self, timer):
        if isinstance(timer, Timer):
            if timer._owner() is not self:
                raise ValueError("the timer belongs to another %s" % type(self).__name__)
            return timer.handle
        return _u64(timer, "timer")

    def _schedule(self, cfn, args, callback):
        callback = _callable(callback)
        ptr = self._live()
        ret = c_uint64(0)
        mark = len(self._errors)
        r = getattr(_L(), cfn)(ptr, *args, _timer_trampoline, self._token, byref(ret))
        if len(self._errors) > mark:
            # An injected clock raised: the call does not happen.
            if r == 0:
                getattr(_L(), self._fn("cancel"))(ptr, ret.value)
            self._raise_since(mark)
        _check(r, cfn)
        timer = Timer(self, ret.value)
        self._timers[ret.value] = (timer, callback)
        return timer

    def schedule(self, deadline_ns, callback):
        """Arms callback at deadline_ns; returns its Timer."""
        return self._schedule(self._fn("schedule"), (_u64(deadline_ns, "deadline_ns"),),
                              callback)

    def schedule_relative(self, delay_ns, callback):
        """Arms callback at now() + delay_ns (saturating at TW_NEVER)."""
        return self._schedule(self._fn("schedule_relative"), (_u64(delay_ns, "delay_ns"),),
                              callback)

    def schedule_slack(self, deadline_ns, slack_ns, callback):
        """Arms callback anywhere in [deadline_ns, deadline_ns + slack_ns]."""
        return self._schedule(self._fn("schedule_slack"),
                              (_u64(deadline_ns, "deadline_ns"), _u64(slack_ns, "slack_ns")),
                              callback)

    def cancel(self, timer):
        """Disarms timer; TickwheelError TW_ENOENT when it is stale."""
        cfn = self._fn("cancel")
        h = self._handle(timer)
        _check(getattr(_L(), cfn)(self._live(), h), cfn)
        self._timers.pop(h, None)

    def reschedule(self, timer, deadline_ns):
        """Moves timer, or re-arms the one whose callback runs."""
        cfn = self._fn("reschedule")
        h = self._handle(timer)
        d = _u64(deadline_ns, "deadline_ns")
        _check(getattr(_L(), cfn)(self._live(), h, d), cfn)

    def _query(self, cfn, timer):
        ret = c_uint64()
        _check(getattr(_L(), cfn)(self._live(), self._handle(timer), byref(ret)), cfn)
        return ret.value

    def deadline(self, timer):
        """The deadline timer will fire at; TW_ENOENT when it is stale."""
        return self._query(self._fn("deadline"), timer)

    def period(self, timer):
        """The period of a periodic timer; TW_ENOENT for any other."""
        return self._query(self._fn("period"), timer)

    def schedule_periodic(self, first_ns, period_ns, callback, skip=False):
        """Arms callback at first_ns, then every period_ns after it, never
        drifting.  Periods missed at once fire one after the other, or,
        with skip, once.  Cancel it to stop it."""
        return self._schedule(self._fn("schedule_periodic"),
                              (_u64(first_ns, "first_ns"), _u64(period_ns, "period_ns"),
                               TW_PERIODIC_SKIP if skip else TW_PERIODIC_CATCH_UP),
                              callback)

    def __len__(self):
        """Timers armed from Python (the one whose callback runs is not)."""
        return len(self._timers)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self):
        return self._ptr is None


class Timer:
    """A timer of a Wheel or Loop: its handle and the object it belongs to.

    Two Timer objects are equal when they name the same timer.  A timer that
    fired or was cancelled is stale: its handle answers TW_ENOENT.
    """

    __slots__ = ("_owner", "handle", "__weakref__")

    def __init__(self, owner, handle):
        self._owner = weakref.ref(owner)
        self.handle = handle

    @property
    def owner(self):
        owner = self._owner()
        if owner is None:
            raise ValueError("the timer's owner no longer exists")
        return owner

    @property
    def active(self):
        """True while the timer is armed."""
        owner = self._owner()
        return owner is not None and (self.handle in owner._timers or
                                      (owner._running == self.handle and
                                       owner._armed(self.handle)))

    def cancel(self):
        self.owner.cancel(self)

    def reschedule(self, deadline_ns):
        self.owner.reschedule(self, deadline_ns)

    def __int__(self):
        return self.handle

    __index__ = __int__

    def __eq__(self, other):
        if isinstance(other, Timer):
            return self.handle == other.handle and self._owner() is other._owner()
        return NotImplemented

    def __hash__(self):
        return hash(self.handle)

    def __repr__(self):
        return "<tickwheel.Timer %#x%s>" % (self.handle, "" if self.active else " (stale)")


# --------------------------------------------------------------------------
# The wheel.


class Wheel(_Owner):
    """A timing wheel whose time the caller moves: tw_wheel_new(3).

    Wheel(now_ns=0, tick_ns=None, max_timers=0, initial_timers=0).  Times
    are integers in nanoseconds; callbacks are called as
    callback(timer, deadline_ns) from advance() and advance_max().
    """

    def __init__(self, now_ns=0, tick_ns=None, max_timers=0, initial_timers=0):
        lib = _L()
        self._setup()
        cfg = _WheelConfig()
        lib.tw_wheel_config_init(byref(cfg))
        if tick_ns is not None:
            cfg.tick_ns = _u64(tick_ns, "tick_ns")
        cfg.max_timers = _u32(max_timers, "max_timers")
        cfg.initial_timers = _u32(initial_timers, "initial_timers")
        ptr = c_void_p()
        _check(lib.tw_wheel_new(byref(cfg), _u64(now_ns, "now_ns"), byref(ptr)),
               "tw_wheel_new")
        self._ptr = ptr.value
        self._finalizer = weakref.finalize(self, lib.tw_wheel_free, ptr.value)

    def close(self):
        """Frees the wheel; armed timers are dropped without their callbacks.
        From a callback, the advance runs no further callback."""
        if self._ptr is None:
            return
        self._ptr = None
        self._finalizer()
        self._timers.clear()

    _prefix = "tw_wheel"

    def next_deadline(self):
        """A time never later than the earliest deadline; None when nothing
        will fire."""
        ret = c_uint64()
        r = _L().tw_wheel_next_deadline(self._live(), byref(ret))
        if r == _constants["TW_ENOENT"]:
            return None
        _check(r, "tw_wheel_next_deadline")
        return ret.value

    def advance(self, now_ns):
        """Moves the time to now_ns and fires what is due; returns how many
        fired, or raises what a callback raised."""
        mark = len(self._errors)
        r = _L().tw_wheel_advance(self._live(), _u64(now_ns, "now_ns"))
        self._after_advance(mark)
        return _check(r, "tw_wheel_advance")

    def advance_max(self, now_ns, max_callbacks):
        """As advance(), running at most max_callbacks callbacks (0: all)."""
        mark = len(self._errors)
        r = _L().tw_wheel_advance_max(self._live(), _u64(now_ns, "now_ns"),
                                      _u32(max_callbacks, "max_callbacks"))
        self._after_advance(mark)
        return _check(r, "tw_wheel_advance_max")

    def _after_advance(self, mark):
        if self._ptr is None:          # closed by a callback
            self._timers.clear()
        self._raise_since(mark)

    def now(self):
        return _L().tw_wheel_now(self._live())

    def stats(self):
        s = _WheelStatsC(struct_size=ctypes.sizeof(_WheelStatsC))
        _check(_L().tw_wheel_stats_get(self._live(), byref(s)), "tw_wheel_stats_get")
        return WheelStats(*(getattr(s, f) for f in _WHEEL_STATS))

    def verify(self):
        """Checks the wheel's invariants; TickwheelError TW_EUCLEAN if one fails."""
        _check(_L().tw_wheel_verify(self._live()), "tw_wheel_verify")

    def __repr__(self):
        if self._ptr is None:
            return "<tickwheel.Wheel closed>"
        return "<tickwheel.Wheel now=%d timers=%d>" % (self.now(), len(self))


# --------------------------------------------------------------------------
# The loop and its connections.


class ManualClock:
    """A clock for Loop(clock=...): time moves only when the caller says."""

    def __init__(self, now_ns=0):
        self.now_ns = _u64(now_ns, "now_ns")

    def __call__(self):
        return self.now_ns

    def advance(self, delta_ns):
        self.now_ns = _u64(self.now_ns + delta_ns, "now_ns")
        return self.now_ns

    def set(self, now_ns):
        self.now_ns = _u64(now_ns, "now_ns")
        return self.now_ns


class Loop(_Owner):
    """A wheel on a libevent base of its own: tw_loop_new(3).

    Loop(clock=None, log=None, tick_ns=None, max_timers=None,
    budget_callbacks=None, budget_ns=None, batch_threshold=None,
    inbox_capacity=None).  clock, a callable returning nanoseconds, replaces
    the built-in clock (a loop with one is driven with process() after the
    clock moves); log is called as log(level, message).  None keeps a
    default.  Timer callbacks are called as callback(timer, deadline_ns),
    connection callbacks as callback(event), in process() or run().
    """

    def __init__(self, clock=None, log=None, tick_ns=None, max_timers=None,
                 budget_callbacks=None, budget_ns=None, batch_threshold=None,
                 inbox_capacity=None):
        lib = _L()
        self._setup()
        self._clock = _callable(clock) if clock is not None else None
        self._clock_last = 0
        self._log = _callable(log) if log is not None else None
        self._conns = {}         # tw_conn pointer -> Conn, the live ones
        self._in_run = False
        cfg = _loop_config()
        for name, value, conv in (("tick_ns", tick_ns, _u64), ("max_timers", max_timers, _u32),
                                  ("budget_callbacks", budget_callbacks, _u32),
                                  ("budget_ns", budget_ns, _u64),
                                  ("batch_threshold", batch_threshold, _u32),
                                  ("inbox_capacity", inbox_capacity, _u32)):
            if value is not None:
                setattr(cfg, name, conv(value, name))
        if self._clock is not None:
            cfg.clock = _clock_trampoline
            cfg.clock_userdata = self._token
        if self._log is not None:
            cfg.log = _log_trampoline
            cfg.log_userdata = self._token
        ptr = c_void_p()
        r = lib.tw_loop_new(None, byref(cfg), byref(ptr))
        if self._errors and r == 0:
            lib.tw_loop_free(ptr.value)
        self._raise_since(0)
        _check(r, "tw_loop_new")
        self._ptr = ptr.value
        self._finalizer = weakref.finalize(self, lib.tw_loop_free, ptr.value)

    def close(self):
        """Frees the loop and its connections; armed timers are dropped
        without their callbacks.  From a callback, the turn runs no further
        callback and run() returns."""
        if self._ptr is None:
            return
        self._ptr = None
        self._finalizer()
        self._timers.clear()
        conns, self._conns = self._conns, {}
        for c in conns.values():
            c._ptr = None

    # Callbacks from C.
    def _read_clock(self):
        try:
            now = _u64(self._clock(), "the clock's reading")
        except BaseException as e:
            self._record(e)
            return self._clock_last
        self._clock_last = now
        return now

    def _log_message(self, level, message):
        try:
            self._log(level, message.decode(errors="replace"))
        except BaseException as e:
            self._record(e)

    def _conn_event(self, ev):
        conn = self._conns.get(ev.conn)
        if conn is None or conn._callback is None:
            return
        try:
            conn._callback(ConnEvent(conn, ev))
        except BaseException as e:
            self._record(e)

    def _record(self, exc):
        self._errors.append(exc)
        if self._in_run and self._ptr is not None:
            _L().tw_loop_stop(self._ptr)

    def _done(self, r, function, mark):
        if self._ptr is None:
            self._timers.clear()
        self._raise_since(mark)
        return _check(r, function)

    # Running.
    def process(self):
        """Runs one turn: reads the clock, fires what is due.  Returns how
        many timers fired, or raises what a callback raised."""
        mark = len(self._errors)
        return self._done(_L().tw_loop_process(self._live()), "tw_loop_process", mark)

    def run(self):
        """Dispatches the loop's base until stop() or close(), or until a
        turn in which a callback raised, whose exception it raises."""
        ptr = self._live()
        mark = len(self._errors)
        self._in_run = True
        try:
            r = _L().tw_loop_run(ptr)
        finally:
            self._in_run = False
        return self._done(r, "tw_loop_run", mark)

    def stop(self):
        """Makes run() return after the current turn.  Any thread."""
        _check(_L().tw_loop_stop(self._live()), "tw_loop_stop")

    def now(self):
        """The loop's time: the turn's inside one, the clock read afresh
        outside."""
        mark = len(self._errors)
        r = _L().tw_loop_now(self._live())
        self._raise_since(mark)
        return r

    def next_deadline(self):
        """When the loop next needs a turn; None when it is idle."""
        ret = c_uint64()
        r = _L().tw_loop_next_deadline(self._live(), byref(ret))
        if r == _constants["TW_ENOENT"]:
            return None
        _check(r, "tw_loop_next_deadline")
        return ret.value

    @property
    def fd(self):
        """A descriptor that polls readable when a turn is needed (posts,
        and due timers with the built-in clock)."""
        return _check(_L().tw_loop_fd(self._live()), "tw_loop_fd")

    # Timers: schedule, cancel, reschedule, deadline and periodic ones
    # are _Owner's, on the tw_loop_ functions.
    _prefix = "tw_loop"

    # Connections.
    def connection(self, conn_id, callback=None):
        """A new connection with the caller's 32-bit id; see Conn."""
        return Conn(self, conn_id, callback)

    def poll(self, max_events=64):
        """Queue mode: up to max_events queued ConnEvents, oldest first."""
        cap = _u32(max_events, "max_events")
        buf = (_ConnEventC * max(cap, 1))()
        mark = len(self._errors)
        n = _L().tw_conn_poll(self._live(), buf, cap)
        self._raise_since(mark)
        _check(n, "tw_conn_poll")
        out = []
        for ev in buf[:n]:
            conn = self._conns.get(ev.conn)
            if conn is not None:
                out.append(ConnEvent(conn, ev))
        return out

    def stats(self):
        s = _LoopStatsC(struct_size=ctypes.sizeof(_LoopStatsC))
        _check(_L().tw_loop_stats_get(self._live(), byref(s)), "tw_loop_stats_get")
        return LoopStats(*(getattr(s, f) for f in _LOOP_STATS))

    def conn_stats(self):
        s = _ConnStatsC(struct_size=ctypes.sizeof(_ConnStatsC))
        _check(_L().tw_conn_stats_get(self._live(), byref(s)), "tw_conn_stats_get")
        return ConnStats(*(getattr(s, f) for f in _CONN_STATS))

    def __repr__(self):
        if self._ptr is None:
            return "<tickwheel.Loop closed>"
        return "<tickwheel.Loop timers=%d connections=%d>" % (len(self), len(self._conns))


def _loop_config():
    """tw_loop_config_init's defaults, in a structure the size the library
    expects (tw_loop_new refuses any other)."""
    lib = _L()
    room = (ctypes.c_char * (4 * ctypes.sizeof(_LoopConfig)))()
    lib.tw_loop_config_init(room)
    cfg = _LoopConfig.from_buffer_copy(room)
    if cfg.struct_size != ctypes.sizeof(_LoopConfig):
        raise RuntimeError("the library's tw_loop_config has %d bytes, this module's %d: "
                           "the module does not match the library" %
                           (cfg.struct_size, ctypes.sizeof(_LoopConfig)))
    return cfg


class ConnEvent:
    """What fired on a connection in one turn: tw_conn_event.

    kinds is the set of TW_CONN_* kinds whose deadlines passed (they are now
    disarmed); events the raw per-layer bits, events[0] holding
    1 << kind for each of them; now_ns the loop's time of the turn.
    """

    __slots__ = ("conn", "conn_id", "events", "now_ns")

    def __init__(self, conn, ev):
        self.conn = conn
        self.conn_id = ev.conn_id
        self.events = tuple(ev.events)
        self.now_ns = ev.now_ns

    @property
    def kinds(self):
        return frozenset(k for k in range(TW_CONN_KINDS) if self.events[0] >> k & 1)

    def __repr__(self):
        return "<tickwheel.ConnEvent conn_id=%d kinds=%s now_ns=%d>" % (
            self.conn_id, sorted(self.kinds), self.now_ns)


class Conn:
    """A connection's typed timers: tw_conn_new(3).

    Conn(loop, conn_id, callback=None), or loop.connection(...).  callback
    is called as callback(event) once per turn with something fired; None
    queues the events for loop.poll().  The loop keeps the connection until
    close() or until the loop is closed.
    """

    def __init__(self, loop, conn_id, callback=None):
        if not isinstance(loop, Loop):
            raise TypeError("loop must be a tickwheel.Loop")
        self._callback = _callable(callback) if callback is not None else None
        self.loop = loop
        ptr = c_void_p()
        lp = loop._live()
        r = _L().tw_conn_new(lp, _u32(conn_id, "conn_id"),
                             _conn_trampoline if callback is not None else _NO_CONN_CB,
                             loop._token, byref(ptr))
        _check(r, "tw_conn_new")
        self._ptr = ptr.value
        loop._conns[ptr.value] = self
        if not _kinds_checked:
            self._check_kinds()

    def _check_kinds(self):
        # The kinds are copied from the header's enumeration: the library
        # must take the last of them and refuse the one after.
        global _kinds_checked
        lib, ret = _L(), c_uint64()
        last = lib.tw_conn_deadline(self._ptr, TW_CONN_KINDS - 1, byref(ret))
        past = lib.tw_conn_deadline(self._ptr, TW_CONN_KINDS, byref(ret))
        if last not in (0, _constants["TW_ENOENT"]) or past != _constants["TW_EINVAL"]:
            self.close()
            raise RuntimeError("the library does not have the %d connection kinds "
                               "this module knows" % TW_CONN_KINDS)
        _kinds_checked = True

    def _live(self):
        if self._ptr is None:
            raise ValueError("operation on a closed connection")
        return self._ptr

    @staticmethod
    def _kind(kind):
        return _u32(kind, "kind")

    def close(self):
        """Frees the connection: nothing fires for it afterwards."""
        if self._ptr is None:
            return
        ptr, self._ptr = self._ptr, None
        self.loop._conns.pop(ptr, None)
        _L().tw_conn_free(ptr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self):
        return self._ptr is None

    @property
    def conn_id(self):
        return _L().tw_conn_id(self._live())

    def _call(self, function, *args):
        mark = len(self.loop._errors)
        r = getattr(_L(), function)(self._live(), *args)
        self.loop._raise_since(mark)
        return _check(r, function)

    def arm(self, kind, deadline_ns):
        """Arms kind at deadline_ns, absolute on the loop's clock."""
        self._call("tw_conn_arm", self._kind(kind), _u64(deadline_ns, "deadline_ns"))

    def arm_in(self, kind, delay_ns):
        """Arms kind at loop.now() + delay_ns."""
        self._call("tw_conn_arm_in", self._kind(kind), _u64(delay_ns, "delay_ns"))

    def disarm(self, kind):
        """Disarms kind; returns whether it was armed."""
        r = _L().tw_conn_disarm(self._live(), self._kind(kind))
        if r == _constants["TW_ENOENT"]:
            return False
        _check(r, "tw_conn_disarm")
        return True

    def disarm_all(self):
        self._call("tw_conn_disarm_all")

    def deadline(self, kind):
        """The deadline kind is armed at; None when it is not armed."""
        ret = c_uint64()
        r = _L().tw_conn_deadline(self._live(), self._kind(kind), byref(ret))
        if r == _constants["TW_ENOENT"]:
            return None
        _check(r, "tw_conn_deadline")
        return ret.value

    def armed(self):
        """The set of kinds armed."""
        mask = _L().tw_conn_armed(self._live())
        return frozenset(k for k in range(32) if mask >> k & 1)

    def set_idle_timeout(self, timeout_ns):
        """The timeout touch() arms TW_CONN_IDLE with; 0 disables touches."""
        self._call("tw_conn_set_idle_timeout", _u64(timeout_ns, "timeout_ns"))

    def set_slack(self, kind, slack_ns):
        self._call("tw_conn_set_slack", self._kind(kind), _u64(slack_ns, "slack_ns"))

    def touch(self):
        """Activity: re-arms TW_CONN_IDLE at loop.now() + the idle timeout."""
        self._call("tw_conn_touch")

    def next_deadline(self):
        """The earliest deadline of the connection; None when none is armed."""
        ret = c_uint64()
        r = _L().tw_conn_next_deadline(self._live(), byref(ret))
        if r == _constants["TW_ENOENT"]:
            return None
        _check(r, "tw_conn_next_deadline")
        return ret.value

    def __repr__(self):
        if self._ptr is None:
            return "<tickwheel.Conn closed>"
        return "<tickwheel.Conn id=%d armed=%s>" % (self.conn_id, sorted(self.armed()))
