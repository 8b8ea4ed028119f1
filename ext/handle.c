/* Handle and TimerHandle: asyncio.Handle / asyncio.TimerHandle in C.
 *
 * A handle owns its callback, its arguments (a tuple, or a lone argument
 * itself until _args is read) and the contextvars.Context it runs in.
 * The loop's ready queue and timer heap hold strong references to the
 * handles they contain. */
#include "tideloop.h"

#include <math.h>
#include <structmember.h>
#include <time.h>

static PyObject *
args_tuple(tl_state *st, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 0) {
        Py_INCREF(st->empty_tuple);
        return st->empty_tuple;
    }
    PyObject *t = PyTuple_New(nargs);
    if (t == NULL) {
        return NULL;
    }
    int atomic = 1;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(t, i, args[i]);
        atomic &= !PyObject_IS_GC(args[i]);
    }
    /* Of objects the GC does not track (ints, strings, None...): it can be
     * in no cycle, and the GC's first pass would untrack it anyway
     * (CPython's _PyTuple_MaybeUntrack); untracked now, no young
     * collection traverses it. */
    if (atomic) {
        PyObject_GC_UnTrack(t);
    }
    return t;
}

/* Store the arguments: one argument is kept as it is, without a tuple
 * (call_soon(cb, x), call_later(d, cb, x), a future's done callbacks);
 * handle_args_tuple() makes the tuple if someone asks for _args.  Not
 * in free-threaded builds: reading _args replaces the field. */
static int
handle_set_args(tl_state *st, HandleObject *h, PyObject *const *args,
                Py_ssize_t nargs)
{
#ifndef Py_GIL_DISABLED
    if (nargs == 1) {
        Py_INCREF(args[0]);
        h->args = args[0];
        h->args_one = 1;
        return 0;
    }
#endif
    h->args = args_tuple(st, args, nargs);
    return h->args == NULL ? -1 : 0;
}

/* Make h->args the tuple asyncio has in Handle._args (a handle with one
 * argument keeps it without one until then): 0, or -1 with an exception
 * set. */
static int
handle_args_tuple(HandleObject *h)
{
    if (!h->args_one) {
        return 0;
    }
    PyObject *t = args_tuple(h->loop->st, &h->args, 1);
    if (t == NULL) {
        return -1;
    }
    Py_SETREF(h->args, t);
    h->args_one = 0;
    return 0;
}

/* Lazy contexts.  asyncio gives each handle made without context= a copy
 * of the current context.  When that one is empty (the common case: a
 * callback scheduling the next, a program that sets no ContextVar) the
 * copy is an empty Context nobody else holds, so any empty Context that
 * nobody else holds will do, made when it is asked for: the handle is
 * `ctx_lazy` and has none.  Its callback runs in the loop's spare empty
 * Context (LoopObject.empty_ctx), lent to the handle for the run; the
 * loop takes it back if it is still empty and was not given out, else
 * the handle keeps it, as it would keep its copy in asyncio.  That saves
 * a Context per handle: its allocation, and the cyclic GC traversing it.
 * Free-threaded builds copy at once: the spare is not shared between
 * threads. */
static int
current_context_empty(void)
{
#ifdef Py_GIL_DISABLED
    return 0;
#else
    PyObject *cur = PyThreadState_Get()->context;
    return cur == NULL ||
           (PyContext_CheckExact(cur) && PyObject_Length(cur) == 0);
#endif
}

/* The handle's context, borrowed: a lazy handle's is made now (an empty
 * Context of its own), or, while its callback runs, is the one it runs
 * in; it is the handle's for good either way.  NULL with an exception
 * set if making it failed, NULL alone after Handle_clear(). */
static PyObject *
handle_context(HandleObject *h)
{
    if (h->ctx_lazy) {
        if (h->context == NULL && (h->context = PyContext_New()) == NULL) {
            return NULL;
        }
        h->ctx_lazy = 0;
    }
    return h->context;
}

/* Lend a lazy handle a context for its run: the loop's spare, or a new
 * one while the spare is lent (a handle's _run() called from a
 * callback).  New reference, also stored in h->context. */
