/* Module tideloop._core: state, type creation, and the helpers that the
 * Python half of the package installs. */
#include "tideloop.h"
#include <structmember.h>
#include "sockops.h"
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

/* The keywords of _set_helpers(), in the order of enum tl_helper_id. */
static const char *const helper_names[TL_H_COUNT] = {
    "report_exception", "extract_stack", "log_slow", "check_debug",
    "handle_repr", "fd_origin", "tr_fatal_error", "tr_accepted",
    "tr_debug_log",
    "tr_warn_send", "tr_finalize", "tr_repr",
    "pipe_fatal_error", "pipe_log", "pipe_finalize", "pipe_repr"};

/* _set_helpers(name=function, ...): install entries of the one helper
 * table (tl_state.helpers). */
static PyObject *
tl_set_helpers(PyObject *module, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError,
                        "_set_helpers() takes keyword arguments only");
        return NULL;
    }
    tl_state *st = PyModule_GetState(module);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (kwds != NULL && PyDict_Next(kwds, &pos, &key, &value)) {
        int i = 0;
        while (i < TL_H_COUNT &&
               PyUnicode_CompareWithASCIIString(key, helper_names[i]) != 0) {
            i++;
        }
        if (i == TL_H_COUNT) {
            PyErr_Format(PyExc_TypeError,
                         "_set_helpers() got an unexpected keyword argument "
                         "'%U'", key);
            return NULL;
        }
        Py_INCREF(value);
        Py_XSETREF(st->helpers[i], value == Py_None ? NULL : value);
        if (value == Py_None) {
            Py_DECREF(value);
        }
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
     "Install entries of the table of Python helpers the C core calls\n"
     "on its rare paths: _set_helpers(name=function, ...)."},
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

/* In the order of tl_state's str_data_received ... str_call_soon. */
static const char *const tl_method_names[] = {
    "data_received", "datagram_received", "get_buffer", "buffer_updated",
    "eof_received", "connection_lost", "error_received", "sendto",
    "connection_made", "_start_reading", "getsockname", "_attach",
    "_transports", "_ensure_fd_no_transport", "socket", "sockname",
    "peername",
    "fileno", "gettimeout", "done", "set_result", "set_exception", "cancel",
    "data", "_sock_waiters", "_sock_sweeper", "_sock_arm_sweeper",
    "_sock_check",
    "_extra", "_loop", "_protocol_paused", "_high_water", "_low_water",
    "_sock", "_io_refs", "_closed", "close", "key", "_pending_removals",
    "_commit_removals", "_remove", "_iterating", "_detach", "_accept_made",
    "call_soon",
};

/* The offset of the plain object member `name` (a __slots__ entry) of the
 * class `tp` or its bases, or -1 if `name` is something else there (a
 * property, say).  -1 with an exception set only on failure. */
static Py_ssize_t
module_slot_offset(PyObject *tp, PyObject *name, int *failed)
{
    PyObject *d = PyObject_GetAttr(tp, name);
    Py_ssize_t off = -1;
    if (d == NULL) {
        *failed = 1;
        return -1;
    }
    if (Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY)) {
            off = m->offset;
        }
    }
    Py_DECREF(d);
    return off;
}

/* tl_state.slot_offsets, once the classes are known: 0, or -1 with an
 * exception set. */
static int
module_find_slots(tl_state *st)
{
    PyObject *tr = (PyObject *)st->SocketTransportType;
    PyObject *const where[TL_SLOT_COUNT][2] = {
        {tr, st->str_extra},
        {tr, st->str_loop_slot},
        {tr, st->str_protocol_paused},
        {tr, st->str_high_water},
        {tr, st->str_low_water},
        {st->TransportSocket, st->str_sock},
        {st->socket_type, st->str_io_refs},
        {st->socket_type, st->str_closed},
        {st->KeyedRefType, st->str_key}};
    int failed = 0;
    Py_BUILD_ASSERT(Py_ARRAY_LENGTH(st->slot_offsets) == TL_SLOT_COUNT);
    for (int i = 0; i < TL_SLOT_COUNT; i++) {
        st->slot_offsets[i] =
            module_slot_offset(where[i][0], where[i][1], &failed);
    }
    return failed ? -1 : 0;
}

