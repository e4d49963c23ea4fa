#!/usr/bin/env python3
"""The Python binding (bindings/python/tickwheel.py) against a built library.

TICKWHEEL_LIB names the library to test (the build tree's, under meson);
TICKWHEEL_PYTHON_DIR, or the source tree beside this file, the module.  Every
timer runs on an injected time: a wheel's advance or a loop's ManualClock,
except the two run() tests, which wait for a timer 1 ms away on the real
clock and assert only what holds on a loaded machine (never early).
Ends with "N passed, N failed".
"""

import gc
import os
import sys
import unittest
import weakref

MODULE_DIR = os.path.realpath(os.environ.get("TICKWHEEL_PYTHON_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
sys.path.insert(0, MODULE_DIR)
import tickwheel as tw  # noqa: E402

MS = 1000000
S = 1000000000


class Boom(Exception):
    pass


class TestConstants(unittest.TestCase):
    def test_loaded_library(self):
        self.assertEqual(os.path.dirname(os.path.realpath(tw.__file__)), MODULE_DIR)
        path = tw.load()
        if "TICKWHEEL_LIB" in os.environ:
            self.assertEqual(path, os.environ["TICKWHEEL_LIB"])
        self.assertRegex(tw.version(), r"^\d+\.\d+\.\d+$")
        with self.assertRaises(RuntimeError):
            tw.load("/nonexistent/libtickwheel.so.0")

    def test_never_and_errors(self):
        self.assertEqual(tw.TW_NEVER, 2**64 - 1)
        self.assertEqual(tw.TW_TICK_DEFAULT_NS, MS)
        self.assertEqual(tw.TW_EINVAL, -22)
        self.assertEqual(tw.TW_ENOENT, -2)
        self.assertEqual(tw.ERRORS[-2], "TW_ENOENT")
        self.assertIn("TW_ECANCELED", tw.ERRORS.values())
        for code, name in tw.ERRORS.items():
            self.assertEqual(getattr(tw, name), code)
            e = tw.TickwheelError(code, "f")
            self.assertEqual((e.code, e.name), (code, name))
            self.assertNotEqual(e.strerror, "unknown error")
            self.assertEqual(str(e), "f: %s: %s" % (name, e.strerror))
        with self.assertRaises(AttributeError):
            tw.TW_ENOTACODE  # noqa: B018

    def test_conn_kinds(self):
        with tw.Loop(clock=tw.ManualClock()) as loop:
            conn = loop.connection(1)
            self.assertIsNone(conn.deadline(tw.TW_CONN_KINDS - 1))
            with self.assertRaises(tw.TickwheelError) as cm:
                conn.deadline(tw.TW_CONN_KINDS)
            self.assertEqual(cm.exception.name, "TW_EINVAL")


class TestWheel(unittest.TestCase):
    def setUp(self):
        self.wheel = tw.Wheel(now_ns=0)
        self.fired = []

    def tearDown(self):
        if not self.wheel.closed:
            self.wheel.verify()
        self.wheel.close()

    def rec(self, tag):
        return lambda timer, deadline: self.fired.append((tag, deadline, timer))

    def test_order_equal_deadlines_fifo(self):
        w = self.wheel
        w.schedule(30 * MS, self.rec("c"))
        w.schedule(10 * MS, self.rec("a1"))
        w.schedule(20 * MS, self.rec("b"))
        w.schedule(10 * MS, self.rec("a2"))
        w.schedule(5 * S, self.rec("far"))        # another level
        w.schedule(10 * MS, self.rec("a3"))
        self.assertEqual(w.next_deadline(), 10 * MS)
        self.assertEqual(w.advance(10 * MS - 1), 0)
        self.assertEqual(w.advance(30 * MS), 5)
        self.assertEqual([(t, d) for t, d, _ in self.fired],
                         [("a1", 10 * MS), ("a2", 10 * MS), ("a3", 10 * MS),
                          ("b", 20 * MS), ("c", 30 * MS)])
        self.assertEqual(len(w), 1)
        self.assertEqual(w.advance(5 * S), 1)
        self.assertEqual(self.fired[-1][:2], ("far", 5 * S))
        self.assertIsNone(w.next_deadline())
        self.assertEqual(w.now(), 5 * S)

    def test_relative_slack_deadline_reschedule(self):
        w = tw.Wheel(now_ns=7 * S)
        t = w.schedule_relative(3 * MS, self.rec("r"))
        self.assertEqual(w.deadline(t), 7 * S + 3 * MS)
        s = w.schedule_slack(7 * S + 5 * MS, 2 * MS, self.rec("s"))
        self.assertTrue(7 * S + 5 * MS <= w.deadline(s) <= 7 * S + 7 * MS)
        w.reschedule(t, 8 * S)
        t.reschedule(9 * S)
        self.assertEqual(w.deadline(t), 9 * S)
        w.advance(8 * S)
        self.assertEqual([tag for tag, _, _ in self.fired], ["s"])
        self.assertGreaterEqual(self.fired[0][1], 7 * S + 5 * MS)
        self.assertTrue(t.active)
        self.assertFalse(s.active)
        w.verify()
        w.close()

    def test_past_deadline_and_never(self):
        w = tw.Wheel(now_ns=S)
        w.schedule(1, self.rec("past"))
        n = w.schedule(tw.TW_NEVER, self.rec("never"))
        self.assertEqual(w.advance(S), 1)
        self.assertEqual(self.fired[0][:2], ("past", 1))
        self.assertEqual(w.deadline(n), tw.TW_NEVER)
        self.assertEqual(w.advance(2**63), 0)
        w.close()

    def test_stale_handles_raise(self):
        w = self.wheel
        fired = w.schedule(MS, self.rec("f"))
        cancelled = w.schedule(MS, self.rec("c"))
        cancelled.cancel()
        w.advance(MS)
        for t in (fired, cancelled):
            self.assertFalse(t.active)
            for call in (lambda: w.cancel(t), lambda: w.reschedule(t, 5 * MS),
                         lambda: w.deadline(t), t.cancel):
                with self.assertRaises(tw.TickwheelError) as cm:
                    call()
                self.assertEqual(cm.exception.code, tw.TW_ENOENT)
                self.assertEqual(cm.exception.name, "TW_ENOENT")
                self.assertIn("no such timer", str(cm.exception))
        with self.assertRaises(tw.TickwheelError):
            w.cancel(0)
        other = tw.Wheel()
        with self.assertRaises(ValueError):
            other.cancel(w.schedule(MS, self.rec("x")))
        other.close()

    def test_errors_map_to_exceptions(self):
        with self.assertRaises(tw.TickwheelError) as cm:
            tw.Wheel(tick_ns=1)
        self.assertEqual((cm.exception.name, cm.exception.function),
                         ("TW_EINVAL", "tw_wheel_new"))
        small = tw.Wheel(max_timers=2)
        small.schedule(1, self.rec(1))
        small.schedule(2, self.rec(2))
        with self.assertRaises(tw.TickwheelError) as cm:
            small.schedule(3, self.rec(3))
        self.assertEqual(cm.exception.code, tw.TW_ENOMEM)
        self.assertEqual(len(small), 2)
        small.close()
        with self.assertRaises(ValueError):
            self.wheel.schedule(-1, self.rec(0))
        with self.assertRaises(ValueError):
            self.wheel.schedule(2**64, self.rec(0))
        with self.assertRaises(TypeError):
            self.wheel.schedule(1.5, self.rec(0))
        with self.assertRaises(TypeError):
            self.wheel.schedule(1, None)
        self.assertEqual(len(self.wheel), 0)

    def test_advance_from_callback_is_busy(self):
        w = self.wheel
        seen = []

        def again(timer, deadline):
            try:
                w.advance(deadline)
            except tw.TickwheelError as e:
                seen.append(e.name)
        w.schedule(MS, again)
        w.advance(MS)
        self.assertEqual(seen, ["TW_EBUSY"])

    def test_raising_callback_reaches_caller(self):
        w = self.wheel
        boom = Boom("second")
        order = []

        def raises(timer, deadline):
            order.append("raises")
            raise boom
        w.schedule(1 * MS, lambda t, d: order.append("first"))
        w.schedule(2 * MS, raises)
        w.schedule(3 * MS, lambda t, d: order.append("third"))
        with self.assertRaises(Boom) as cm:
            w.advance(3 * MS)
        self.assertIs(cm.exception, boom)
        self.assertEqual(order, ["first", "raises", "third"])
        self.assertEqual(w.stats().fired, 3)
        self.assertEqual(len(w), 0)
        self.assertEqual(w.advance(4 * MS), 0)       # nothing left to raise

    def test_several_raising_callbacks(self):
        w = self.wheel

        def raiser(msg):
            def cb(timer, deadline):
                raise Boom(msg)
            return cb
        w.schedule(MS, raiser("one"))
        w.schedule(MS, raiser("two"))
        with self.assertRaises(Boom) as cm:
            w.advance(MS)
        self.assertEqual(str(cm.exception), "one")
        notes = getattr(cm.exception, "__notes__", None)
        if hasattr(cm.exception, "add_note"):
            self.assertEqual(len(notes), 1)
            self.assertIn("two", notes[0])

    def test_advance_max_and_next_deadline(self):
        w = self.wheel
        for i in range(10):
            w.schedule(MS + i, self.rec(i))
        self.assertEqual(w.advance_max(2 * MS, 3), 3)
        self.assertLessEqual(w.next_deadline(), 2 * MS)
        self.assertEqual(w.advance(2 * MS), 7)
        self.assertEqual([t for t, _, _ in self.fired], list(range(10)))

    def test_reentrancy(self):
        w = self.wheel
        count = []
        victim = w.schedule(5 * MS, self.rec("victim"))

        def periodic(timer, deadline):
            count.append(deadline)
            self.assertFalse(timer.active)
            if len(count) < 3:
                w.reschedule(timer, deadline + MS)
                self.assertTrue(timer.active)
            victim_active = victim.active
            if victim_active:
                victim.cancel()
        t = w.schedule(MS, periodic)
        # An advance fires, once more, what its callbacks armed due: the
        # re-arm at 3 ms waits for the next advance.
        w.advance(10 * MS)
        self.assertEqual(count, [MS, 2 * MS])
        self.assertTrue(t.active)
        self.assertEqual(w.deadline(t), 3 * MS)
        w.advance(10 * MS)
        self.assertEqual(count, [MS, 2 * MS, 3 * MS])
        self.assertFalse(t.active)
        self.assertEqual(self.fired, [])
        self.assertEqual(len(w), 0)

    def test_periodic(self):
        w = self.wheel
        catch, skip = [], []
        c = w.schedule_periodic(MS, 2 * MS, lambda t, d: catch.append(d))
        k = w.schedule_periodic(MS, 2 * MS, lambda t, d: skip.append(d), skip=True)
        self.assertEqual((w.period(c), w.deadline(c)), (2 * MS, MS))
        w.advance(MS)
        self.assertEqual((catch, skip), ([MS], [MS]))
        self.assertTrue(c.active and k.active)
        self.assertEqual(len(w), 2)
        # Missed periods: one after the other (as far as the advance's
        # second pass goes), or once and then the first period after now.
        w.advance(10 * MS)
        self.assertEqual(catch, [MS, 3 * MS, 5 * MS])
        self.assertEqual(skip, [MS, 3 * MS])
        self.assertEqual((w.deadline(c), w.deadline(k)), (7 * MS, 11 * MS))
        with self.assertRaises(tw.TickwheelError):
            w.period(w.schedule(MS, self.rec("one-shot")))

    def test_periodic_cancelled_by_its_callback(self):
        w = self.wheel
        runs = []

        def cb(timer, deadline):
            runs.append(deadline)
            if len(runs) == 3:
                timer.cancel()
        ref = weakref.ref(cb)
        t = w.schedule_periodic(MS, MS, cb)
        del cb
        for i in range(1, 6):
            w.advance(i * MS)
        self.assertEqual(runs, [MS, 2 * MS, 3 * MS])
        self.assertFalse(t.active)
        self.assertIsNone(ref())
        self.assertEqual(len(w), 0)

    def test_close_from_callback(self):
        w = self.wheel
        order = []

        def closer(timer, deadline):
            order.append("closer")
            w.close()
        w.schedule(MS, closer)
        w.schedule(MS, lambda t, d: order.append("after"))
        w.advance(MS)
        self.assertEqual(order, ["closer"])
        self.assertTrue(w.closed)
        self.assertEqual(len(w), 0)
        with self.assertRaises(ValueError):
            w.advance(2 * MS)

    def test_stats_and_verify(self):
        w = self.wheel
        ts = [w.schedule(i * MS, self.rec(i)) for i in range(1, 101)]
        ts[0].cancel()
        w.reschedule(ts[1], 500 * MS)
        w.advance(50 * MS)
        s = w.stats()
        self.assertEqual((s.scheduled, s.cancelled, s.rescheduled, s.fired, s.live),
                         (100, 1, 1, 48, 51))
        self.assertEqual(s.now_ns, 50 * MS)
        self.assertEqual(s.live, len(w))
        w.verify()


class TestClosures(unittest.TestCase):
    """Each timer's callable is held exactly while the timer is armed."""

    @staticmethod
    def closure(sink, i):
        def cb(timer, deadline):
            sink.append(i)
        return cb

    def test_released_after_fire_and_cancel(self):
        w = tw.Wheel()
        sink = []
        fire, cancel, keep = (self.closure(sink, i) for i in range(3))
        refs = [weakref.ref(f) for f in (fire, cancel, keep)]
        w.schedule(MS, fire)
        t = w.schedule(MS, cancel)
        w.schedule(2 * MS, keep)
        del fire, cancel, keep
        self.assertTrue(all(r() is not None for r in refs))
        t.cancel()
        self.assertIsNone(refs[1]())
        self.assertIsNotNone(refs[0]())
        w.advance(MS)
        self.assertEqual(sink, [0])
        self.assertIsNone(refs[0]())
        self.assertIsNotNone(refs[2]())
        w.close()
        self.assertIsNone(refs[2]())

    def test_rearmed_timer_keeps_its_closure(self):
        w = tw.Wheel()
        runs = []

        def cb(timer, deadline):
            runs.append(deadline)
            if len(runs) == 1:
                timer.reschedule(deadline + MS)
        ref = weakref.ref(cb)
        w.schedule(MS, cb)
        del cb
        w.advance(MS)
        self.assertIsNotNone(ref())
        w.advance(2 * MS)
        self.assertEqual(runs, [MS, 2 * MS])
        self.assertIsNone(ref())
        w.close()

    def test_200000_distinct_closures(self):
        # More distinct callables armed at once than the wheel's table of
        # C callbacks (65535) could hold, had each been a C function.
        n = 200000
        w = tw.Wheel(initial_timers=n)
        sink = []
        refs = []
        timers = []
        for i in range(n):
            f = self.closure(sink, i)
            refs.append(weakref.ref(f))
            timers.append(w.schedule(MS + i % 1000, f))
        del f
        self.assertEqual(len(w), n)
        self.assertEqual(w.stats().live, n)
        for t in timers[0::2]:
            t.cancel()
        self.assertEqual(sum(r() is None for r in refs[0::2]), n // 2)
        self.assertEqual(sum(r() is not None for r in refs[1::2]), n // 2)
        self.assertEqual(w.advance(2 * MS), n // 2)
        self.assertEqual(sorted(sink), list(range(1, n, 2)))
        gc.collect()
        self.assertTrue(all(r() is None for r in refs))
        s = w.stats()
        self.assertEqual((s.live, s.fired, s.cancelled), (0, n // 2, n // 2))
        self.assertEqual(len(w), 0)
        w.verify()
        for i in range(n):     # and again, one at a time
            w.schedule(3 * MS, self.closure(sink, i)).cancel()
        self.assertEqual(w.stats().live, 0)
        w.close()

    def test_loop_releases_closures(self):
        clock = tw.ManualClock(S)
        loop = tw.Loop(clock=clock)
        a = lambda t, d: None  # noqa: E731
        b = lambda t, d: None  # noqa: E731
        ra, rb = weakref.ref(a), weakref.ref(b)
        loop.schedule(S + MS, a)
        tb = loop.schedule(S + MS, b)
        del a, b
        loop.cancel(tb)
        self.assertIsNone(rb())
        self.assertIsNotNone(ra())
        clock.advance(MS)
        self.assertEqual(loop.process(), 1)
        self.assertIsNone(ra())
        loop.close()


class TestLoop(unittest.TestCase):
    def setUp(self):
        self.clock = tw.ManualClock(100 * S)
        self.loop = tw.Loop(clock=self.clock)
        self.fired = []

    def tearDown(self):
        self.loop.close()

    def rec(self, tag):
        return lambda timer, deadline: self.fired.append((tag, deadline, self.loop.now()))

    def test_injected_clock(self):
        loop, clock = self.loop, self.clock
        self.assertEqual(loop.now(), 100 * S)
        a = loop.schedule(100 * S + 5 * MS, self.rec("a"))
        loop.schedule_relative(2 * MS, self.rec("b"))
        c = loop.schedule_slack(100 * S + 9 * MS, MS, self.rec("c"))
        self.assertEqual(loop.next_deadline(), 100 * S + 2 * MS)
        clock.advance(2 * MS - 1)
        self.assertEqual(loop.process(), 0)
        clock.advance(1)
        self.assertEqual(loop.process(), 1)
        loop.reschedule(a, 100 * S + 20 * MS)
        clock.set(100 * S + 15 * MS)
        self.assertEqual(loop.process(), 1)
        self.assertEqual(self.fired[0], ("b", 100 * S + 2 * MS, 100 * S + 2 * MS))
        self.assertEqual(self.fired[1][0], "c")
        self.assertGreaterEqual(self.fired[1][1], 100 * S + 9 * MS)
        with self.assertRaises(tw.TickwheelError) as cm:
            c.cancel()
        self.assertEqual(cm.exception.name, "TW_ENOENT")
        loop.cancel(a)
        self.assertIsNone(loop.next_deadline())
        clock.advance(S)
        self.assertEqual(loop.process(), 0)
        s = loop.stats()
        self.assertEqual((s.fired, s.now_ns), (2, 101 * S + 15 * MS))

    def test_relative_counts_from_a_fresh_reading(self):
        loop, clock = self.loop, self.clock
        loop.process()
        clock.advance(7 * MS)       # time passes between turns
        t = loop.schedule_relative(3 * MS, self.rec("r"))
        clock.advance(3 * MS - 1)
        self.assertEqual(loop.process(), 0)
        clock.advance(1)
        self.assertEqual(loop.process(), 1)
        self.assertEqual(self.fired[0][1], 100 * S + 10 * MS)
        self.assertFalse(t.active)

    def test_raising_callback_and_clock(self):
        loop, clock = self.loop, self.clock
        err = Boom("in a loop callback")

        def raises(timer, deadline):
            raise err
        loop.schedule_relative(MS, raises)
        loop.schedule_relative(MS, self.rec("next"))
        clock.advance(MS)
        with self.assertRaises(Boom) as cm:
            loop.process()
        self.assertIs(cm.exception, err)
        self.assertEqual([t for t, _, _ in self.fired], ["next"])

        state = {"fail": False}

        def clock_fn():
            if state["fail"]:
                raise Boom("clock")
            return self.clock()
        loop2 = tw.Loop(clock=clock_fn)
        state["fail"] = True
        with self.assertRaises(Boom):
            loop2.process()
        with self.assertRaises(Boom):
            loop2.schedule_relative(MS, self.rec("never armed"))
        self.assertEqual(len(loop2), 0)
        self.assertIsNone(loop2.next_deadline())
        state["fail"] = False
        self.assertEqual(loop2.now(), self.clock())
        loop2.close()

    def test_periodic_and_queries(self):
        loop, clock = self.loop, self.clock
        t = loop.schedule_periodic(100 * S + 10 * MS, 10 * MS, self.rec("p"))
        self.assertEqual((loop.deadline(t), loop.period(t)), (100 * S + 10 * MS, 10 * MS))
        for _ in range(3):
            clock.advance(10 * MS)
            self.assertEqual(loop.process(), 1)
        self.assertEqual([d for _, d, _ in self.fired],
                         [100 * S + 10 * MS, 100 * S + 20 * MS, 100 * S + 30 * MS])
        self.assertEqual(loop.deadline(t), 100 * S + 40 * MS)
        t.cancel()
        self.assertEqual(len(loop), 0)
        with self.assertRaises(tw.TickwheelError):
            loop.deadline(t)

    def test_close_from_callback(self):
        loop, clock = self.loop, self.clock
        conn = loop.connection(3)
        order = []

        def closer(timer, deadline):
            order.append("closer")
            loop.close()
        loop.schedule_relative(MS, closer)
        loop.schedule_relative(MS, lambda t, d: order.append("after"))
        clock.advance(MS)
        loop.process()
        self.assertEqual(order, ["closer"])
        self.assertTrue(loop.closed and conn.closed)
        with self.assertRaises(ValueError):
            conn.touch()

    def test_run_and_stop_real_clock(self):
        with tw.Loop() as loop:
            seen = []

            def stop(timer, deadline):
                seen.append((deadline, loop.now()))
                loop.stop()
            loop.schedule_relative(MS, stop)
            self.assertEqual(loop.run(), 0)
            self.assertEqual(len(seen), 1)
            deadline, now = seen[0]
            self.assertGreaterEqual(now, deadline)     # never early
            self.assertGreaterEqual(loop.fd, 0)

    def test_run_returns_on_raise(self):
        with tw.Loop() as loop:
            later = []
            loop.schedule_relative(MS, lambda t, d: (_ for _ in ()).throw(Boom("run")))
            loop.schedule_relative(60 * S, lambda t, d: later.append(d))
            with self.assertRaises(Boom):
                loop.run()
            self.assertEqual(later, [])
            self.assertEqual(len(loop), 1)


class TestConn(unittest.TestCase):
    def setUp(self):
        self.clock = tw.ManualClock(S)
        self.loop = tw.Loop(clock=self.clock)
        self.events = []

    def tearDown(self):
        self.loop.close()

    def test_idle_timeout(self):
        loop, clock = self.loop, self.clock
        conn = loop.connection(42, self.events.append)
        self.assertEqual(conn.conn_id, 42)
        conn.set_idle_timeout(30 * S)
        conn.touch()
        self.assertEqual(conn.deadline(tw.TW_CONN_IDLE), 31 * S)
        for _ in range(10):          # a packet every 2 s keeps it alive
            clock.advance(2 * S)
            loop.process()
            conn.touch()
        self.assertEqual(self.events, [])
        self.assertEqual(conn.deadline(tw.TW_CONN_IDLE), 51 * S)
        self.assertGreater(loop.conn_stats().lazy_arms, 0)
        clock.set(51 * S - 1)
        loop.process()
        self.assertEqual(self.events, [])
        clock.set(51 * S)
        loop.process()
        self.assertEqual(len(self.events), 1)
        ev = self.events[0]
        self.assertIs(ev.conn, conn)
        self.assertEqual((ev.conn_id, ev.kinds, ev.now_ns), (42, {tw.TW_CONN_IDLE}, 51 * S))
        self.assertEqual(ev.events[0], 1 << tw.TW_CONN_IDLE)
        self.assertEqual(conn.armed(), frozenset())
        self.assertIsNone(conn.next_deadline())

    def test_kinds_arm_disarm(self):
        loop, clock = self.loop, self.clock
        conn = loop.connection(1, self.events.append)
        conn.arm(tw.TW_CONN_CONNECT, S + 10 * MS)
        conn.arm_in(tw.TW_CONN_ACK_DELAY, 25 * MS)
        conn.arm_in(tw.TW_CONN_KEEPALIVE, 10 * MS)
        self.assertEqual(conn.armed(), {tw.TW_CONN_CONNECT, tw.TW_CONN_ACK_DELAY,
                                        tw.TW_CONN_KEEPALIVE})
        self.assertEqual(conn.next_deadline(), S + 10 * MS)
        self.assertTrue(conn.disarm(tw.TW_CONN_ACK_DELAY))
        self.assertFalse(conn.disarm(tw.TW_CONN_ACK_DELAY))
        clock.advance(10 * MS)
        loop.process()
        self.assertEqual(len(self.events), 1)
        self.assertEqual(self.events[0].kinds, {tw.TW_CONN_CONNECT, tw.TW_CONN_KEEPALIVE})
        conn.arm_in(tw.TW_CONN_CLOSE, MS)
        conn.disarm_all()
        clock.advance(S)
        loop.process()
        self.assertEqual(len(self.events), 1)
        with self.assertRaises(tw.TickwheelError) as cm:
            conn.arm(99, S)
        self.assertEqual(cm.exception.name, "TW_EINVAL")

    def test_poll_mode(self):
        loop, clock = self.loop, self.clock
        a = loop.connection(1)
        b = loop.connection(2)
        b.arm_in(tw.TW_CONN_PACING, MS)
        a.arm_in(tw.TW_CONN_IDLE, 2 * MS)
        clock.advance(2 * MS)
        loop.process()
        evs = loop.poll()
        self.assertEqual([(e.conn, e.kinds) for e in evs],
                         [(b, {tw.TW_CONN_PACING}), (a, {tw.TW_CONN_IDLE})])
        self.assertEqual(loop.poll(), [])

    def test_close_inside_callback(self):
        loop, clock = self.loop, self.clock
        got = []

        def on_a(ev):
            got.append(ev.conn_id)
            ev.conn.close()
            b.close()
        a = loop.connection(1, on_a)
        b = loop.connection(2, lambda ev: got.append(ev.conn_id))
        a.arm_in(tw.TW_CONN_IDLE, MS)
        b.arm_in(tw.TW_CONN_IDLE, MS)
        clock.advance(MS)
        loop.process()
        self.assertEqual(got, [1])
        self.assertTrue(a.closed and b.closed)
        self.assertEqual(loop.conn_stats().live, 0)
        with self.assertRaises(ValueError):
            a.touch()
        a.close()            # twice is a no-op

    def test_raising_conn_callback(self):
        loop, clock = self.loop, self.clock
        c = loop.connection(5, lambda ev: 1 / 0)
        c.arm_in(tw.TW_CONN_CLOSE, MS)
        clock.advance(MS)
        with self.assertRaises(ZeroDivisionError):
            loop.process()
        self.assertEqual(c.armed(), frozenset())


class Result(unittest.TextTestResult):
    passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1


if __name__ == "__main__":
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Result, stream=sys.stdout)
    result = runner.run(unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print("%d passed, %d failed" % (result.passed, failed))
    sys.exit(1 if failed or not result.passed else 0)
