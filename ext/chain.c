/* chain.c: wrap_future()'s fast path, for run_in_executor().
 *
 * asyncio.wrap_future(cf, loop=loop) makes loop.create_future() and
 * chains the two (asyncio.futures._chain_future): cancelling the asyncio
 * future cancels cf; cf's outcome is copied to the asyncio future in the
 * loop's thread through loop.call_soon_threadsafe().  Those closures are
 * Python code, one of them run by the executor's thread holding the GIL,
 * and the copy calls three concurrent.futures methods that each take the
 * future's lock.
 *
 * A _FutureChain does the same in C when cf is an exact
 * concurrent.futures.Future (what ThreadPoolExecutor.submit() returns)
 * and loop.create_future() an exact asyncio.Future: the same calls in the
 * same order, by name, on the loop and the asyncio future.  The one
 * shortcut: a finished cf's outcome is read from its fields (_result,
 * _exception), which never change once it is finished; a cancelled one
 * goes through its methods, as in asyncio.  Anything else goes to
 * asyncio's own _chain_future(). */
#include "tideloop.h"

/* tl_state.chain_objs */
enum {
    TL_CHAIN_CFUTURE,      /* concurrent.futures.Future */
    TL_CHAIN_FINISHED,     /* concurrent.futures._base.FINISHED */
    TL_CHAIN_PY_CHAIN,     /* asyncio.futures._chain_future */
    TL_CHAIN_CONVERT_EXC,  /* asyncio.futures._convert_future_exc */
    TL_CHAIN_GET_RUNNING,  /* asyncio.events._get_running_loop */
};

/* tl_state.chain_names, in this order. */
static const char *const chain_name_list[] = {
    "cancelled", "cancel", "done", "is_closed", "call_soon_threadsafe",
    "get_loop", "create_future", "add_done_callback", "set_result",
    "set_exception", "_state", "_result", "_exception", "exception",
    "result",
};
enum {
    N_CANCELLED, N_CANCEL, N_DONE, N_IS_CLOSED, N_CALL_SOON_THREADSAFE,
    N_GET_LOOP, N_CREATE_FUTURE, N_ADD_DONE_CALLBACK, N_SET_RESULT,
    N_SET_EXCEPTION, N_STATE, N_RESULT, N_EXCEPTION, N_EXCEPTION_M,
    N_RESULT_M,
};

typedef struct {
    PyObject_HEAD
    tl_state *st;
    PyObject *source;       /* the concurrent.futures.Future */
    PyObject *dest;         /* the asyncio future */
    PyObject *dest_loop;    /* dest.get_loop() */
} FutureChainObject;

/* obj.<name>(*args): names[i] of tl_state.chain_names.  New reference. */
static PyObject *
chain_call(FutureChainObject *self, int name, PyObject *obj, PyObject *arg)
{
    PyObject *args[2] = {obj, arg};
    return tl_call_method(self->st->chain_names[name], args,
                          arg == NULL ? 1 : 2);
}

/* bool(obj.<name>()): 1, 0, or -1 with an exception set. */
static int
chain_test(FutureChainObject *self, int name, PyObject *obj)
{
    PyObject *r = chain_call(self, name, obj, NULL);
    if (r == NULL) {
        return -1;
    }
    int b = PyObject_IsTrue(r);
    Py_DECREF(r);
    return b;
}

