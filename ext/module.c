/* Module tideloop._core: state, type creation, and the helpers that the
 * Python half of the package installs. */
#include "tideloop.h"
#include "sslproto.h"

static struct PyModuleDef tl_moduledef;

/* The state of the module that defined `type` or one of its bases.
 * Python subclasses (tideloop.Loop) have no module of their own, so walk
 * the MRO to our heap type; works on 3.9+ (PyType_GetModuleByDef is
 * 3.11+). */
tl_state *
tl_state_from_type(PyTypeObject *type)
{
    PyObject *mro = type->tp_mro;
    Py_ssize_t n = mro ? PyTuple_GET_SIZE(mro) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
            continue;
        }
        PyObject *mod = ((PyHeapTypeObject *)t)->ht_module;
        if (mod != NULL && PyModule_GetDef(mod) == &tl_moduledef) {
            return (tl_state *)PyModule_GetState(mod);
        }
    }
    PyErr_SetString(PyExc_TypeError, "not a tideloop type");
    return NULL;
}

static PyObject *
tl_set_helpers(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"report_exception", "extract_stack",
                             "log_slow", "check_debug", "handle_repr",
                             "fd_origin", NULL};
    PyObject *a, *b, *c, *d, *e, *f = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO|O:_set_helpers",
                                     kwlist, &a, &b, &c, &d, &e, &f)) {
        return NULL;
    }
    tl_state *st = PyModule_GetState(module);
    Py_INCREF(a);
    Py_XSETREF(st->report_exception, a);
    Py_INCREF(b);
    Py_XSETREF(st->extract_stack, b);
    Py_INCREF(c);
    Py_XSETREF(st->log_slow, c);
    Py_INCREF(d);
    Py_XSETREF(st->check_debug, d);
    Py_INCREF(e);
    Py_XSETREF(st->handle_repr, e);
    Py_XINCREF(f);
    Py_XSETREF(st->fd_origin, f);
    Py_RETURN_NONE;
}

static PyObject *
tl_set_transport_helpers(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fatal_error", "server_detach", "debug_log",
                             "warn_send", "finalize", "repr", NULL};
    PyObject *o[6];
    if (!PyArg_ParseTupleAndKeywords(args, kwds,
                                     "OOOOOO:_set_transport_helpers", kwlist,
                                     &o[0], &o[1], &o[2], &o[3], &o[4],
                                     &o[5])) {
        return NULL;
    }
    tl_state *st = PyModule_GetState(module);
    PyObject **dst[6] = {&st->tr_fatal_error, &st->tr_server_detach,
                         &st->tr_debug_log, &st->tr_warn_send,
                         &st->tr_finalize, &st->tr_repr};
    for (int i = 0; i < 6; i++) {
        Py_INCREF(o[i]);
        Py_XSETREF(*dst[i], o[i]);
    }
    Py_RETURN_NONE;
}

static PyObject *
tl_set_pipe_helpers(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fatal_error", "log", "finalize", "repr", NULL};
    PyObject *o[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO:_set_pipe_helpers",
                                     kwlist, &o[0], &o[1], &o[2], &o[3])) {
        return NULL;
    }
    tl_state *st = PyModule_GetState(module);
    PyObject **dst[4] = {&st->pipe_fatal_error, &st->pipe_log,
                         &st->pipe_finalize, &st->pipe_repr};
    for (int i = 0; i < 4; i++) {
        Py_INCREF(o[i]);
        Py_XSETREF(*dst[i], o[i]);
    }
    Py_RETURN_NONE;
}

static PyObject *
tl_libuv_version(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyUnicode_FromString(uv_version_string());
}

static PyObject *
tl_monotonic(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(tl_monotonic_ns());
}

static PyMethodDef tl_functions[] = {
    {"_set_helpers", (PyCFunction)(void (*)(void))tl_set_helpers,
     METH_VARARGS | METH_KEYWORDS,
     "Install the Python helpers the C core calls on slow paths."},
    {"_set_transport_helpers",
     (PyCFunction)(void (*)(void))tl_set_transport_helpers,
     METH_VARARGS | METH_KEYWORDS,
     "Install the Python helpers of the C transports."},
    {"_set_pipe_helpers", (PyCFunction)(void (*)(void))tl_set_pipe_helpers,
     METH_VARARGS | METH_KEYWORDS,
     "Install the Python helpers of the C pipe transports."},
    {"libuv_version", tl_libuv_version, METH_NOARGS,
     "Version of the libuv tideloop runs on, e.g. '1.44.2'."},
    {"monotonic_ns", tl_monotonic, METH_NOARGS,
     "The loop's clock in integer nanoseconds."},
    {NULL}};

