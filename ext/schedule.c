/* schedule.c: how callbacks get onto the loop: LoopBase's scheduling
 * methods and their C entry points.
 *
 *   - call_soon, call_soon_threadsafe (and the wake-up of a loop sleeping
 *     in the poll), call_at, call_later, create_task, create_future,
 *     time, _write_to_self, _push_handle, _new_handle;
 *   - binding their arguments as asyncio's Python signatures do
 *     (context=, the missing-argument errors) and the debug-mode checks;
 *   - tl_loop_call_soon, tl_loop_create_future, tl_loop_push_ready,
 *     tl_loop_parse_context_kw for the other C files.
 *
 * Handles go to the ready queue (loop.h) or the timer heap (timers.c);
 * loop.c runs them. */
#include "loop.h"

#include <math.h>

/* ---- argument helpers ----------------------------------------------- */

/* Whether keyword `key` is "context".  By identity with ours or with the
 * last equal one seen (kept: asyncio's C Task passes the same one on
 * every step), else compared: about 100 instructions of sleep(0)'s
 * 5,550 per step. */
static int
is_context_kw(tl_state *st, PyObject *key)
{
    if (key == st->str_context || key == st->str_context_seen) {
        return 1;
    }
    if (PyUnicode_Compare(key, st->str_context) != 0) {
        return 0;
    }
#ifndef Py_GIL_DISABLED    /* (threads would race on the cache) */
    Py_XSETREF(st->str_context_seen, Py_NewRef(key));
#endif
    return 1;
}

/* Accepts only context= as a keyword.  *ctx is borrowed, left NULL if
 * not given. */
static int
parse_context_kw_slow(LoopObject *self, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames, const char *fname,
                      PyObject **ctx)
{
    Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nk; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (is_context_kw(self->st, key)) {
            *ctx = args[nargs + i];
        }
        else {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         fname, key);
            return -1;
        }
    }
    return 0;
}

/* The same, *ctx NULL if not given; the common cases (no keyword, or
 * context= alone, which a Task passes on each step) inline: about 40
 * instructions of sleep(0)'s step. */
static inline int
parse_context_kw(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames, const char *fname, PyObject **ctx)
{
    *ctx = NULL;
    if (kwnames == NULL) {
        return 0;
    }
    if (PyTuple_GET_SIZE(kwnames) == 1) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, 0);
        if (key == self->st->str_context ||
            key == self->st->str_context_seen) {
            *ctx = args[nargs];
            return 0;
        }
    }
    return parse_context_kw_slow(self, args, nargs, kwnames, fname, ctx);
}

/* The same for the fd watchers of poll.c (_add_reader(..., context=)). */
int
tl_loop_parse_context_kw(LoopObject *self, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames,
                         const char *fname, PyObject **ctx)
{
    return parse_context_kw(self, args, nargs, kwnames, fname, ctx);
}

