/* LoopBase: the event loop's hot paths in C.
 *
 * The iteration follows asyncio's BaseEventLoop._run_once():
 *   1. poll for I/O: without blocking when callbacks are ready or stop()
 *      was called, else until the earliest timer (or forever);
 *   2. dispatch what the poll recorded (signals);
 *   3. move every due timer to the ready queue, in (when, seq) order;
 *   4. run exactly the handles that were ready at the start of step 4.
 *
 * GIL: the libuv callbacks of this file never touch Python: they only
 * record events in C.  So a blocking uv_run() runs with the GIL released
 * and the loop takes it back once, after the poll.
 *
 * Timers: our own binary heap (timers.c) keyed by the loop's clock
 * (CLOCK_MONOTONIC, the clock of time.monotonic()), O(log n) removal on
 * cancel, and the backend's timer (backend.h) armed for the earliest
 * deadline, never earlier; a timer runs only once loop.time() >= its
 * `when`, whatever the backend's resolution. */
#include "tideloop.h"
#include "sockops.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <structmember.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* asyncio's MAXIMUM_SELECT_TIMEOUT: never arm further than a day ahead. */
#define TL_MAX_TIMEOUT_NS ((int64_t)24 * 3600 * 1000000000LL)

int64_t
tl_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The same float as time.monotonic() for the same instant. */
static inline double
ns_to_sec(int64_t ns)
{
    return (double)ns / 1e9;
}

static inline double
loop_now(void)
{
    return ns_to_sec(tl_monotonic_ns());
}

