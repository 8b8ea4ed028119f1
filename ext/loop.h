/* loop.h: what loop.c (the iteration, creation and teardown, the method
 * table), schedule.c (call_soon/call_at/call_later/create_task and the
 * arguments they take) and timers.c (the timer heap) share.  Not for the
 * other files: they use the C entry points declared in tideloop.h
 * (tl_loop_call_soon, tl_loop_create_future, tl_loop_push_ready). */
#ifndef TL_LOOP_H
#define TL_LOOP_H

#include "tideloop.h"

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

static inline int
loop_check_closed(LoopObject *self)
{
    /* _closed is writable from Python; the libuv state is what counts. */
    if (self->closed || self->uv == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    return 0;
}

/* ---- handles the loop holds, and the GC ---------------------------- */

/* A handle waits in the ready queue for the rest of an iteration or, in a
 * call_soon_threadsafe flood, for up to TL_TSAFE_HIGH posts; a timer
 * waits in the heap (timers.c) for its deadline or, cancelled, for the
 * prune.  The young collections that the allocations meanwhile trigger
 * found every such handle and its context copy alive, promoted them, and
 * the promotions triggered full collections (threadsafe row, 1.5M posts:
 * 126 ms of GC, 40% of the CPU time; timers_churn, 100,000 timers: a
 * third of the instructions in Handle_traverse and the GC's visits;
 * rloop's handles are not GC objects).  While the loop runs, its run()
 * frame holds it, so it and every handle in its queue and heap is alive:
 * untracked there (loop_gc_untrack), the GC neither traverses nor
 * promotes them, and cannot free them either way.  A handle that
 * outlives the loop's reference is tracked again when the queue or the
 * heap drops it (loop_gc_release; one that dies there never is, which
 * saves the GC list operations), and so is every handle still queued or
 * in the heap when run() returns (tl_loop_track_all): a loop that is not
 * running may be garbage, and its queue and heap with it, in a cycle
 * only the GC frees.  The context copy goes with its handle while the
 * handle holds the only reference to it.  Not in free-threaded builds
 * (their GC keeps per-object state; the handle free list is off there
 * too). */
static inline void
loop_gc_untrack_context(HandleObject *h)
{
#ifndef Py_GIL_DISABLED
    PyObject *ctx = h->context;
    if (ctx != NULL && Py_REFCNT(ctx) == 1 && PyContext_CheckExact(ctx)) {
        PyObject_GC_UnTrack(ctx);
        h->ctx_untracked = 1;
    }
#else
    (void)h;
#endif
}

static inline void
loop_gc_untrack(HandleObject *h)
{
#ifndef Py_GIL_DISABLED
    PyObject_GC_UnTrack(h);
    loop_gc_untrack_context(h);
#else
    (void)h;
#endif
}

/* The heap takes a timer that tl_timer_new() made untracked, or the
 * ready queue a handle that tl_handle_make() made untracked (rq_adopt):
 * the GC tracks it unless the loop runs (then only its context copy
 * goes untracked too). */
static inline void
loop_gc_adopt(LoopObject *self, HandleObject *h)
{
#ifndef Py_GIL_DISABLED
    if (self->in_run) {
        loop_gc_untrack_context(h);
        return;
    }
#endif
    PyObject_GC_Track(h);
}

static inline void
loop_gc_track_object(PyObject *o)
{
#ifndef Py_GIL_DISABLED
    if (!PyObject_GC_IsTracked(o)) {
        PyObject_GC_Track(o);
    }
#else
    (void)o;
#endif
}

/* Track the context loop_gc_untrack_context() untracked, if any: only
 * there do contexts go untracked (the flag saves asking the GC). */
static inline void
loop_gc_track_context(HandleObject *h)
{
    if (h->ctx_untracked) {
        h->ctx_untracked = 0;
        loop_gc_track_object(h->context);
    }
}

static inline void
loop_gc_track(HandleObject *h)
{
    loop_gc_track_object((PyObject *)h);
    loop_gc_track_context(h);
}

/* Drop the reference the queue or the heap held.  A handle of our own
 * types that dies here is not tracked again (Handle_dealloc untracks only
 * if tracked); anything else is, and so is the context in any case (some
 * CPython versions' context dealloc requires a tracked object). */
static inline void
loop_gc_release(LoopObject *self, HandleObject *h)
{
    PyTypeObject *tp = Py_TYPE(h);
    if (Py_REFCNT(h) > 1 ||
        (tp != self->st->HandleType && tp != self->st->TimerHandleType)) {
        loop_gc_track(h);
    }
    else {
        loop_gc_track_context(h);
    }
    Py_DECREF(h);
}

/* run() returns: track every handle still queued or in the heap (see
 * loop_gc_untrack). */
void tl_loop_track_all(LoopObject *self);

/* ---- the ready queue: a ring; loop.c grows its storage ------------- */

int tl_loop_rq_grow(LoopObject *self);

/* Steals the reference to h. */
static inline int
rq_put(LoopObject *self, HandleObject *h)
{
    if (self->rq_len == self->rq_cap && tl_loop_rq_grow(self) < 0) {
        Py_DECREF(h);
        return -1;
    }
    self->rq[(self->rq_head + self->rq_len) & (self->rq_cap - 1)] = h;
    self->rq_len++;
    self->ts_pending += h->threadsafe;
    return 0;
}

/* Steals the reference to h, a tracked handle. */
static inline int
rq_push(LoopObject *self, HandleObject *h)
{
    if (rq_put(self, h) < 0) {
        return -1;
    }
    if (self->in_run) {
        loop_gc_untrack(h);
    }
    return 0;
}

/* Steals the reference to h, a handle tl_handle_make() made untracked:
 * the GC tracks it unless the loop runs (as loop_gc_adopt), which saves
 * tracking it only to untrack it at once. */
static inline int
rq_adopt(LoopObject *self, HandleObject *h)
{
    if (rq_put(self, h) < 0) {
        return -1;
    }
    loop_gc_adopt(self, h);
    return 0;
}

/* Returns the reference the queue held: give it to loop_gc_release(). */
static inline HandleObject *
rq_pop(LoopObject *self)
{
    HandleObject *h = self->rq[self->rq_head];
    self->rq_head = (self->rq_head + 1) & (self->rq_cap - 1);
    self->rq_len--;
    self->ts_pending -= h->threadsafe;
    return h;
}

/* schedule.c: the scheduling methods of LoopBase (loop.c's method table). */
PyObject *tl_sched_call_soon(LoopObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames);
PyObject *tl_sched_call_soon_threadsafe(LoopObject *self,
                                        PyObject *const *args,
                                        Py_ssize_t nargs, PyObject *kwnames);
PyObject *tl_sched_call_later(LoopObject *self, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames);
PyObject *tl_sched_call_at(LoopObject *self, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames);
PyObject *tl_sched_create_task(LoopObject *self, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames);
PyObject *tl_sched_time(LoopObject *self, PyObject *ignored);
PyObject *tl_sched_create_future(LoopObject *self, PyObject *ignored);
PyObject *tl_sched_push_handle(LoopObject *self, PyObject *h);
PyObject *tl_sched_new_handle(LoopObject *self, PyObject *const *args,
                              Py_ssize_t nargs);
PyObject *tl_sched_write_to_self(LoopObject *self, PyObject *ignored);

#endif
