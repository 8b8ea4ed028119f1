/* loop.h: what loop.c (the iteration, creation and teardown, the method
 * table) and schedule.c (call_soon/call_at/call_later/create_task and the
 * arguments they take) share.  Not for the other files: they use the C
 * entry points declared in tideloop.h (tl_loop_call_soon,
 * tl_loop_create_future, tl_loop_push_ready). */
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

/* ---- the ready queue: a ring; loop.c grows its storage ------------- */

int tl_loop_rq_grow(LoopObject *self);

/* Steals the reference to h. */
static inline int
rq_push(LoopObject *self, HandleObject *h)
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