static PyObject *
lazy_context_lend(HandleObject *h)
{
    LoopObject *loop = h->loop;
    PyObject *ctx = loop->empty_ctx;
    if (ctx != NULL) {
        loop->empty_ctx = NULL;
    }
    else if ((ctx = PyContext_New()) == NULL) {
        return NULL;
    }
    Py_INCREF(ctx);
    h->context = ctx;
    return ctx;
}

/* After the run: the loop takes the context back if the callback left it
 * empty and nobody asked for the handle's context meanwhile (which made
 * it the handle's); otherwise the handle keeps it.  Steals `ctx`. */
static void
lazy_context_return(HandleObject *h, PyObject *ctx)
{
    if (h->context != ctx || !h->ctx_lazy || PyObject_Length(ctx) != 0) {
        h->ctx_lazy = 0;
        Py_DECREF(ctx);
        return;
    }
    h->context = NULL;
    Py_DECREF(ctx);
    LoopObject *loop = h->loop;
    if (loop->empty_ctx == NULL) {
        loop->empty_ctx = ctx;
    }
    else {
        Py_DECREF(ctx);
    }
}

/* A handle made without context= gets a copy of the current context, as
 * in asyncio: lazy if it is empty. */
static int
handle_copy_context(HandleObject *h)
{
    if (current_context_empty()) {
        h->ctx_lazy = 1;    /* its context is made when needed */
        return 0;
    }
    h->context = PyContext_CopyCurrent();
    return h->context == NULL ? -1 : 0;
}

/* Debug mode: where the handle was made. */
static int
handle_debug_traceback(tl_state *st, HandleObject *h)
{
    h->source_traceback = PyObject_CallNoArgs(st->extract_stack);
    return h->source_traceback == NULL ? -1 : 0;
}

/* Fill the common fields.  `context` is borrowed; NULL or None means a
 * copy of the current context.  Inline: a handle per callback (the call
 * and its register saves were ~20 instructions of sleep(0)'s step). */
static inline int
handle_fill(tl_state *st, HandleObject *h, LoopObject *loop,
            PyObject *callback, PyObject *const *args, Py_ssize_t nargs,
            PyObject *context)
{
    h->callback = NULL;
    h->args = NULL;
    h->context = NULL;
    h->loop = NULL;
    h->source_traceback = NULL;
    h->repr = NULL;
    h->weakreflist = NULL;
    h->cancelled = 0;
    h->threadsafe = 0;
    h->running = 0;
    h->ctx_lazy = 0;
    h->args_one = 0;
    h->ctx_untracked = 0;

    if (handle_set_args(st, h, args, nargs) < 0) {
        return -1;
    }
    if (context != NULL && context != Py_None) {
        Py_INCREF(context);
        h->context = context;
    }
    else if (handle_copy_context(h) < 0) {
        return -1;
    }
    Py_INCREF(callback);
    h->callback = callback;
    Py_INCREF(loop);
    h->loop = loop;
    if (loop->debug && st->extract_stack != NULL) {
        return handle_debug_traceback(st, h);
    }
    return 0;
}

/* Free lists: a callback chain frees a handle per callback and makes
 * the next; reusing the memory saves the allocator and the GC's
 * allocation count (fewer young collections).  1024 covers a batch of
 * call_soon()s that all run in the next iteration (256 kept a quarter of
 * a batch of 1000: call_soon 2,808 -> 2,704 Ir/op at 1024).  Exact types
 * only; off in free-threaded builds, whose objects carry per-thread GC
 * state. */
#define TL_HANDLE_FREE_MAX 1024

static PyObject *
handle_alloc(tl_state *st, int kind, PyTypeObject *tp)
{
#ifndef Py_GIL_DISABLED
    HandleObject *h = st->handle_free[kind];
    if (h != NULL) {
        st->handle_free[kind] = (HandleObject *)h->callback;
        st->handle_nfree[kind]--;
        return PyObject_Init((PyObject *)h, tp);
    }
#endif
    return (PyObject *)PyObject_GC_New(HandleObject, tp);
}

/* Keep `h` (untracked, its fields cleared, the type's reference not yet
 * dropped) for reuse: 1, or 0 if the caller must free it. */