static int
loop_check_closed(LoopObject *self)
{
    /* _closed is writable from Python; the libuv state is what counts. */
    if (self->closed || self->uv == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    return 0;
}

/* ---- ready queue ---------------------------------------------------- */

static int
rq_grow(LoopObject *self)
{
    Py_ssize_t cap = self->rq_cap ? self->rq_cap * 2 : 64;
    HandleObject **n = PyMem_Malloc(cap * sizeof(*n));
    if (n == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* Unwrap the ring into the new buffer, head first. */
    for (Py_ssize_t i = 0; i < self->rq_len; i++) {
        n[i] = self->rq[(self->rq_head + i) & (self->rq_cap - 1)];
    }
    PyMem_Free(self->rq);
    self->rq = n;
    self->rq_head = 0;
    self->rq_cap = cap;
    return 0;
}

/* Steals the reference to h. */
static inline int
rq_push(LoopObject *self, HandleObject *h)
{
    if (self->rq_len == self->rq_cap && rq_grow(self) < 0) {
        Py_DECREF(h);
        return -1;
    }
    self->rq[(self->rq_head + self->rq_len) & (self->rq_cap - 1)] = h;
    self->rq_len++;
    self->ts_pending += h->threadsafe;
    return 0;
}

/* Returns the reference the queue held. */
static inline HandleObject *
rq_pop(LoopObject *self)
{
    HandleObject *h = self->rq[self->rq_head];
    self->rq_head = (self->rq_head + 1) & (self->rq_cap - 1);
    self->rq_len--;
    self->ts_pending -= h->threadsafe;
    return h;
}

/* ---- the backend's timer ------------------------------------------- */

/* Arm the backend's timer for `when` (seconds), never earlier. */
static void
loop_arm_timer(LoopObject *self, double when, int64_t now_ns)
{
    int64_t cap = now_ns + TL_MAX_TIMEOUT_NS;
    int64_t target;
    double ns = ceil(when * 1e9);
    if (!(ns < (double)cap)) {
        /* Far away (or inf): a wake-up a day ahead is as good. */
        if (self->armed_ns > now_ns + TL_MAX_TIMEOUT_NS / 2) {
            return;
        }
        target = cap;
    }
    else {
        target = (int64_t)ns;
        if (target <= now_ns) {
            /* Rounding put the deadline in the past although the float
             * compare said "not yet": come back in a microsecond. */
            target = now_ns + 1000;
        }
    }
    if (target == self->armed_ns) {
        return;
    }
    self->uv->be->arm(self->uv, target);
    self->armed_ns = target;
}

static void
loop_disarm_timer(LoopObject *self)
{
    if (self->armed_ns != 0) {
        self->uv->be->arm(self->uv, 0);
        self->armed_ns = 0;
    }
}

/* ---- creation and destruction -------------------------------------- */

static void
uv_release(tl_uv *u)
{
    if (u->be != NULL) {
        u->be->release(u);
    }
    if (u->sig_rfd >= 0) {
        close(u->sig_rfd);
        close(u->sig_wfd);
    }
    PyMem_RawFree(u);
}

static void
uv_free_all(tl_uv *u)
{
    /* The backend's libuv handles are closed first (DNS's close runs
     * their close callbacks); then only DNS lookups may still be in
     * libuv's hands, and DNS's loop goes with them (the GIL is held). */
    if (u->be != NULL) {
        u->be->close(u);
    }
    tl_dns_close(u);
    /* A thread in loop_wakeup() may still be inside the backend. */
    while (atomic_load(&u->wake_writers) != 0) {
        sched_yield();
    }
    uv_release(u);
}

static tl_uv *
uv_create(const tl_backend_ops *be)
{
    tl_uv *u = PyMem_RawCalloc(1, sizeof(tl_uv));
    if (u == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    u->sig_rfd = u->sig_wfd = -1;
    u->be = be;
    /* The libuv backend waits in DNS's libuv loop: it exists from now on
     * (the epoll backend's DNS makes it at the first lookup). */
    if (be->waits_in_uv && tl_dns_create(u) < 0) {
        goto error;
    }
    if (be->create(u) < 0) {
        goto error;
    }
    return u;

error:
    uv_free_all(u);
    return NULL;
}

static PyObject *
Loop_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    tl_state *st = tl_state_from_type(type);
    if (st == NULL) {
        return NULL;
    }
    /* Before the object exists: a bad TIDELOOP_BACKEND makes no loop. */
    const tl_backend_ops *be = tl_backend_choose();
    if (be == NULL) {
        return NULL;
    }
    LoopObject *self = (LoopObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->st = st;
    Py_INCREF(Py_None);
    self->thread_id = Py_None;
    Py_INCREF(Py_None);
    self->current_handle = Py_None;
    self->created_ns = tl_monotonic_ns();
    self->uv = uv_create(be);
    if (self->uv == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->backend = self->uv->be->name;
    return (PyObject *)self;
}

/* Drop every queued handle and timer.  Re-entrancy: dropping the last
 * reference to a callback may run arbitrary code, which may schedule
 * more; loop until both are empty. */
static void
loop_clear_queues(LoopObject *self)
{
    while (self->rq_len > 0 || self->heap_len > 0) {
        while (self->rq_len > 0) {
            HandleObject *h = rq_pop(self);
            Py_DECREF(h);
        }
        while (self->heap_len > 0) {
            TimerHandleObject *t = tl_timers_remove(self, self->heap_len - 1);
            Py_DECREF(t);
        }
    }
}

static int
Loop_traverse(LoopObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->thread_id);
    Py_VISIT(self->task_factory);
    Py_VISIT(self->debug_obj);
    Py_VISIT(self->current_handle);
    for (Py_ssize_t i = 0; i < self->rq_len; i++) {
        Py_VISIT(self->rq[(self->rq_head + i) & (self->rq_cap - 1)]);
    }
    for (Py_ssize_t i = 0; i < self->heap_len; i++) {
        Py_VISIT(self->heap[i].t);
    }
    return tl_poll_traverse(self, visit, arg);
}

static int
Loop_clear(LoopObject *self)
{
    loop_clear_queues(self);
    Py_CLEAR(self->current_handle);
    Py_CLEAR(self->task_factory);
    Py_CLEAR(self->debug_obj);
    return 0;
}

static void
Loop_dealloc(LoopObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    Loop_clear(self);
    tl_tsafe_free(self);
    Py_CLEAR(self->thread_id);
    if (self->uv != NULL) {
        tl_poll_close_all(self);
        uv_free_all(self->uv);
        self->uv = NULL;
    }
    PyMem_Free(self->rq);
    PyMem_Free(self->heap);
    PyMem_Free(self->rbuf);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* ---- argument helpers ----------------------------------------------- */

/* Accepts only context= as a keyword.  *ctx is borrowed or NULL. */
static int
parse_context_kw(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames, const char *fname, PyObject **ctx)
{
    *ctx = NULL;
    if (kwnames == NULL) {
        return 0;
    }
    Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nk; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (key == self->st->str_context ||
            PyUnicode_Compare(key, self->st->str_context) == 0) {
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
    HandleObject *h = tl_handle_new(self->st, self, args[0], args + 1,
                                    nargs - 1, ctx);
    if (h == NULL) {
        return NULL;
    }
    h->threadsafe = (char)threadsafe;
    Py_INCREF(h);
    if (rq_push(self, h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    if (threadsafe) {
        loop_wakeup(self);
    }
    return (PyObject *)h;
}

static PyObject *
Loop_call_soon(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
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

static PyObject *
Loop_call_soon_threadsafe(LoopObject *self, PyObject *const *args,
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

static PyObject *
Loop_call_at(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
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
    if (loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug &&
        loop_debug_checks(self, args[1], "call_at", 1) < 0) {
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

static PyObject *
Loop_call_later(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
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
    if (loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug &&
        loop_debug_checks(self, args[1], "call_at", 1) < 0) {
        return NULL;
    }
    return loop_call_at_impl(self, when, NULL, args + 1, nargs - 1, ctx);
}

/* Queue an existing handle again (signal handlers reuse theirs). */
static PyObject *
Loop_push_handle(LoopObject *self, PyObject *h)
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
static PyObject *
Loop_new_handle(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
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
static PyObject *
Loop_create_task(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
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

static PyObject *
Loop_time(LoopObject *self, PyObject *Py_UNUSED(ignored))
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

static PyObject *
Loop_create_future(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return tl_loop_create_future(self);
}

int
tl_loop_push_ready(LoopObject *self, HandleObject *h)
{
    return rq_push(self, h);
}

static PyObject *
Loop_stop(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    self->stopping = 1;
    tl_tsafe_release(self);
    Py_RETURN_NONE;
}

static PyObject *
Loop_get_debug(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->debug_obj != NULL) {
        Py_INCREF(self->debug_obj);
        return self->debug_obj;
    }
    return PyBool_FromLong(self->debug);
}

static PyObject *
Loop_is_running(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->thread_id != Py_None);
}

static PyObject *
Loop_is_closed(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closed);
}

static PyObject *
Loop_write_to_self(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->uv != NULL) {
        loop_wakeup(self);
    }
    Py_RETURN_NONE;
}

/* ---- the iteration -------------------------------------------------- */

/* Read the signal numbers Python's C handler wrote to the wake-up socket
 * and hand each to Loop._handle_signal(), after running the Python-level
 * signal handlers (where Ctrl-C raises KeyboardInterrupt). */
static int
loop_process_signals(LoopObject *self)
{
    tl_uv *u = self->uv;
    unsigned char buf[256];
    ssize_t n = 0;
    int r = 0;

    if (PyErr_CheckSignals() < 0) {
        return -1;
    }
    for (;;) {
        n = read(u->sig_rfd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        for (ssize_t i = 0; i < n && r == 0; i++) {
            PyObject *sig = PyLong_FromLong(buf[i]);
            PyObject *res = NULL;
            if (sig != NULL) {
                res = PyObject_CallMethodOneArg(
                    (PyObject *)self, self->st->str_handle_signal, sig);
                Py_DECREF(sig);
            }
            if (res == NULL) {
                r = -1;
            }
            Py_XDECREF(res);
        }
        /* Re-entrancy: _handle_signal() may have closed us. */
        if (r < 0 || self->uv == NULL) {
            break;
        }
    }
    if (self->uv != NULL) {
        u->sig_pending = 0;
    }
    return r;
}

static int
loop_run_handle_debug(LoopObject *self, HandleObject *h)
{
    Py_INCREF(h);
    Py_SETREF(self->current_handle, (PyObject *)h);
    double t0 = loop_now();
    int r = tl_handle_run(h);
    double dt = loop_now() - t0;
    Py_INCREF(Py_None);
    Py_SETREF(self->current_handle, Py_None);
    if (r == 0 && self->st->log_slow != NULL) {
        PyObject *d = PyFloat_FromDouble(dt);
        if (d == NULL) {
            return -1;
        }
        /* It returns True when it logged the handle as slow. */
        PyObject *res = PyObject_CallFunctionObjArgs(
            self->st->log_slow, (PyObject *)self, (PyObject *)h, d, NULL);
        Py_DECREF(d);
        if (res == NULL) {
            return -1;
        }
        if (res == Py_True) {
            self->n_slow_callbacks++;
        }
        Py_DECREF(res);
    }
    return r;
}

/* Whether a poll without blocking could report anything.  It cannot
 * when no fd is watched (add_reader, transports), no DNS lookup is in
 * flight and no signal handler was ever added: the poll would then only
 * see the loop's own fds, and those need no poll while the loop runs
 * callbacks (the timer heap is checked against the clock, and wake-ups
 * are written only while the loop sleeps).  asyncio polls every
 * iteration; skipping that epoll_wait() changes nothing observable and
 * saves one syscall per iteration of a callback chain.  Only the epoll
 * backend: the libuv backend's wait also runs DNS's libuv loop.  The
 * scan is O(table size), bounded: a table grown past TL_SCAN_MAX fds is
 * taken to be in use. */
#define TL_SCAN_MAX 256

static int
loop_may_have_io(LoopObject *self)
{
    tl_uv *u = self->uv;
    if (u->be->waits_in_uv || self->signals_watched ||
        (u->dns != NULL && u->dns->count > 0) ||
        self->npollers > TL_SCAN_MAX) {
        return 1;
    }
    for (int i = 0; i < self->npollers; i++) {
        if (self->pollers[i] != NULL) {
            return 1;
        }
    }
    return 0;
}

static int
loop_run_once(LoopObject *self)
{
    tl_uv *u = self->uv;
    /* (A DNS answer completed outside a poll must not wait for one.) */
    int block = (self->rq_len == 0 && !self->stopping &&
                 !tl_dns_answered(u));
    if (u->timer_fired) {
        /* It fired outside a wait (libuv runs timers wherever it runs):
         * it is disarmed. */
        u->timer_fired = 0;
        self->armed_ns = 0;
    }

    if (self->heap_len > 0) {
        if (block) {
            int64_t now_ns = tl_monotonic_ns();
            double when = self->heap[0].when;
            if (!(when > ns_to_sec(now_ns))) {
                block = 0;
            }
            else {
                loop_arm_timer(self, when, now_ns);
            }
        }
    }
    else if (self->armed_ns != 0) {
        loop_disarm_timer(self);
    }

    /* The poll: one backend wait, the GIL released only when it may
     * block. */
    tl_event *evs = NULL;
    int n;
    if (!block && !loop_may_have_io(self)) {
        /* Nothing the poll could report: skip its syscall.  Python's own
         * signal handlers (Ctrl-C) still run here, as they would after
         * the poll. */
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
        n = 0;
    }
    else if (block) {
        self->sleeping = 1;
        Py_BEGIN_ALLOW_THREADS
        n = u->be->wait(u, 1, &evs);
        Py_END_ALLOW_THREADS
        self->sleeping = 0;
        self->wakeup_sent = 0;
    }
    else {
        n = u->be->wait(u, 0, &evs);
    }
    if (n < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->n_iterations++;
    if (u->timer_fired) {
        u->timer_fired = 0;
        self->armed_ns = 0;
    }

    if (u->sig_pending) {
        if (loop_process_signals(self) < 0) {
            return -1;
        }
        if (self->uv == NULL) {
            return 0;
        }
    }
    else if (block && PyErr_CheckSignals() < 0) {
        return -1;
    }

    if (tl_dns_answered(self->uv) && tl_dns_dispatch(self) < 0) {
        return -1;
    }
    if (n > 0 && tl_poll_dispatch(self, evs, n, rq_push) < 0) {
        return -1;
    }
    if (self->uv == NULL) {
        return 0;
    }

    if (self->heap_len > 0) {
        double now = loop_now();
        while (self->heap_len > 0 && !(self->heap[0].when > now)) {
            TimerHandleObject *t = tl_timers_remove(self, 0);
            self->n_timers_fired++;
            if (rq_push(self, (HandleObject *)t) < 0) {
                return -1;
            }
        }
    }

    /* Run only what is ready now; what these callbacks schedule waits
     * for the next iteration. */
    Py_ssize_t ntodo = self->rq_len;
    for (Py_ssize_t i = 0; i < ntodo && self->rq_len > 0; i++) {
        HandleObject *h = rq_pop(self);
        int r = 0;
        if (!h->cancelled) {
            self->n_callbacks++;
            r = self->debug ? loop_run_handle_debug(self, h)
                            : tl_handle_run(h);
        }
        Py_DECREF(h);
        if (r < 0) {
            return -1;
        }
    }
    tl_tsafe_drained(self);
    return 0;
}

static PyObject *
Loop_run(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->in_run) {
        PyErr_SetString(PyExc_RuntimeError,
                        "This event loop is already running");
        return NULL;
    }
    self->in_run = 1;
    int r = 0;
    for (;;) {
        r = loop_run_once(self);
        if (r < 0 || self->stopping || self->uv == NULL) {
            break;
        }
    }
    self->in_run = 0;
    tl_tsafe_release(self);
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Drop the queues and free libuv; the Python close() did the checks. */
static PyObject *
Loop_close_impl(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->in_run) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot close a running event loop");
        return NULL;
    }
    self->closed = 1;
    if (self->closed_ns == 0) {
        self->closed_ns = tl_monotonic_ns();
    }
    loop_clear_queues(self);
    if (self->uv != NULL) {
        tl_uv *u = self->uv;
        tl_poll_close_all(self);
        self->uv = NULL;
        uv_free_all(u);
    }
    Py_RETURN_NONE;
}

static PyObject *
Loop_clear_queues(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    loop_clear_queues(self);
    Py_RETURN_NONE;
}

/* In a child after fork(): a new signal socket and new kernel objects
 * of the backend (the inherited ones are shared with the parent), on the
 * same fd numbers. */
static PyObject *
Loop_after_fork(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_uv *u = self->uv;
    if (u == NULL) {
        Py_RETURN_NONE;
    }
    int sv[2];
    if (tl_socketpair_nb(sv) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (tl_fd_replace(sv[0], u->sig_rfd) < 0 ||
        tl_fd_replace(sv[1], u->sig_wfd) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->armed_ns = 0;
    self->sleeping = 0;
    self->wakeup_sent = 0;
    u->timer_fired = 0;
    if (u->be->after_fork(u) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    tl_poll_after_fork(self);
    if (tl_dns_after_fork(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Loop_signal_wakeup_fd(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_closed(self) < 0) {
        return NULL;
    }
    return PyLong_FromLong(self->uv->sig_wfd);
}

/* A new dict of counters and gauges; see docs/observability.md.  On a
 * closed loop the counters keep their final values, the gauges are 0 and
 * uptime stops at close(). */
static PyObject *
Loop_stats(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    int fds, readers, writers;
    tl_poll_count(self, &fds, &readers, &writers);
    int64_t end = self->closed_ns ? self->closed_ns : tl_monotonic_ns();
    return Py_BuildValue(
        "{s:K,s:K,s:n,s:K,s:K,s:K,s:n,s:i,s:i,s:i,s:n,s:K,s:K,s:K,s:d,s:s}",
        "iterations", (unsigned long long)self->n_iterations,
        "callbacks", (unsigned long long)self->n_callbacks,
        "ready", self->rq_len,
        "timers_scheduled", (unsigned long long)self->timer_seq,
        "timers_fired", (unsigned long long)self->n_timers_fired,
        "timers_cancelled", (unsigned long long)self->n_timers_cancelled,
        "timers_pending", self->heap_len,
        "fd_watchers", fds,
        "readers", readers,
        "writers", writers,
        "transports", self->n_transports,
        "bytes_read", (unsigned long long)self->n_bytes_read,
        "bytes_written", (unsigned long long)self->n_bytes_written,
        "slow_callbacks", (unsigned long long)self->n_slow_callbacks,
        "uptime", ns_to_sec(end - self->created_ns),
        "backend", self->backend);
}

/* _debug keeps the object set_debug() got (get_debug() returns it, as
 * asyncio's does); the C flag is its truth value. */
static PyObject *
Loop_get_debug_attr(LoopObject *self, void *c)
{
    if (self->debug_obj != NULL) {
        Py_INCREF(self->debug_obj);
        return self->debug_obj;
    }
    return PyBool_FromLong(self->debug);
}

static int
Loop_set_debug_attr(LoopObject *self, PyObject *v, void *c)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _debug");
        return -1;
    }
    int t = PyObject_IsTrue(v);
    if (t < 0) {
        return -1;
    }
    self->debug = (char)t;
    Py_INCREF(v);
    Py_XSETREF(self->debug_obj, v);
    return 0;
}

static PyGetSetDef Loop_getset[] = {
    {"_debug", (getter)Loop_get_debug_attr, (setter)Loop_set_debug_attr,
     NULL, NULL},
    {NULL}};

static PyMethodDef Loop_methods[] = {
    {"call_soon", (PyCFunction)(void (*)(void))Loop_call_soon,
     METH_FASTCALL | METH_KEYWORDS,
     "call_soon($self, callback, *args, context=None)\n--\n\n"
     "Arrange for a callback to be called as soon as possible."},
    {"call_soon_threadsafe",
     (PyCFunction)(void (*)(void))Loop_call_soon_threadsafe,
     METH_FASTCALL | METH_KEYWORDS,
     "call_soon_threadsafe($self, callback, *args, context=None)\n--\n\n"
     "Like call_soon(), but thread-safe."},
    {"call_later", (PyCFunction)(void (*)(void))Loop_call_later,
     METH_FASTCALL | METH_KEYWORDS,
     "call_later($self, delay, callback, *args, context=None)\n--\n\n"
     "Arrange for a callback to be called after `delay` seconds."},
    {"call_at", (PyCFunction)(void (*)(void))Loop_call_at,
     METH_FASTCALL | METH_KEYWORDS,
     "call_at($self, when, callback, *args, context=None)\n--\n\n"
     "Like call_later(), but uses an absolute time on the loop's clock."},
    {"create_task", (PyCFunction)(void (*)(void))Loop_create_task,
     METH_FASTCALL | METH_KEYWORDS,
#if PY_VERSION_HEX >= 0x030D0000
     /* Other keywords go to asyncio's create_task() (eager_start= from
      * 3.13.3 on), which accepts what that Python accepts. */
     "create_task($self, coro, *, name=None, context=None, **kwargs)\n--\n\n"
#elif PY_VERSION_HEX >= 0x030B0000
     "create_task($self, coro, *, name=None, context=None)\n--\n\n"
#else
     /* asyncio's create_task() takes context= from 3.11 on; so do we. */
     "create_task($self, coro, *, name=None)\n--\n\n"
#endif
     "Schedule a coroutine object; return an asyncio.Task."},
    {"time", (PyCFunction)Loop_time, METH_NOARGS,
     "Return the time according to the loop's clock (time.monotonic)."},
    {"create_future", (PyCFunction)Loop_create_future, METH_NOARGS,
     "Create an asyncio.Future attached to the loop."},
    {"stop", (PyCFunction)Loop_stop, METH_NOARGS,
     "Stop the loop after the callbacks that are ready have run."},
    {"get_debug", (PyCFunction)Loop_get_debug, METH_NOARGS, NULL},
    {"is_running", (PyCFunction)Loop_is_running, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)Loop_is_closed, METH_NOARGS, NULL},
    {"_write_to_self", (PyCFunction)Loop_write_to_self, METH_NOARGS, NULL},
    {"_run", (PyCFunction)Loop_run, METH_NOARGS, NULL},
    {"_close_impl", (PyCFunction)Loop_close_impl, METH_NOARGS, NULL},
    {"_clear_queues", (PyCFunction)Loop_clear_queues, METH_NOARGS, NULL},
    {"_after_fork", (PyCFunction)Loop_after_fork, METH_NOARGS, NULL},
    {"_signal_wakeup_fd", (PyCFunction)Loop_signal_wakeup_fd, METH_NOARGS,
     NULL},
    {"_push_handle", (PyCFunction)Loop_push_handle, METH_O, NULL},
    {"_new_handle", (PyCFunction)(void (*)(void))Loop_new_handle,
     METH_FASTCALL, NULL},
    {"_stats", (PyCFunction)Loop_stats, METH_NOARGS, NULL},
    {"_getaddrinfo", (PyCFunction)tl_dns_getaddrinfo, METH_VARARGS,
     "_getaddrinfo(host, port, family, type, proto, flags) -> Future|None"},
    {"_getnameinfo", (PyCFunction)tl_dns_getnameinfo, METH_VARARGS,
     "_getnameinfo(sockaddr, flags) -> Future|None"},
    {"_watchers", (PyCFunction)tl_poll_watchers, METH_NOARGS, NULL},
    {"_add_reader", (PyCFunction)(void (*)(void))tl_poll_add_reader,
     METH_FASTCALL | METH_KEYWORDS,
     "_add_reader(fd, callback, *args, context=None) -> Handle"},
    {"_add_writer", (PyCFunction)(void (*)(void))tl_poll_add_writer,
     METH_FASTCALL | METH_KEYWORDS,
     "_add_writer(fd, callback, *args, context=None) -> Handle"},
    {"_remove_reader", (PyCFunction)tl_poll_remove_reader, METH_O, NULL},
    {"_remove_writer", (PyCFunction)tl_poll_remove_writer, METH_O, NULL},
    {"_fd_events", (PyCFunction)tl_poll_fd_events, METH_O, NULL},
    {"_sock_add_reader", (PyCFunction)(void (*)(void))tl_sockops_add_reader,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_sock_add_writer", (PyCFunction)(void (*)(void))tl_sockops_add_writer,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_sock_start", (PyCFunction)(void (*)(void))tl_sockops_start,
     METH_FASTCALL, NULL},
    {NULL}};

static PyMemberDef Loop_members[] = {
    {"_closed", T_BOOL, offsetof(LoopObject, closed), 0, NULL},
    {"_stopping", T_BOOL, offsetof(LoopObject, stopping), 0, NULL},
    /* Set by add_signal_handler(): the loop then polls every iteration
     * for the signal socket (loop_may_have_io). */
    {"_signals_watched", T_BOOL, offsetof(LoopObject, signals_watched), 0,
     NULL},

    {"_thread_id", T_OBJECT, offsetof(LoopObject, thread_id), 0, NULL},
    {"_task_factory", T_OBJECT, offsetof(LoopObject, task_factory), 0,
     NULL},
    {"_current_handle", T_OBJECT, offsetof(LoopObject, current_handle), 0,
     NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(LoopObject, weakreflist),
     READONLY},
    {NULL}};

static PyType_Slot Loop_slots[] = {
    {Py_tp_new, Loop_new},
    {Py_tp_dealloc, Loop_dealloc},
    {Py_tp_traverse, Loop_traverse},
    {Py_tp_clear, Loop_clear},
    {Py_tp_methods, Loop_methods},
    {Py_tp_members, Loop_members},
    {Py_tp_getset, Loop_getset},
    {Py_tp_doc, "The C base of tideloop.Loop."},
    {0, NULL}};

static PyType_Spec Loop_spec = {
    .name = "tideloop._core.LoopBase",
    .basicsize = sizeof(LoopObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = Loop_slots,
};

int
tl_loop_init_types(PyObject *module, tl_state *st)
{
    st->LoopBaseType =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &Loop_spec, NULL);
    if (st->LoopBaseType == NULL) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "LoopBase",
                                 (PyObject *)st->LoopBaseType);
}