/* obj.<name>(arg) for its side effect; 0 or -1. */
static int
chain_do(FutureChainObject *self, int name, PyObject *obj, PyObject *arg)
{
    PyObject *r = chain_call(self, name, obj, arg);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* asyncio's _convert_future_exc(exc) (new reference). */
static PyObject *
chain_convert_exc(FutureChainObject *self, PyObject *exc)
{
    return PyObject_CallOneArg(self->st->chain_objs[TL_CHAIN_CONVERT_EXC],
                               exc);
}

/* The outcome of the finished source into dest: set_exception() of the
 * converted exception, else set_result(). */
static int
chain_copy_outcome(FutureChainObject *self, PyObject *exc, PyObject *result)
{
    if (exc == Py_None) {
        return chain_do(self, N_SET_RESULT, self->dest, result);
    }
    PyObject *conv = chain_convert_exc(self, exc);
    if (conv == NULL) {
        return -1;
    }
    int r = chain_do(self, N_SET_EXCEPTION, self->dest, conv);
    Py_DECREF(conv);
    return r;
}

/* Not finished (cancelled): asyncio's calls on the source's methods. */
static int
chain_copy_by_methods(FutureChainObject *self)
{
    int c = chain_test(self, N_CANCELLED, self->source);
    if (c != 0) {
        return c < 0 ? -1 : chain_do(self, N_CANCEL, self->dest, NULL);
    }
    PyObject *exc = chain_call(self, N_EXCEPTION_M, self->source, NULL);
    if (exc == NULL) {
        return -1;
    }
    PyObject *result = NULL;
    int r = -1;
    if (exc != Py_None ||
        (result = chain_call(self, N_RESULT_M, self->source, NULL)) != NULL) {
        r = chain_copy_outcome(self, exc, result);
    }
    Py_DECREF(exc);
    Py_XDECREF(result);
    return r;
}

/* The source's state, from its fields when it is finished. */
static int
chain_copy_source(FutureChainObject *self)
{
    tl_state *st = self->st;
    PyObject *state = PyObject_GetAttr(self->source,
                                       st->chain_names[N_STATE]);
    if (state == NULL) {
        return -1;
    }
    int finished = PyObject_RichCompareBool(
        state, st->chain_objs[TL_CHAIN_FINISHED], Py_EQ);
    Py_DECREF(state);
    if (finished <= 0) {
        return finished < 0 ? -1 : chain_copy_by_methods(self);
    }
    PyObject *exc = PyObject_GetAttr(self->source,
                                     st->chain_names[N_EXCEPTION]);
    if (exc == NULL) {
        return -1;
    }
    PyObject *result = NULL;
    int r = -1;
    if (exc != Py_None ||
        (result = PyObject_GetAttr(self->source,
                                   st->chain_names[N_RESULT])) != NULL) {
        r = chain_copy_outcome(self, exc, result);
    }
    Py_DECREF(exc);
    Py_XDECREF(result);
    return r;
}

static int FutureChain_clear(FutureChainObject *self);

/* asyncio's _copy_future_state(source, dest). */
static int
chain_copy_state(FutureChainObject *self)
{
    int c = chain_test(self, N_CANCELLED, self->dest);
    if (c != 0) {
        return c < 0 ? -1 : 0;
    }
    /* asyncio: assert not dest.done() */
    int d = chain_test(self, N_DONE, self->dest);
    if (d != 0) {
        if (d > 0) {
            PyErr_SetNone(PyExc_AssertionError);
        }
        return -1;
    }
    return chain_copy_source(self);
}

/* asyncio's _set_state(destination, source): run by the loop, through
 * call_soon_threadsafe(), once.  Then the chain lets both futures go:
 * the source keeps its done callback, a reference to the chain, but the
 * chain no longer refers back, so there is no cycle for the GC to find. */
static PyObject *
FutureChain_set_state(FutureChainObject *self, PyObject *Py_UNUSED(unused))
{
    if (self->dest == NULL) {
        Py_RETURN_NONE;  /* done already */
    }
    int r = chain_copy_state(self);
    FutureChain_clear(self);
    return r < 0 ? NULL : Py_NewRef(Py_None);
}

/* asyncio's _call_check_cancel(destination): dest's done callback. */
static PyObject *
FutureChain_call_check_cancel(FutureChainObject *self, PyObject *destination)
{
    if (self->source == NULL) {
        Py_RETURN_NONE;  /* the outcome was copied */
    }
    /* Ours while cancel() runs Python code. */
    PyObject *source = Py_NewRef(self->source);
    int c = chain_test(self, N_CANCELLED, destination);
    if (c > 0) {
        c = chain_do(self, N_CANCEL, source, NULL);
    }
    Py_DECREF(source);
    return c < 0 ? NULL : Py_NewRef(Py_None);
}

static PyMethodDef FutureChain_set_state_def = {
    "_set_state", (PyCFunction)FutureChain_set_state, METH_NOARGS,
    "Copy the concurrent future's outcome to the asyncio future."};

/* asyncio's _call_set_state(source) with its dest_loop `loop`. */
static int
chain_post_state(FutureChainObject *self, PyObject *loop)
{
    int c = chain_test(self, N_CANCELLED, self->dest);
    if (c > 0 && loop != Py_None) {
        c = chain_test(self, N_IS_CLOSED, loop);
        if (c != 0) {
            return c < 0 ? -1 : 0;
        }
    }
    if (c < 0) {
        return -1;
    }
    if (loop != Py_None && self->st->chain_running_check) {
        /* 3.14+: `dest_loop is events._get_running_loop()` copies at
         * once, as for a future finished or cancelled on the loop's own
         * thread (3.13 and before compare with the source's loop, None
         * for a concurrent future). */
        PyObject *running = PyObject_CallNoArgs(
            self->st->chain_objs[TL_CHAIN_GET_RUNNING]);
        if (running == NULL) {
            return -1;
        }
        Py_DECREF(running);
        if (running == loop) {
            loop = Py_None;
        }
    }
    if (loop == Py_None) {
        PyObject *r = FutureChain_set_state(self, NULL);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
#if PY_VERSION_HEX >= 0x030A0000
    c = chain_test(self, N_IS_CLOSED, loop);
    if (c != 0) {
        return c < 0 ? -1 : 0;
    }
#endif
    PyObject *cb = PyCFunction_New(&FutureChain_set_state_def,
                                   (PyObject *)self);
    if (cb == NULL) {
        return -1;
    }
    int r = chain_do(self, N_CALL_SOON_THREADSAFE, loop, cb);
    Py_DECREF(cb);
    return r;
}

/* The source's done callback, run by the thread that finished it (an
 * executor's), or at once if it already was.  Which checks come before
 * call_soon_threadsafe() follows the running Python's asyncio. */
static PyObject *
FutureChain_call_set_state(FutureChainObject *self,
                           PyObject *Py_UNUSED(source))
{
    if (self->dest_loop == NULL) {
        Py_RETURN_NONE;  /* the outcome was copied */
    }
    /* Ours: once call_soon_threadsafe() has queued _set_state, the loop's
     * thread may run it, and clear the chain, while this thread waits for
     * the GIL (the wake-up releases it). */
    PyObject *loop = Py_NewRef(self->dest_loop);
    int r = chain_post_state(self, loop);
    Py_DECREF(loop);
    return r < 0 ? NULL : Py_NewRef(Py_None);
}

static PyMethodDef FutureChain_methods[] = {
    {"_call_check_cancel", (PyCFunction)FutureChain_call_check_cancel,
     METH_O, "The asyncio future is done: cancel the concurrent one if it "
     "was cancelled."},
    {"_call_set_state", (PyCFunction)FutureChain_call_set_state, METH_O,
     "The concurrent future is done: copy its outcome in the loop."},
    {NULL}};

static int
FutureChain_traverse(FutureChainObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->source);
    Py_VISIT(self->dest);
    Py_VISIT(self->dest_loop);
    return 0;
}

static int
FutureChain_clear(FutureChainObject *self)
{
    Py_CLEAR(self->source);
    Py_CLEAR(self->dest);
    Py_CLEAR(self->dest_loop);
    return 0;
}

static void
FutureChain_dealloc(FutureChainObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    FutureChain_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyType_Slot FutureChain_slots[] = {
    {Py_tp_dealloc, FutureChain_dealloc},
    {Py_tp_traverse, FutureChain_traverse},
    {Py_tp_clear, FutureChain_clear},
    {Py_tp_methods, FutureChain_methods},
    {Py_tp_doc, "A concurrent.futures.Future chained to an asyncio "
                "future (asyncio.wrap_future)."},
    {0, NULL}};

static PyType_Spec FutureChain_spec = {
    .name = "tideloop._core._FutureChain",
    .basicsize = sizeof(FutureChainObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = FutureChain_slots,
};

/* chain.<name> as a bound method given to add_done_callback(). */
static int
chain_add_callback(FutureChainObject *chain, PyObject *fut, int meth)
{
    PyObject *cb = PyCFunction_New(&FutureChain_methods[meth],
                                   (PyObject *)chain);
    if (cb == NULL) {
        return -1;
    }
    int r = chain_do(chain, N_ADD_DONE_CALLBACK, fut, cb);
    Py_DECREF(cb);
    return r;
}

/* _chain_future(source, dest) with dest an exact asyncio.Future. */
static int
chain_make(tl_state *st, PyObject *source, PyObject *dest)
{
    FutureChainObject *chain = PyObject_GC_New(
        FutureChainObject, (PyTypeObject *)st->FutureChainType);
    if (chain == NULL) {
        return -1;
    }
    chain->st = st;
    chain->source = Py_NewRef(source);
    chain->dest = Py_NewRef(dest);
    chain->dest_loop = NULL;
    PyObject_GC_Track(chain);
    int r = -1;
    chain->dest_loop = chain_call(chain, N_GET_LOOP, dest, NULL);
    if (chain->dest_loop != NULL &&
        chain_add_callback(chain, dest, 0) == 0 &&
        chain_add_callback(chain, source, 1) == 0) {
        r = 0;
    }
    Py_DECREF(chain);
    return r;
}

/* _wrap_future(loop, future): asyncio.wrap_future(future, loop=loop) for
 * an exact concurrent.futures.Future. */
static PyObject *
chain_wrap_future(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_wrap_future(loop, future)");
        return NULL;
    }
    tl_state *st = PyModule_GetState(module);
    PyObject *source = args[1];
    if (!Py_IS_TYPE(source,
                    (PyTypeObject *)st->chain_objs[TL_CHAIN_CFUTURE])) {
        PyErr_SetString(PyExc_TypeError,
                        "_wrap_future() needs a concurrent.futures.Future");
        return NULL;
    }
    PyObject *margs[1] = {args[0]};
    PyObject *dest = tl_call_method(st->chain_names[N_CREATE_FUTURE], margs,
                                    1);
    if (dest == NULL) {
        return NULL;
    }
    int r;
    if (Py_IS_TYPE(dest, (PyTypeObject *)st->FutureType)) {
        r = chain_make(st, source, dest);
    }
    else {
        PyObject *res = PyObject_CallFunctionObjArgs(
            st->chain_objs[TL_CHAIN_PY_CHAIN], source, dest, NULL);
        Py_XDECREF(res);
        r = res == NULL ? -1 : 0;
    }
    if (r < 0) {
        Py_CLEAR(dest);
    }
    return dest;
}

static PyMethodDef chain_functions[] = {
    {"_wrap_future", (PyCFunction)(void (*)(void))chain_wrap_future,
     METH_FASTCALL,
     "asyncio.wrap_future(future, loop=loop) for a\n"
     "concurrent.futures.Future, chained in C: _wrap_future(loop, future)."},
    {NULL}};

/* Whether asyncio's _chain_future() copies the state at once when the
 * running loop is the destination's (3.14+: its _call_set_state looks up
 * events._get_running_loop).  Read from its code, so a release that
 * back-ports the change is followed too.  1, 0, or -1 with an exception
 * set. */
static int
chain_checks_running_loop(PyObject *chain_future)
{
    PyObject *code = PyObject_GetAttrString(chain_future, "__code__");
    PyObject *consts = code == NULL ? NULL
                                    : PyObject_GetAttrString(code, "co_consts");
    Py_XDECREF(code);
    if (consts == NULL || !PyTuple_Check(consts)) {
        Py_XDECREF(consts);
        return consts == NULL ? -1 : 0;
    }
    int found = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(consts) && !found; i++) {
        PyObject *c = PyTuple_GET_ITEM(consts, i);
        if (!PyCode_Check(c)) {
            continue;
        }
        PyObject *name = PyObject_GetAttrString(c, "co_name");
        if (name == NULL) {
            found = -1;
            break;
        }
        int match = PyUnicode_Check(name) &&
                    PyUnicode_CompareWithASCIIString(name,
                                                     "_call_set_state") == 0;
        Py_DECREF(name);
        if (!match) {
            continue;
        }
        PyObject *names = PyObject_GetAttrString(c, "co_names");
        PyObject *want = PyUnicode_FromString("_get_running_loop");
        found = names == NULL || want == NULL
                    ? -1
                    : PySequence_Contains(names, want);
        Py_XDECREF(names);
        Py_XDECREF(want);
    }
    Py_DECREF(consts);
    return found;
}

/* module.attr into *slot; 0 or -1. */
static int
chain_import(const char *module, const char *attr, PyObject **slot)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL) {
        return -1;
    }
    *slot = PyObject_GetAttrString(m, attr);
    Py_DECREF(m);
    return *slot == NULL ? -1 : 0;
}