static int
loop_debug_checks(LoopObject *self, PyObject *callback, const char *method,
                  int check_thread)
{
    if (self->st->check_debug == NULL) {
        return 0;
    }
    PyObject *r = PyObject_CallFunction(self->st->check_debug, "OOsi",
                                        (PyObject *)self, callback, method,
                                        check_thread);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* ---- scheduling ----------------------------------------------------- */

/* Wake the loop if it sleeps in the poll.  Called with the GIL held, as
 * the loop sets `sleeping` with the GIL held before it releases it to
 * block: so either the loop sees our handle before deciding to block, or
 * we see it sleeping and write.  A loop that is running callbacks needs
 * no wake-up (no syscall: bulk call_soon_threadsafe is cheap), and one
 * write per sleep is enough.  (The epoll backend writes an eventfd:
 * libuv's uv_async_send() makes its receiver spin and sched_yield()
 * while the sender is between its two atomic steps, which on a busy core
 * costs extra context switches.) */
static void
loop_wakeup(LoopObject *self)
{
    if (self->sleeping && !self->wakeup_sent) {
        tl_uv *u = self->uv;
        self->wakeup_sent = 1;
        /* Without the GIL: the loop thread wakes at once and wants it;
         * holding it here made the loop thread sleep again on the GIL
         * (measured: 6.0 -> 3.4 context switches per ping-pong). */
        atomic_fetch_add(&u->wake_writers, 1);
        Py_BEGIN_ALLOW_THREADS
        u->be->wakeup(u);
        atomic_fetch_sub(&u->wake_writers, 1);
        Py_END_ALLOW_THREADS
    }
}

static PyObject *
loop_call_soon_impl(LoopObject *self, PyObject *const *args,
                    Py_ssize_t nargs, PyObject *kwnames, const char *fname,
                    int threadsafe)
{
    PyObject *ctx;
    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing 1 required positional argument: "
                     "'callback'",
                     fname);
        return NULL;
    }
    if (threadsafe && tl_tsafe_throttle(self) < 0) {
        return NULL;
    }
    if (parse_context_kw(self, args, nargs, kwnames, fname, &ctx) < 0 ||
        loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug &&
        loop_debug_checks(self, args[0], fname, !threadsafe) < 0) {
        return NULL;
    }
    HandleObject *h = tl_handle_make(self->st, self, args[0], args + 1,
                                     nargs - 1, ctx);
    if (h == NULL) {
        return NULL;
    }
    h->threadsafe = (char)threadsafe;
    Py_INCREF(h);
    if (rq_adopt(self, h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    if (threadsafe) {
        loop_wakeup(self);
    }
    return (PyObject *)h;
}

PyObject *
tl_sched_call_soon(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    return loop_call_soon_impl(self, args, nargs, kwnames, "call_soon", 0);
}

PyObject *
tl_loop_call_soon(LoopObject *self, PyObject *callback, PyObject *arg,
                  PyObject *ctx)
{
    PyObject *args[3] = {callback, NULL, NULL};
    Py_ssize_t n = 1;
    if (arg != NULL) {
        args[n++] = arg;
    }
    /* The keyword's value follows the positional arguments. */
    args[n] = ctx;
    return loop_call_soon_impl(self, args, n,
                               ctx != NULL ? self->st->kw_context : NULL,
                               "call_soon", 0);
}

PyObject *
tl_sched_call_soon_threadsafe(LoopObject *self, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames)
{
    return loop_call_soon_impl(self, args, nargs, kwnames,
                               "call_soon_threadsafe", 1);
}

/* args[0] is the callback, then its arguments; ctx is borrowed. */
static PyObject *
loop_call_at_impl(LoopObject *self, double when, PyObject *when_obj,
                  PyObject *const *args, Py_ssize_t nargs, PyObject *ctx)
{
    TimerHandleObject *t = tl_timer_new(self->st, self, when, when_obj,
                                        args[0], args + 1, nargs - 1, ctx);
    if (t == NULL) {
        return NULL;
    }
    if (tl_timers_push(self, t) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

/* call_at()'s checks before it makes the handle, in asyncio's order:
 * the loop is open, then (debug mode) the callback and the thread. */
static int
timer_checks(LoopObject *self, PyObject *callback)
{
    if (loop_check_closed(self) < 0) {
        return -1;
    }
    if (self->debug &&
        loop_debug_checks(self, callback, "call_at", 1) < 0) {
        return -1;
    }
    return 0;
}

/* Binds (when_or_delay, callback, *args, context=None) as Python would,
 * before any other check.  *ctx is borrowed or NULL. */
static int
bind_timer_args(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames, const char *fname, const char *first,
                PyObject **ctx)
{
    if (nargs < 2) {
        if (nargs == 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing 2 required positional arguments: "
                         "'%s' and 'callback'", fname, first);
        }
        else {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing 1 required positional argument: "
                         "'callback'", fname);
        }
        return -1;
    }
    return parse_context_kw(self, args, nargs, kwnames, fname, ctx);
}

PyObject *
tl_sched_call_at(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    PyObject *ctx;
    if (bind_timer_args(self, args, nargs, kwnames, "call_at", "when",
                        &ctx) < 0) {
        return NULL;
    }
    PyObject *when_obj = args[0];
    if (when_obj == Py_None) {
#if PY_VERSION_HEX >= 0x030B0000
        PyErr_SetString(PyExc_TypeError, "when cannot be None");
#else
        /* 3.9 and 3.10: TimerHandle.__init__ asserts it. */
        PyErr_SetNone(PyExc_AssertionError);
#endif
        return NULL;
    }
    /* asyncio checks the loop, then (debug) the callback, before it
     * stores `when`; keep that order for the errors. */
    if (timer_checks(self, args[1]) < 0) {
        return NULL;
    }
    double when = PyFloat_AsDouble(when_obj);
    if (when == -1.0 && PyErr_Occurred()) {
        if (PyLong_Check(when_obj) &&
            PyErr_ExceptionMatches(PyExc_OverflowError)) {
            /* An int beyond float range: asyncio keeps it, and it sorts
             * after (or before) every float deadline. */
            PyErr_Clear();
            PyObject *zero = PyLong_FromLong(0);
            int pos = zero ? PyObject_RichCompareBool(when_obj, zero, Py_GT)
                           : -1;
            Py_XDECREF(zero);
            if (pos < 0) {
                return NULL;
            }
            when = pos ? INFINITY : -INFINITY;
        }
        else {
            /* asyncio stores any object and its loop then fails with a
             * TypeError when it compares deadlines; fail here instead. */
            return NULL;
        }
    }
    /* Re-entrancy: __float__() may have closed the loop. */
    if (loop_check_closed(self) < 0) {
        return NULL;
    }
    return loop_call_at_impl(self, when,
                             PyFloat_CheckExact(when_obj) ? NULL : when_obj,
                             args + 1, nargs - 1, ctx);
}

PyObject *
tl_sched_call_later(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    PyObject *ctx;
    if (bind_timer_args(self, args, nargs, kwnames, "call_later", "delay",
                        &ctx) < 0) {
        return NULL;
    }
    PyObject *delay = args[0];
    double when;
#if PY_VERSION_HEX >= 0x030B0000
    if (delay == Py_None) {
        PyErr_SetString(PyExc_TypeError, "delay must not be None");
        return NULL;
    }
#endif
    double now = loop_now();
    if (PyFloat_Check(delay)) {
        when = now + PyFloat_AS_DOUBLE(delay);
    }
    else if (PyLong_CheckExact(delay)) {
        double d = PyLong_AsDouble(delay);
        if (d == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        when = now + d;
    }
    else {
        /* Whatever `loop.time() + delay` does in asyncio, with the same
         * error for a bad type. */
        PyObject *fnow = PyFloat_FromDouble(now);
        if (fnow == NULL) {
            return NULL;
        }
        PyObject *sum = PyNumber_Add(fnow, delay);
        Py_DECREF(fnow);
        if (sum == NULL) {
            return NULL;
        }
        when = PyFloat_AsDouble(sum);
        Py_DECREF(sum);
        if (when == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    /* asyncio's call_later() computes `when`, then call_at() checks (the
     * addition may also have run Python code that closed the loop). */
    if (timer_checks(self, args[1]) < 0) {
        return NULL;
    }
    return loop_call_at_impl(self, when, NULL, args + 1, nargs - 1, ctx);
}

/* Queue an existing handle again (signal handlers reuse theirs). */
PyObject *
tl_sched_push_handle(LoopObject *self, PyObject *h)
{
    if (!PyObject_TypeCheck(h, self->st->HandleType)) {
        PyErr_SetString(PyExc_TypeError, "a tideloop Handle was expected");
        return NULL;
    }
    if (loop_check_closed(self) < 0) {
        return NULL;
    }
    Py_INCREF(h);
    if (rq_push(self, (HandleObject *)h) < 0) {
        return NULL;
    }
    loop_wakeup(self);
    Py_RETURN_NONE;
}

/* A Handle that is not queued: _new_handle(callback, *args). */
PyObject *
tl_sched_new_handle(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "callback required");
        return NULL;
    }
    return (PyObject *)tl_handle_new(self->st, self, args[0], args + 1,
                                     nargs - 1, NULL);
}

/* create_task(coro, *, name=None, context=None[, **kwargs on 3.13]).
 * The common case (no task factory, not in debug mode, only name= and
 * context=) makes the Task here; everything else goes to asyncio's own
 * BaseEventLoop.create_task of this Python (Loop._create_task_py), so
 * factories, debug tracebacks and errors behave exactly as there. */
PyObject *
tl_sched_create_task(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    tl_state *st = self->st;
    PyObject *name = NULL, *context = NULL;
    int fast = (nargs == 1 && !self->debug &&
                (self->task_factory == NULL ||
                 self->task_factory == Py_None));
    Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; fast && i < nk; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (key == st->str_name) {
            name = args[nargs + i];
        }
        else if (key == st->str_context) {
            context = args[nargs + i];
        }
        else {
            fast = 0;
        }
    }
#if PY_VERSION_HEX < 0x030B0000
    if (context != NULL) {
        fast = 0;  /* no context= before 3.11: asyncio's TypeError */
    }
#endif
    if (!fast) {
        PyObject *meth = PyObject_GetAttr((PyObject *)self,
                                          st->str_create_task_py);
        if (meth == NULL) {
            return NULL;
        }
        PyObject *r = PyObject_Vectorcall(meth, args, nargs, kwnames);
        Py_DECREF(meth);
        return r;
    }
    if (loop_check_closed(self) < 0) {
        return NULL;
    }
    /* asyncio looks tasks.Task up at each call; so do we. */
    PyObject *task_type = PyDict_GetItemWithError(st->tasks_dict,
                                                  st->str_Task);
    if (task_type == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_AttributeError,
                            "asyncio.tasks has no attribute 'Task'");
        }
        return NULL;
    }
    /* Task(coro, loop=self, name=name, context=context), as asyncio. */
    PyObject *stack[4] = {args[0], (PyObject *)self,
                          name ? name : Py_None,
                          context ? context : Py_None};
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *kw = st->kw_loop_name_context;
    Py_ssize_t nkw = 3;
#else
    PyObject *kw = st->kw_loop_name;
    Py_ssize_t nkw = 2;
#endif
    (void)nkw;
    return PyObject_Vectorcall(task_type, stack, 1, kw);
}

PyObject *
tl_sched_time(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(loop_now());
}

PyObject *
tl_loop_create_future(LoopObject *self)
{
    PyObject *args[1] = {(PyObject *)self};
    return PyObject_Vectorcall(self->st->FutureType, args, 0,
                               self->st->kw_loop);
}

PyObject *
tl_sched_create_future(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return tl_loop_create_future(self);
}

int
tl_loop_push_ready(LoopObject *self, HandleObject *h)
{
    return rq_push(self, h);
}


PyObject *
tl_sched_write_to_self(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->uv != NULL) {
        loop_wakeup(self);
    }
    Py_RETURN_NONE;
}