/* _core.BACKENDS: the backends of this build, the default first
 * (("epoll", "libuv") on Linux, ("libuv",) in a portable build). */
static int
module_add_backends(PyObject *module)
{
    PyObject *t = tl_backend_have_epoll() ? Py_BuildValue("(ss)", "epoll",
                                                          "libuv")
                                          : Py_BuildValue("(s)", "libuv");
    if (t == NULL) {
        return -1;
    }
    int r = PyModule_AddObjectRef(module, "BACKENDS", t);
    Py_DECREF(t);
    return r;
}

static int
tl_exec(PyObject *module)
{
    tl_state *st = PyModule_GetState(module);
    PyObject *asyncio_futures = NULL, *asyncio_events = NULL;

    st->str_context = PyUnicode_InternFromString("context");
    st->str_loop = PyUnicode_InternFromString("loop");
    st->str_handle_signal = PyUnicode_InternFromString("_handle_signal");
    st->empty_tuple = PyTuple_New(0);
    if (st->str_context == NULL || st->str_loop == NULL ||
        st->str_handle_signal == NULL || st->empty_tuple == NULL) {
        return -1;
    }
    st->kw_loop = PyTuple_Pack(1, st->str_loop);
    st->kw_context = PyTuple_Pack(1, st->str_context);
    st->str_call_soon = PyUnicode_InternFromString("call_soon");
    if (st->kw_loop == NULL || st->kw_context == NULL ||
        st->str_call_soon == NULL) {
        return -1;
    }
    PyObject *socket_mod = PyImport_ImportModule("_socket");
    if (socket_mod == NULL) {
        return -1;
    }
    st->gaierror = PyObject_GetAttrString(socket_mod, "gaierror");
    Py_DECREF(socket_mod);
    if (st->gaierror == NULL) {
        return -1;
    }
    {
        PyObject *n = PyUnicode_InternFromString("name");
        if (n == NULL) {
            return -1;
        }
        st->kw_loop_name = PyTuple_Pack(2, st->str_loop, n);
        st->kw_loop_name_context =
            PyTuple_Pack(3, st->str_loop, n, st->str_context);
        Py_DECREF(n);
        if (st->kw_loop_name == NULL || st->kw_loop_name_context == NULL) {
            return -1;
        }
    }

    asyncio_futures = PyImport_ImportModule("asyncio.futures");
    if (asyncio_futures == NULL) {
        goto error;
    }
    st->FutureType = PyObject_GetAttrString(asyncio_futures, "Future");
    if (st->FutureType == NULL) {
        goto error;
    }
    {
        PyObject *tasks = PyImport_ImportModule("asyncio.tasks");
        if (tasks == NULL) {
            goto error;
        }
        st->tasks_dict = PyModule_GetDict(tasks);
        Py_XINCREF(st->tasks_dict);
        Py_DECREF(tasks);
        st->str_Task = PyUnicode_InternFromString("Task");
        st->str_name = PyUnicode_InternFromString("name");
        st->str_create_task_py = PyUnicode_InternFromString("_create_task_py");
        if (st->tasks_dict == NULL || st->str_Task == NULL ||
            st->str_name == NULL || st->str_create_task_py == NULL) {
            goto error;
        }
    }
    asyncio_events = PyImport_ImportModule("asyncio.events");
    if (asyncio_events == NULL) {
        goto error;
    }
    st->set_running_loop =
        PyObject_GetAttrString(asyncio_events, "_set_running_loop");
    if (st->set_running_loop == NULL) {
        goto error;
    }
    st->str_data_received = PyUnicode_InternFromString("data_received");
    if (st->str_data_received == NULL) {
        goto error;
    }
    st->str_datagram_received =
        PyUnicode_InternFromString("datagram_received");
    if (st->str_datagram_received == NULL) {
        goto error;
    }
    if (tl_handle_init_types(module, st) < 0 ||
        tl_loop_init_types(module, st) < 0 ||
        tl_transport_init_types(module, st) < 0 ||
        tl_pipe_init_types(module, st) < 0 ||
        tl_ssl_init_types(module, st) < 0 ||
        module_add_backends(module) < 0) {
        goto error;
    }
    Py_DECREF(asyncio_futures);
    Py_DECREF(asyncio_events);
    return 0;

error:
    Py_XDECREF(asyncio_futures);
    Py_XDECREF(asyncio_events);
    return -1;
}