int
tl_chain_init(PyObject *module, tl_state *st)
{
    Py_BUILD_ASSERT(Py_ARRAY_LENGTH(chain_name_list) ==
                    Py_ARRAY_LENGTH(st->chain_names));
    for (size_t i = 0; i < Py_ARRAY_LENGTH(chain_name_list); i++) {
        st->chain_names[i] = PyUnicode_InternFromString(chain_name_list[i]);
        if (st->chain_names[i] == NULL) {
            return -1;
        }
    }
    PyObject **o = st->chain_objs;
    if (chain_import("concurrent.futures", "Future",
                     &o[TL_CHAIN_CFUTURE]) < 0 ||
        chain_import("concurrent.futures._base", "FINISHED",
                     &o[TL_CHAIN_FINISHED]) < 0 ||
        chain_import("asyncio.futures", "_chain_future",
                     &o[TL_CHAIN_PY_CHAIN]) < 0 ||
        chain_import("asyncio.futures", "_convert_future_exc",
                     &o[TL_CHAIN_CONVERT_EXC]) < 0 ||
        chain_import("asyncio.events", "_get_running_loop",
                     &o[TL_CHAIN_GET_RUNNING]) < 0) {
        return -1;
    }
    st->chain_running_check = chain_checks_running_loop(o[TL_CHAIN_PY_CHAIN]);
    if (st->chain_running_check < 0) {
        return -1;
    }
    st->FutureChainType = PyType_FromModuleAndSpec(module, &FutureChain_spec,
                                                   NULL);
    if (st->FutureChainType == NULL) {
        return -1;
    }
    /* Made only by _wrap_future() (Py_TPFLAGS_DISALLOW_INSTANTIATION is
     * 3.10+ and does just this). */
    ((PyTypeObject *)st->FutureChainType)->tp_new = NULL;
    return PyModule_AddFunctions(module, chain_functions);
}
