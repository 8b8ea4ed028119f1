/* LoopBase: the event loop's iteration, its creation and teardown, and
 * the type (method table, members).  How callbacks get onto the loop
 * (call_soon, call_at, call_later, create_task, create_future and their
 * C entry points) is schedule.c; what the two share is loop.h.
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
#include "loop.h"
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

/* ---- the ready queue's storage, the GC (loop.h) --------------------- */

int
tl_loop_rq_grow(LoopObject *self)
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

void
tl_loop_track_all(LoopObject *self)
{
    for (Py_ssize_t i = 0; i < self->rq_len; i++) {
        loop_gc_track(self->rq[(self->rq_head + i) & (self->rq_cap - 1)]);
    }
    for (Py_ssize_t i = 0; i < self->heap_len; i++) {
        loop_gc_track((HandleObject *)self->heap[i].t);
    }
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
    /* object.__new__ allocates it (tp_alloc) as a Python class's instance
     * is made: on 3.11 that also prepares the inline attribute values of
     * a subclass's managed __dict__ (tideloop.Loop), which tp_alloc alone
     * leaves to a dict made at the first attribute set.  Each attribute
     * lookup then went through that dict, the method lookups too
     * (loop.call_soon from a Task's every step: ~100 instructions). */
    LoopObject *self = (LoopObject *)PyBaseObject_Type.tp_new(
        type, st->empty_tuple, NULL);
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
            loop_gc_release(self, rq_pop(self));
        }
        while (self->heap_len > 0) {
            loop_gc_release(self, (HandleObject *)tl_timers_pop(self));
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
    Py_VISIT(self->empty_ctx);
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
    Py_CLEAR(self->empty_ctx);
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
 * backend: the libuv backend's wait also runs DNS's libuv loop.  poll.c
 * counts the fd watchers (npollers_live), lingering ones included. */
static int
loop_may_have_io(LoopObject *self)
{
    tl_uv *u = self->uv;
    return u->be->waits_in_uv || self->signals_watched ||
           self->npollers_live > 0 || (u->dns != NULL && u->dns->count > 0);
}

/* A blocking poll first tries without releasing the GIL (a timeout of
 * 0): on a busy loop an fd is often ready by then (an echo over
 * loopback: always), and releasing and taking back the GIL costs about
 * 400 instructions.  After a try that finds nothing, the next
 * TL_POLL_TRY_SKIP blocking polls sleep at once: an idle loop pays one
 * extra epoll_wait() in TL_POLL_TRY_SKIP + 1 sleeps.  The try reports
 * what a blocking poll would have reported at once.  Only the epoll
 * backend (the libuv backend's wait runs DNS's uv loop), and only while
 * the loop's thread is the interpreter's only one: another (an
 * executor's worker) may be waiting for the GIL, and gets it at every
 * sleep as before, not only at the eval loop's switch interval. */
#define TL_POLL_TRY_SKIP 8

static int
loop_thread_alone(void)
{
#ifdef Py_GIL_DISABLED
    /* No GIL to hand over, and the thread list may change under us. */
    return 0;
#else
    PyThreadState *head = PyInterpreterState_ThreadHead(
        PyThreadState_GetInterpreter(PyThreadState_Get()));
    return head != NULL && PyThreadState_Next(head) == NULL;
#endif
}

/* 1 if the try found something: *n events (0 if only the loop's own fds
 * fired: a timer, a signal, a DNS answer), or -1 for an error; 0 if the
 * poll must sleep. */
static int
loop_poll_try(LoopObject *self, int *n, tl_event **evs)
{
    tl_uv *u = self->uv;
    if (u->be->waits_in_uv || !loop_thread_alone()) {
        return 0;
    }
    if (self->poll_try_skip > 0) {
        self->poll_try_skip--;
        return 0;
    }
    *n = u->be->wait(u, 0, evs);
    if (*n != 0 || u->timer_fired || u->sig_pending || tl_dns_answered(u)) {
        return 1;
    }
    self->poll_try_skip = TL_POLL_TRY_SKIP;
    return 0;
}

static int
loop_run_once(LoopObject *self)
{
    /* (The two calls of every iteration into other files, here and at
     * the end, only when they have something to do.) */
    if (self->heap_len > 0) {
        tl_timers_prune(self);
    }
    if (self->uv == NULL) {
        return 0;
    }
    /* Never poll a lingering sock_* registration (poll.c); normally the
     * previous iteration's end dropped them. */
    if (self->n_lingering > 0) {
        tl_poll_flush(self);
    }
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
    else if (block && loop_poll_try(self, &n, &evs)) {
        /* Found without sleeping: handled as a blocking poll's result. */
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
            TimerHandleObject *t = tl_timers_pop(self);
            self->n_timers_fired += !t->base.cancelled;
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
        loop_gc_release(self, h);
        if (r < 0) {
            return -1;
        }
    }
    if (self->n_lingering > 0 && self->uv != NULL) {
        tl_poll_flush(self);
    }
    if (self->ts != NULL) {     /* producers have waited once */
        tl_tsafe_drained(self);
    }
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
    tl_loop_track_all(self);
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
        "timers_pending", self->heap_len - self->heap_cancelled,
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

/* Read-only: the heap's bookkeeping (timers.c). */
static PyObject *
Loop_get_timer_cancelled_count(LoopObject *self, void *c)
{
    return PyLong_FromSsize_t(self->timer_cancelled_count);
}

static PyGetSetDef Loop_getset[] = {
    {"_debug", (getter)Loop_get_debug_attr, (setter)Loop_set_debug_attr,
     NULL, NULL},
    {"_timer_cancelled_count", (getter)Loop_get_timer_cancelled_count, NULL,
     "Cancelled timers asyncio would count as still scheduled.", NULL},
    {NULL}};

static PyMethodDef Loop_methods[] = {
    {"call_soon", (PyCFunction)(void (*)(void))tl_sched_call_soon,
     METH_FASTCALL | METH_KEYWORDS,
     "call_soon($self, callback, *args, context=None)\n--\n\n"
     "Arrange for a callback to be called as soon as possible."},
    {"call_soon_threadsafe",
     (PyCFunction)(void (*)(void))tl_sched_call_soon_threadsafe,
     METH_FASTCALL | METH_KEYWORDS,
     "call_soon_threadsafe($self, callback, *args, context=None)\n--\n\n"
     "Like call_soon(), but thread-safe."},
    {"call_later", (PyCFunction)(void (*)(void))tl_sched_call_later,
     METH_FASTCALL | METH_KEYWORDS,
     "call_later($self, delay, callback, *args, context=None)\n--\n\n"
     "Arrange for a callback to be called after `delay` seconds."},
    {"call_at", (PyCFunction)(void (*)(void))tl_sched_call_at,
     METH_FASTCALL | METH_KEYWORDS,
     "call_at($self, when, callback, *args, context=None)\n--\n\n"
     "Like call_later(), but uses an absolute time on the loop's clock."},
    {"create_task", (PyCFunction)(void (*)(void))tl_sched_create_task,
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
    {"time", (PyCFunction)tl_sched_time, METH_NOARGS,
     "Return the time according to the loop's clock (time.monotonic)."},
    {"create_future", (PyCFunction)tl_sched_create_future, METH_NOARGS,
     "Create an asyncio.Future attached to the loop."},
    {"stop", (PyCFunction)Loop_stop, METH_NOARGS,
     "Stop the loop after the callbacks that are ready have run."},
    {"get_debug", (PyCFunction)Loop_get_debug, METH_NOARGS, NULL},
    {"is_running", (PyCFunction)Loop_is_running, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)Loop_is_closed, METH_NOARGS, NULL},
    {"_write_to_self", (PyCFunction)tl_sched_write_to_self, METH_NOARGS, NULL},
    {"_run", (PyCFunction)Loop_run, METH_NOARGS, NULL},
    {"_close_impl", (PyCFunction)Loop_close_impl, METH_NOARGS, NULL},
    {"_clear_queues", (PyCFunction)Loop_clear_queues, METH_NOARGS, NULL},
    {"_after_fork", (PyCFunction)Loop_after_fork, METH_NOARGS, NULL},
    {"_signal_wakeup_fd", (PyCFunction)Loop_signal_wakeup_fd, METH_NOARGS,
     NULL},
    {"_push_handle", (PyCFunction)tl_sched_push_handle, METH_O, NULL},
    {"_new_handle", (PyCFunction)(void (*)(void))tl_sched_new_handle,
     METH_FASTCALL, NULL},
    {"_stats", (PyCFunction)Loop_stats, METH_NOARGS, NULL},
    {"_getaddrinfo", (PyCFunction)(void (*)(void))tl_dns_getaddrinfo,
     METH_FASTCALL,
     "_getaddrinfo(host, port, family, type, proto, flags, checked=False)"
     " -> list|Future|None|NotImplemented"},
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
    {"_accept_made", (PyCFunction)(void (*)(void))tl_accept_made,
     METH_FASTCALL, NULL},
#ifdef TL_HAVE_ACCEPT_BATCH
    {"_accept_batch", (PyCFunction)(void (*)(void))tl_accept_batch,
     METH_FASTCALL, NULL},
#endif
    {"_sock_end", (PyCFunction)tl_sockops_end, METH_O, NULL},
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