static int
handle_keep(tl_state *st, HandleObject *h)
{
#ifndef Py_GIL_DISABLED
    int kind = h->is_timer;
    PyTypeObject *want = kind ? st->TimerHandleType : st->HandleType;
    if (Py_TYPE(h) != want || st->handle_nfree[kind] >= TL_HANDLE_FREE_MAX) {
        return 0;
    }
    h->callback = (PyObject *)st->handle_free[kind];
    st->handle_free[kind] = h;
    st->handle_nfree[kind]++;
    return 1;
#else
    (void)st;
    (void)h;
    return 0;
#endif
}

void
tl_handle_free_lists(tl_state *st)
{
    for (int kind = 0; kind < 2; kind++) {
        while (st->handle_free[kind] != NULL) {
            HandleObject *h = st->handle_free[kind];
            st->handle_free[kind] = (HandleObject *)h->callback;
            PyObject_GC_Del(h);
        }
        st->handle_nfree[kind] = 0;
    }
}

HandleObject *
tl_handle_make(tl_state *st, LoopObject *loop, PyObject *callback,
               PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    HandleObject *h = (HandleObject *)handle_alloc(st, 0,
                                                    st->HandleType);
    if (h == NULL) {
        return NULL;
    }
    h->is_timer = 0;
    if (handle_fill(st, h, loop, callback, args, nargs, context) < 0) {
        PyObject_GC_Track(h);
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

HandleObject *
tl_handle_new(tl_state *st, LoopObject *loop, PyObject *callback,
              PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    HandleObject *h = tl_handle_make(st, loop, callback, args, nargs,
                                     context);
    if (h != NULL) {
        PyObject_GC_Track(h);
    }
    return h;
}

TimerHandleObject *
tl_timer_new(tl_state *st, LoopObject *loop, double when, PyObject *when_obj,
             PyObject *callback, PyObject *const *args, Py_ssize_t nargs,
             PyObject *context)
{
    TimerHandleObject *t = (TimerHandleObject *)handle_alloc(
        st, 1, st->TimerHandleType);
    if (t == NULL) {
        return NULL;
    }
    t->when = when;
    t->when_obj = NULL;
    t->seq = 0;
    t->in_heap = 0;
    t->base.is_timer = 1;
    if (handle_fill(st, &t->base, loop, callback, args, nargs, context) < 0) {
        PyObject_GC_Track(t);
        Py_DECREF(t);
        return NULL;
    }
    Py_XINCREF(when_obj);
    t->when_obj = when_obj;
    /* Not tracked yet: tl_timers_push() tracks it, unless the heap of a
     * running loop takes it untracked (loop_gc_adopt, loop.h). */
    return t;
}

void
tl_handle_clear_callback(HandleObject *h)
{
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
    h->args_one = 0;
}

/* Enter `ctx`, the contextvars.Context of a transport, around a protocol
 * callback that does not run from one of the transport's own handles
 * (pause_writing() from write(), error_received() from sendto()).
 * Returns 1 if entered (call tl_context_leave() after the callback), 0 if
 * there is nothing to do: no context, or it is the current one already,
 * which is the common case and costs a pointer comparison.  Entering
 * fails only if ctx is entered further up this thread's stack (a callback
 * of one connection calling into another that calls back into the first):
 * the callback then runs in the current context, as asyncio would run
 * it. */
int
tl_context_join(PyObject *ctx)
{
    if (ctx == NULL || PyThreadState_Get()->context == ctx) {
        return 0;
    }
    if (PyContext_Enter(ctx) < 0) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* The context argument of a transport's _new(): `arg` (NULL if not
 * given) must be a contextvars.Context or None.  *ctx is borrowed, NULL
 * for none. */
int
tl_context_arg(PyObject *arg, PyObject **ctx)
{
    *ctx = NULL;
    if (arg == NULL || arg == Py_None) {
        return 0;
    }
    if (!PyContext_CheckExact(arg)) {
        PyErr_Format(PyExc_TypeError,
                     "context must be a contextvars.Context, not %.200s",
                     Py_TYPE(arg)->tp_name);
        return -1;
    }
    *ctx = arg;
    return 0;
}

/* Leave the context tl_context_join() entered.  Keeps the pending
 * exception of the callback, if any. */
void
tl_context_leave(PyObject *ctx, int joined)
{
    if (joined && PyContext_Exit(ctx) < 0) {
        /* Cannot happen: tl_context_join() entered it. */
        PyErr_Clear();
    }
}

static PyObject *
context_run_slow(PyObject *ctx, PyObject *cb, PyObject *const *args,
                 Py_ssize_t n)
{
    PyObject *run = PyObject_GetAttrString(ctx, "run");
    if (run == NULL) {
        return NULL;
    }
    PyObject *full = PyTuple_New(n + 1);
    if (full == NULL) {
        Py_DECREF(run);
        return NULL;
    }
    Py_INCREF(cb);
    PyTuple_SET_ITEM(full, 0, cb);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(full, i + 1, args[i]);
    }
    PyObject *res = PyObject_Call(run, full, NULL);
    Py_DECREF(full);
    Py_DECREF(run);
    return res;
}

int
tl_handle_run(HandleObject *h)
{
    PyObject *cb = h->callback;
    PyObject *args = h->args;
    PyObject *ctx = h->context;
    PyObject *res = NULL;
    PyObject *exc = NULL;
    /* A lazy handle's context while its run lends it one; a nested run
     * (its _run() from its own callback) finds it entered, as asyncio's
     * would. */
    int lent = h->ctx_lazy && ctx == NULL;

    /* Re-entrancy: the callback may cancel its own handle, which clears
     * these fields; hold our own references for the duration. */
    Py_INCREF(cb);
    Py_INCREF(args);
    /* The arguments: the one argument itself, or the tuple's items. */
    PyObject *const *argv = &args;
    Py_ssize_t nargs = 1;
    if (!h->args_one) {
        argv = &PyTuple_GET_ITEM(args, 0);
        nargs = PyTuple_GET_SIZE(args);
    }
    if (lent) {
        ctx = lazy_context_lend(h);
    }
    else {
        Py_INCREF(ctx);
    }
    if (ctx == NULL) {
        exc = tl_fetch_exception();
    }
    else if (!PyContext_CheckExact(ctx)) {
        /* asyncio calls context.run(callback, *args): keep its duck
         * typing and its AttributeError for a non-context. */
        res = context_run_slow(ctx, cb, argv, nargs);
        if (res == NULL) {
            exc = tl_fetch_exception();
        }
    }
    else if (PyContext_Enter(ctx) < 0) {
        exc = tl_fetch_exception();
    }
    else {
        /* Re-entrancy: other threads may call cancel()/cancelled() while
         * the callback runs (handle_wait_not_running). */
        h->running = h->threadsafe;
        res = PyObject_Vectorcall(cb, argv, nargs, NULL);
        h->running = 0;
        if (res == NULL) {
            exc = tl_fetch_exception();
        }
        if (PyContext_Exit(ctx) < 0) {
            /* Cannot happen: we entered it just above. */
            PyErr_Clear();
        }
    }
    Py_DECREF(cb);
    Py_DECREF(args);
    if (lent && ctx != NULL) {
        lazy_context_return(h, ctx);
    }
    else {
        Py_XDECREF(ctx);
    }
    if (exc == NULL) {
        Py_DECREF(res);
        return 0;
    }
    if (PyErr_GivenExceptionMatches(exc, PyExc_SystemExit) ||
        PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt)) {
        tl_restore_exception(exc);
        return -1;
    }
    tl_state *st = h->loop->st;
    if (st->report_exception == NULL) {
        /* Only before tideloop/_loop.py ran: report the bare exception. */
        PyErr_WriteUnraisable(exc);
        Py_DECREF(exc);
        return 0;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(st->report_exception,
                                               (PyObject *)h, exc, NULL);
    Py_DECREF(exc);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* ---- Python-visible API -------------------------------------------- */

static PyObject *
Handle_new_disallowed(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyErr_Format(PyExc_TypeError, "cannot create '%s' instances directly",
                 type->tp_name);
    return NULL;
}

static int
Handle_traverse(HandleObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->callback);
    Py_VISIT(self->args);
    Py_VISIT(self->context);
    Py_VISIT(self->loop);
    Py_VISIT(self->source_traceback);
    Py_VISIT(self->repr);
    if (self->is_timer) {
        Py_VISIT(((TimerHandleObject *)self)->when_obj);
    }
    return 0;
}

static int
Handle_clear(HandleObject *self)
{
    Py_CLEAR(self->callback);
    Py_CLEAR(self->args);
    self->args_one = 0;
    Py_CLEAR(self->context);
    self->ctx_lazy = 0;
    self->ctx_untracked = 0;
    Py_CLEAR(self->source_traceback);
    Py_CLEAR(self->repr);
    /* The loop reference is kept: heap membership needs it. */
    return 0;
}

static void
Handle_dealloc(HandleObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    Handle_clear(self);
    LoopObject *loop = self->loop;
    self->loop = NULL;
    if (loop == NULL || !handle_keep(loop->st, self)) {
        tp->tp_free((PyObject *)self);
    }
    /* Re-entrancy: the loop's last reference may go here; the handle is
     * already freed or kept. */
    Py_XDECREF(loop);
    Py_DECREF(tp);
}

static void
TimerHandle_dealloc(TimerHandleObject *self)
{
    Py_CLEAR(self->when_obj);
    Handle_dealloc(&self->base);
}

/* Python 3.14's call_soon_threadsafe handles (events._ThreadSafeHandle)
 * hold a lock while their callback runs, so cancel() and cancelled() called
 * from another thread return only once it has finished; the thread running
 * it is not held up.  Rare (a thread cancelling a callback that is running
 * right now), so no lock per handle: wait with the GIL released, polling
 * the flag that tl_handle_run clears under the GIL. */
static void
handle_wait_not_running(HandleObject *h)
{
#if PY_VERSION_HEX >= 0x030E0000
    if (!h->running) {
        return;
    }
    PyObject *tid = h->loop->thread_id;
    if (PyLong_Check(tid) &&
        PyLong_AsUnsignedLong(tid) == PyThread_get_thread_ident()) {
        return;     /* the running callback's own thread (an RLock) */
    }
    PyErr_Clear();
    long ns = 20000;
    Py_INCREF(h);
    while (h->running) {
        struct timespec ts = {0, ns};
        Py_BEGIN_ALLOW_THREADS
        nanosleep(&ts, NULL);
        Py_END_ALLOW_THREADS
        ns = ns < 1000000 ? ns * 2 : ns;
    }
    Py_DECREF(h);
#else
    (void)h;
#endif
}

static PyObject *
Handle_cancel(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    handle_wait_not_running(self);
    if (self->cancelled) {
        Py_RETURN_NONE;
    }
    self->cancelled = 1;
    if (self->is_timer) {
        tl_loop_timer_cancelled(self->loop, (TimerHandleObject *)self);
    }
    if (self->loop->debug) {
        /* Keep a repr for debugging: the callback is dropped below. */
        PyObject *r = PyObject_Repr((PyObject *)self);
        if (r == NULL) {
            return NULL;
        }
        Py_XSETREF(self->repr, r);
    }
    tl_handle_clear_callback(self);
    Py_RETURN_NONE;
}

static PyObject *
Handle_cancelled(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    handle_wait_not_running(self);
    return PyBool_FromLong(self->cancelled);
}

static PyObject *
Handle_get_context(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *ctx = handle_context(self);
    if (ctx == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_INCREF(ctx);
    return ctx;
}

static PyObject *
Handle_run_method(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->callback == NULL) {
        /* asyncio would call None and report a TypeError; a cancelled
         * handle has nothing to run. */
        Py_RETURN_NONE;
    }
    if (tl_handle_run(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Handle_repr(HandleObject *self)
{
    if (self->repr != NULL) {
        Py_INCREF(self->repr);
        return self->repr;
    }
    tl_state *st = self->loop->st;
    if (st->handle_repr == NULL) {
        return PyUnicode_FromFormat("<%s>", Py_TYPE(self)->tp_name);
    }
    return PyObject_CallOneArg(st->handle_repr, (PyObject *)self);
}

#define GET_OR_NONE(field)                                                  \
    do {                                                                    \
        PyObject *v_ = (field);                                             \
        if (v_ == NULL) {                                                   \
            Py_RETURN_NONE;                                                 \
        }                                                                   \
        Py_INCREF(v_);                                                      \
        return v_;                                                          \
    } while (0)

static PyObject *
Handle_get_callback(HandleObject *self, void *c)
{
    GET_OR_NONE(self->callback);
}

static PyObject *
Handle_get_args(HandleObject *self, void *c)
{
    if (handle_args_tuple(self) < 0) {
        return NULL;
    }
    GET_OR_NONE(self->args);
}

static PyObject *
Handle_get_cancelled(HandleObject *self, void *c)
{
    return PyBool_FromLong(self->cancelled);
}

static PyObject *
Handle_get_loop(HandleObject *self, void *c)
{
    GET_OR_NONE((PyObject *)self->loop);
}

static PyObject *
Handle_get_source_traceback(HandleObject *self, void *c)
{
    GET_OR_NONE(self->source_traceback);
}

static PyObject *
Handle_get_ctx(HandleObject *self, void *c)
{
    return Handle_get_context(self, NULL);
}

static PyObject *
Handle_get_saved_repr(HandleObject *self, void *c)
{
    GET_OR_NONE(self->repr);
}

static PyObject *
Handle_get_threadsafe(HandleObject *self, void *c)
{
    return PyBool_FromLong(self->threadsafe);
}

static PyGetSetDef Handle_getset[] = {
    {"_threadsafe", (getter)Handle_get_threadsafe, NULL, NULL, NULL},
    {"_callback", (getter)Handle_get_callback, NULL, NULL, NULL},
    {"_args", (getter)Handle_get_args, NULL, NULL, NULL},
    {"_cancelled", (getter)Handle_get_cancelled, NULL, NULL, NULL},
    {"_loop", (getter)Handle_get_loop, NULL, NULL, NULL},
    {"_source_traceback", (getter)Handle_get_source_traceback, NULL, NULL,
     NULL},
    {"_context", (getter)Handle_get_ctx, NULL, NULL, NULL},
    {"_repr", (getter)Handle_get_saved_repr, NULL, NULL, NULL},
    {NULL}};

static PyMethodDef Handle_methods[] = {
    {"cancel", (PyCFunction)Handle_cancel, METH_NOARGS,
     "Cancel the callback.  Does nothing if it already ran."},
    {"cancelled", (PyCFunction)Handle_cancelled, METH_NOARGS,
     "Return True if the callback was cancelled."},
    {"get_context", (PyCFunction)Handle_get_context, METH_NOARGS,
     "Return the contextvars.Context the callback runs in."},
    {"_run", (PyCFunction)Handle_run_method, METH_NOARGS, NULL},
    {NULL}};

static PyMemberDef Handle_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(HandleObject, weakreflist),
     READONLY},
    {NULL}};

static PyType_Slot Handle_slots[] = {
    {Py_tp_new, Handle_new_disallowed},
    {Py_tp_dealloc, Handle_dealloc},
    {Py_tp_traverse, Handle_traverse},
    {Py_tp_clear, Handle_clear},
    {Py_tp_repr, Handle_repr},
    {Py_tp_methods, Handle_methods},
    {Py_tp_getset, Handle_getset},
    {Py_tp_members, Handle_members},
    {Py_tp_doc, "Object returned by callback registration methods."},
    {0, NULL}};

static PyType_Spec Handle_spec = {
    .name = "tideloop._core.Handle",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = Handle_slots,
};

/* ---- TimerHandle ---------------------------------------------------- */

static PyObject *
TimerHandle_when(TimerHandleObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->when_obj != NULL) {
        Py_INCREF(self->when_obj);
        return self->when_obj;
    }
    return PyFloat_FromDouble(self->when);
}

static PyObject *
TimerHandle_get_scheduled(TimerHandleObject *self, void *c)
{
    return PyBool_FromLong(self->in_heap);
}

static Py_hash_t
TimerHandle_hash(TimerHandleObject *self)
{
    PyObject *w = TimerHandle_when(self, NULL);
    if (w == NULL) {
        return -1;
    }
    Py_hash_t h = PyObject_Hash(w);
    Py_DECREF(w);
    return h;
}

static int
eq_truth(PyObject *x, PyObject *y)
{
    PyObject *r = PyObject_RichCompare(x, y, Py_EQ);
    if (r == NULL) {
        return -1;
    }
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

static int
timer_eq(TimerHandleObject *a, TimerHandleObject *b)
{
    if (a->when != b->when || a->base.cancelled != b->base.cancelled) {
        return 0;
    }
    /* asyncio compares with ==, which calls __eq__ even on the same
     * object (PyObject_RichCompareBool would skip it). */
    PyObject *ca = a->base.callback ? a->base.callback : Py_None;
    PyObject *cb = b->base.callback ? b->base.callback : Py_None;
    int r = eq_truth(ca, cb);
    if (r <= 0) {
        return r;
    }
    if (handle_args_tuple(&a->base) < 0 || handle_args_tuple(&b->base) < 0) {
        return -1;
    }
    PyObject *aa = a->base.args ? a->base.args : Py_None;
    PyObject *ab = b->base.args ? b->base.args : Py_None;
    return eq_truth(aa, ab);
}

static PyObject *
TimerHandle_richcompare(TimerHandleObject *self, PyObject *other, int op)
{
    tl_state *st = self->base.loop->st;
    if (!PyObject_TypeCheck(other, st->TimerHandleType)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    TimerHandleObject *o = (TimerHandleObject *)other;
    int r;
    switch (op) {
    case Py_LT:
        return PyBool_FromLong(self->when < o->when);
    case Py_GT:
        return PyBool_FromLong(self->when > o->when);
    case Py_LE:
    case Py_GE:
        if (op == Py_LE ? self->when < o->when : self->when > o->when) {
            Py_RETURN_TRUE;
        }
        r = timer_eq(self, o);
        if (r < 0) {
            return NULL;
        }
        return PyBool_FromLong(r);
    case Py_EQ:
    case Py_NE:
        r = timer_eq(self, o);
        if (r < 0) {
            return NULL;
        }
        return PyBool_FromLong(op == Py_EQ ? r : !r);
    default:
        Py_RETURN_NOTIMPLEMENTED;
    }
}

static PyGetSetDef TimerHandle_getset[] = {
    {"_when", (getter)TimerHandle_when, NULL, NULL, NULL},
    {"_scheduled", (getter)TimerHandle_get_scheduled, NULL, NULL, NULL},
    {NULL}};

static PyMethodDef TimerHandle_methods[] = {
    {"when", (PyCFunction)TimerHandle_when, METH_NOARGS,
     "Return the scheduled time, as a float on the loop's clock."},
    {NULL}};

static PyType_Slot TimerHandle_slots[] = {
    {Py_tp_dealloc, TimerHandle_dealloc},
    {Py_tp_traverse, Handle_traverse},
    {Py_tp_clear, Handle_clear},
    {Py_tp_hash, TimerHandle_hash},
    {Py_tp_richcompare, TimerHandle_richcompare},
    {Py_tp_methods, TimerHandle_methods},
    {Py_tp_getset, TimerHandle_getset},
    {Py_tp_doc, "Object returned by timed callback registration methods."},
    {0, NULL}};

static PyType_Spec TimerHandle_spec = {
    .name = "tideloop._core.TimerHandle",
    .basicsize = sizeof(TimerHandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = TimerHandle_slots,
};

int
tl_handle_init_types(PyObject *module, tl_state *st)
{
    st->HandleType = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &Handle_spec, NULL);
    if (st->HandleType == NULL) {
        return -1;
    }
    PyObject *bases = PyTuple_Pack(1, (PyObject *)st->HandleType);
    if (bases == NULL) {
        return -1;
    }
    st->TimerHandleType = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &TimerHandle_spec, bases);
    Py_DECREF(bases);
    if (st->TimerHandleType == NULL) {
        return -1;
    }
    /* Error messages use tp_name: make it read 'Handle' and 'TimerHandle'
     * as asyncio's do (__name__ and __module__ are kept elsewhere). */
    st->HandleType->tp_name = "Handle";
    st->TimerHandleType->tp_name = "TimerHandle";
    if (PyModule_AddObjectRef(module, "Handle",
                              (PyObject *)st->HandleType) < 0 ||
        PyModule_AddObjectRef(module, "TimerHandle",
                              (PyObject *)st->TimerHandleType) < 0) {
        return -1;
    }
    return 0;
}