static int
module_intern_method_names(tl_state *st)
{
    Py_BUILD_ASSERT(Py_ARRAY_LENGTH(tl_method_names) ==
                    Py_ARRAY_LENGTH(st->method_names));
    for (size_t i = 0; i < Py_ARRAY_LENGTH(tl_method_names); i++) {
        st->method_names[i] = PyUnicode_InternFromString(tl_method_names[i]);
        if (st->method_names[i] == NULL) {
            return -1;
        }
    }
    return 0;
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
    if (st->kw_loop == NULL || st->kw_context == NULL) {
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
    if (module_intern_method_names(st) < 0 || tl_sockops_init(st) < 0 ||
        tl_pysock_init(st) < 0 || tl_accept_init(st) < 0) {
        goto error;
    }
    if (tl_handle_init_types(module, st) < 0 ||
        tl_loop_init_types(module, st) < 0 ||
        tl_transport_init_types(module, st) < 0 ||
        tl_udp_init_types(module, st) < 0 ||
        tl_pipe_init_types(module, st) < 0 ||
        tl_ssl_init_types(module, st) < 0 ||
        tl_chain_init(module, st) < 0 ||
        module_find_slots(st) < 0 || module_add_backends(module) < 0) {
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
    Py_VISIT(st->socket_type);
    Py_VISIT(st->gai_enums[0]);
    Py_VISIT(st->gai_enums[1]);
    for (int i = 0; i < TL_H_COUNT; i++) {
        Py_VISIT(st->helpers[i]);
    }
    Py_VISIT(st->SocketTransportType);
    Py_VISIT(st->DatagramTransportType);
    Py_VISIT(st->BufferedProtocolType);
    Py_VISIT(st->maybe_pause);
    Py_VISIT(st->maybe_resume);
    Py_VISIT(st->TransportSocket);
    Py_VISIT(st->socket_close);
    Py_VISIT(st->socket_family);
    Py_VISIT(st->KeyedRefType);
    Py_VISIT(st->WeakValueDictType);
    Py_VISIT(st->ReadPipeType);
    Py_VISIT(st->WritePipeType);
    Py_VISIT(st->FutureChainType);
    for (size_t i = 0; i < Py_ARRAY_LENGTH(st->chain_objs); i++) {
        Py_VISIT(st->chain_objs[i]);
    }
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
    for (int i = 0; i < TL_H_COUNT; i++) {
        Py_CLEAR(st->helpers[i]);
    }
    Py_CLEAR(st->SocketTransportType);
    Py_CLEAR(st->DatagramTransportType);
    Py_CLEAR(st->BufferedProtocolType);
    Py_CLEAR(st->maybe_pause);
    Py_CLEAR(st->maybe_resume);
    Py_CLEAR(st->TransportSocket);
    Py_CLEAR(st->socket_close);
    Py_CLEAR(st->socket_family);
    Py_CLEAR(st->KeyedRefType);
    Py_CLEAR(st->WeakValueDictType);
    for (size_t i = 0; i < Py_ARRAY_LENGTH(st->method_names); i++) {
        Py_CLEAR(st->method_names[i]);
    }
    Py_CLEAR(st->socket_type);
    for (size_t i = 0; i < Py_ARRAY_LENGTH(st->sop_names); i++) {
        Py_CLEAR(st->sop_names[i]);
    }
    Py_CLEAR(st->ReadPipeType);
    Py_CLEAR(st->WritePipeType);
    Py_CLEAR(st->str_context);
    Py_CLEAR(st->str_context_seen);
    Py_CLEAR(st->str_loop);
    Py_CLEAR(st->kw_loop);
    Py_CLEAR(st->kw_context);
    Py_CLEAR(st->kw_loop_name);
    Py_CLEAR(st->kw_loop_name_context);
    Py_CLEAR(st->str_handle_signal);
    Py_CLEAR(st->empty_tuple);
    Py_CLEAR(st->gaierror);
    Py_CLEAR(st->gai_enums[0]);
    Py_CLEAR(st->gai_enums[1]);
    Py_CLEAR(st->FutureChainType);
    for (size_t i = 0; i < Py_ARRAY_LENGTH(st->chain_objs); i++) {
        Py_CLEAR(st->chain_objs[i]);
    }
    for (size_t i = 0; i < Py_ARRAY_LENGTH(st->chain_names); i++) {
        Py_CLEAR(st->chain_names[i]);
    }
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