static int
tl_traverse(PyObject *module, visitproc visit, void *arg)
{
    tl_state *st = PyModule_GetState(module);
    Py_VISIT(st->LoopBaseType);
    Py_VISIT(st->HandleType);
    Py_VISIT(st->TimerHandleType);
    Py_VISIT(st->FutureType);
    Py_VISIT(st->tasks_dict);
    Py_VISIT(st->set_running_loop);
    Py_VISIT(st->gaierror);
    Py_VISIT(st->report_exception);
    Py_VISIT(st->extract_stack);
    Py_VISIT(st->log_slow);
    Py_VISIT(st->check_debug);
    Py_VISIT(st->handle_repr);
    Py_VISIT(st->fd_origin);
    Py_VISIT(st->SocketTransportType);
    Py_VISIT(st->DatagramTransportType);
    Py_VISIT(st->BufferedProtocolType);
    Py_VISIT(st->tr_fatal_error);
    Py_VISIT(st->tr_server_detach);
    Py_VISIT(st->tr_debug_log);
    Py_VISIT(st->tr_warn_send);
    Py_VISIT(st->tr_finalize);
    Py_VISIT(st->tr_repr);
    Py_VISIT(st->ReadPipeType);
    Py_VISIT(st->WritePipeType);
    Py_VISIT(st->pipe_fatal_error);
    Py_VISIT(st->pipe_log);
    Py_VISIT(st->pipe_finalize);
    Py_VISIT(st->pipe_repr);
    return tl_ssl_traverse(st, visit, arg);
}

static int
tl_clear(PyObject *module)
{
    tl_state *st = PyModule_GetState(module);
    /* While their types live: freeing reads the type (pre-header). */
    tl_handle_free_lists(st);
    Py_CLEAR(st->LoopBaseType);
    Py_CLEAR(st->HandleType);
    Py_CLEAR(st->TimerHandleType);
    Py_CLEAR(st->FutureType);
    Py_CLEAR(st->tasks_dict);
    Py_CLEAR(st->str_Task);
    Py_CLEAR(st->str_name);
    Py_CLEAR(st->str_create_task_py);
    Py_CLEAR(st->set_running_loop);
    Py_CLEAR(st->report_exception);
    Py_CLEAR(st->extract_stack);
    Py_CLEAR(st->log_slow);
    Py_CLEAR(st->check_debug);
    Py_CLEAR(st->handle_repr);
    Py_CLEAR(st->fd_origin);
    Py_CLEAR(st->SocketTransportType);
    Py_CLEAR(st->DatagramTransportType);
    Py_CLEAR(st->BufferedProtocolType);
    Py_CLEAR(st->str_data_received);
    Py_CLEAR(st->str_datagram_received);
    Py_CLEAR(st->tr_fatal_error);
    Py_CLEAR(st->tr_server_detach);
    Py_CLEAR(st->tr_debug_log);
    Py_CLEAR(st->tr_warn_send);
    Py_CLEAR(st->tr_finalize);
    Py_CLEAR(st->tr_repr);
    Py_CLEAR(st->ReadPipeType);
    Py_CLEAR(st->WritePipeType);
    Py_CLEAR(st->pipe_fatal_error);
    Py_CLEAR(st->pipe_log);
    Py_CLEAR(st->pipe_finalize);
    Py_CLEAR(st->pipe_repr);
    Py_CLEAR(st->str_context);
    Py_CLEAR(st->str_loop);
    Py_CLEAR(st->kw_loop);
    Py_CLEAR(st->kw_context);
    Py_CLEAR(st->str_call_soon);
    Py_CLEAR(st->kw_loop_name);
    Py_CLEAR(st->kw_loop_name_context);
    Py_CLEAR(st->str_handle_signal);
    Py_CLEAR(st->empty_tuple);
    Py_CLEAR(st->gaierror);
    tl_ssl_clear(st);
    return 0;
}

static void
tl_free(void *module)
{
    tl_clear((PyObject *)module);
    tl_ssl_free(PyModule_GetState((PyObject *)module));
}

static PyModuleDef_Slot tl_slots[] = {
    {Py_mod_exec, tl_exec},
#ifdef Py_mod_gil
    /* tideloop relies on the GIL (the ready queue, the handles and the
     * transports are unlocked C state shared by Python threads): a
     * free-threaded interpreter (3.13t+) re-enables the GIL on import and
     * says so, instead of running it unprotected.  docs/free-threading.md */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL}};

static struct PyModuleDef tl_moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tideloop._core",
    .m_doc = "The C core of tideloop: an asyncio event loop on libuv.",
    .m_size = sizeof(tl_state),
    .m_methods = tl_functions,
    .m_slots = tl_slots,
    .m_traverse = tl_traverse,
    .m_clear = tl_clear,
    .m_free = tl_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&tl_moduledef);
}
