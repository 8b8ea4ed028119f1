/* SSLProtocol's construction, garbage collection and attributes, and the
 * module state of the SSL files (sslproto.h).
 *
 * The ssl and asyncio.sslproto objects the C code needs are looked up
 * once, when tideloop/_sslproto.py installs its helpers
 * (_core._set_ssl_helpers), not at import of tideloop._core. */
#include "sslproto.h"

#include <stddef.h>
#include <structmember.h>

/* ---- construction --------------------------------------------------- */

/* `timeout` None -> `dflt`; else it must be > 0 (asyncio's message). */
static PyObject *
check_timeout(PyObject *timeout, PyObject *dflt, const char *name)
{
    if (timeout == Py_None) {
        return Py_NewRef(dflt);
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        return NULL;
    }
    int le = PyObject_RichCompareBool(timeout, zero, Py_LE);
    Py_DECREF(zero);
    if (le < 0) {
        return NULL;
    }
    if (le) {
        PyErr_Format(PyExc_ValueError,
                     "%s should be a positive number, got %S", name, timeout);
        return NULL;
    }
    return Py_NewRef(timeout);
}

/* Cache the bound methods of the BIOs and the SSL object.  ssl.SSLObject
 * forwards read/write/pending/do_handshake/unwrap to its _ssl object
 * unchanged; calling that one skips a Python frame per call.  A context
 * whose sslobject_class is a subclass gets its own methods called. */
static int
cache_methods(tl_sslproto *p)
{
    tl_ssl_state *ss = p->ss;
    p->in_write = PyObject_GetAttr(p->incoming, ss->s_write);
    p->out_read = PyObject_GetAttr(p->outgoing, ss->s_read);
    if (p->in_write == NULL || p->out_read == NULL) {
        return -1;
    }
    PyObject *target = NULL;
    int inner = 0;
    if (Py_TYPE(p->sslobj) == (PyTypeObject *)ss->SSLObjectType) {
        target = PyObject_GetAttr(p->sslobj, ss->s__sslobj);
        if (target == NULL) {
            PyErr_Clear();
        }
        else {
            inner = 1;
            p->ssl_inner = 1;
        }
    }
    if (target == NULL) {
        target = Py_NewRef(p->sslobj);
    }
    p->ssl_read = PyObject_GetAttr(target, ss->s_read);
    p->ssl_write = PyObject_GetAttr(target, ss->s_write);
    p->ssl_pending = PyObject_GetAttr(target, ss->s_pending);
    p->ssl_handshake = PyObject_GetAttr(target, ss->s_do_handshake);
    p->ssl_unwrap =
        PyObject_GetAttr(target, inner ? ss->s_shutdown : ss->s_unwrap);
    Py_DECREF(target);
    if (p->ssl_read == NULL || p->ssl_write == NULL ||
        p->ssl_pending == NULL || p->ssl_handshake == NULL ||
        p->ssl_unwrap == NULL) {
        return -1;
    }
    return 0;
}

/* SSLProtocol(loop, app_protocol, sslcontext, waiter, server_side=False,
 *             server_hostname=None, call_connection_made=True,
 *             ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
 *             context=None)
 * In asyncio's order of evaluation (__init__ of 3.11+); `context` is the
 * contextvars.Context the app protocol is called in (3.15 passes one),
 * by default a copy of the current one. */
static PyObject *
Proto_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {
        "loop", "app_protocol", "sslcontext", "waiter", "server_side",
        "server_hostname", "call_connection_made", "ssl_handshake_timeout",
        "ssl_shutdown_timeout", "context", NULL};
    PyObject *loop, *app, *sslcontext, *waiter, *server_side = Py_False;
    PyObject *hostname = Py_None, *ccm = Py_True, *hto = Py_None;
    PyObject *sto = Py_None, *context = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO|OOOOOO:SSLProtocol",
                                     kwlist, &loop, &app, &sslcontext,
                                     &waiter, &server_side, &hostname, &ccm,
                                     &hto, &sto, &context)) {
        return NULL;
    }
    tl_ssl_state *ss = tl_state_from_type(type)->ssl;
    if (!ss->helpers_set) {
        PyErr_SetString(PyExc_RuntimeError,
                        "tideloop._sslproto is not initialized");
        return NULL;
    }
    if (context != Py_None && !PyContext_CheckExact(context)) {
        PyErr_Format(PyExc_TypeError,
                     "context must be a contextvars.Context, not %.200s",
                     Py_TYPE(context)->tp_name);
        return NULL;
    }
    tl_sslproto *p = (tl_sslproto *)type->tp_alloc(type, 0);
    if (p == NULL) {
        return NULL;
    }
    p->ss = ss;
    p->handshake_timeout =
        check_timeout(hto, ss->handshake_timeout, "ssl_handshake_timeout");
    if (p->handshake_timeout == NULL) {
        goto error;
    }
    p->shutdown_timeout =
        check_timeout(sto, ss->shutdown_timeout, "ssl_shutdown_timeout");
    if (p->shutdown_timeout == NULL) {
        goto error;
    }
    int truth = PyObject_IsTrue(sslcontext);
    if (truth < 0) {
        goto error;
    }
    if (truth) {
        p->sslcontext = Py_NewRef(sslcontext);
    }
    else {
        PyObject *cargs[2] = {server_side, hostname};
        p->sslcontext =
            PyObject_Vectorcall(ss->create_transport_context, cargs, 2, NULL);
        if (p->sslcontext == NULL) {
            goto error;
        }
    }
    p->server_side = Py_NewRef(server_side);
    int has_name = PyObject_IsTrue(hostname);
    int is_server = has_name > 0 ? PyObject_IsTrue(server_side) : 0;
    if (has_name < 0 || is_server < 0) {
        goto error;
    }
    p->server_hostname = Py_NewRef(has_name && !is_server ? hostname
                                                          : Py_None);
    p->extra = PyDict_New();
    if (p->extra == NULL ||
        PyDict_SetItem(p->extra, ss->s_sslcontext, p->sslcontext) < 0) {
        goto error;
    }
    p->waiter = waiter == Py_None ? NULL : Py_NewRef(waiter);
    p->loop = Py_NewRef(loop);
    if (tl_ssl_set_app_protocol(p, app) < 0) {
        goto error;
    }
    p->incoming = PyObject_CallNoArgs(ss->MemoryBIOType);
    if (p->incoming == NULL) {
        goto error;
    }
    p->outgoing = PyObject_CallNoArgs(ss->MemoryBIOType);
    if (p->outgoing == NULL) {
        goto error;
    }
    p->state = TL_SSL_UNWRAPPED;
    p->ssl_more = 1;
    truth = PyObject_IsTrue(ccm);
    if (truth < 0) {
        goto error;
    }
    p->app_state = truth ? TL_APP_INIT : TL_APP_CON_MADE;
    {
        PyObject *wargs[5] = {p->sslcontext, p->incoming, p->outgoing,
                              p->server_side, p->server_hostname};
        p->sslobj = PyObject_VectorcallMethod(
            ss->s_wrap_bio, wargs, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
            ss->kw_wrap_bio);
    }
    if (p->sslobj == NULL || cache_methods(p) < 0) {
        goto error;
    }
    if (tl_ssl_set_limits(p, Py_None, Py_None, 0) < 0 ||
        tl_ssl_set_limits(p, Py_None, Py_None, 1) < 0) {
        goto error;
    }
    if (context != Py_None) {
        p->context = Py_NewRef(context);
        p->context_explicit = 1;
    }
    else if ((p->context = PyContext_CopyCurrent()) == NULL) {
        goto error;
    }
    PyObject *tr = tl_ssl_get_app_transport(p);
    if (tr == NULL) {
        goto error;
    }
    Py_DECREF(tr);
    return (PyObject *)p;

error:
    Py_DECREF(p);
    return NULL;
}

/* ---- garbage collection --------------------------------------------- */

static int
Proto_traverse(tl_sslproto *p, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(p));
#define TL_VISIT(f) Py_VISIT(p->f);
    TL_SSLPROTO_OBJECTS(TL_VISIT)
#undef TL_VISIT
    for (Py_ssize_t i = 0; i < p->wb_len; i++) {
        Py_VISIT(p->wb[(p->wb_head + i) % p->wb_cap]);
    }
    return 0;
}

static int
Proto_clear(tl_sslproto *p)
{
    tl_ssl_backlog_clear(p);
#define TL_CLEAR(f) Py_CLEAR(p->f);
    TL_SSLPROTO_OBJECTS(TL_CLEAR)
#undef TL_CLEAR
    return 0;
}

static void
Proto_dealloc(tl_sslproto *p)
{
    PyTypeObject *tp = Py_TYPE(p);
    PyObject_GC_UnTrack(p);
    if (p->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)p);
    }
    Proto_clear(p);
    PyMem_Free(p->wb);
    tp->tp_free(p);
    Py_DECREF(tp);
}

/* ---- attributes (asyncio's private ones, read-only) ----------------- */

static PyObject *
Proto_get_state(tl_sslproto *p, void *Py_UNUSED(closure))
{
    return Py_NewRef(PyTuple_GET_ITEM(p->ss->states, p->state));
}

static PyObject *
Proto_get_app_state(tl_sslproto *p, void *Py_UNUSED(closure))
{
    return Py_NewRef(PyTuple_GET_ITEM(p->ss->app_states, p->app_state));
}

static PyObject *
Proto_get_write_buffer_size(tl_sslproto *p, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(p->wb_size);
}

static PyObject *
Proto_get_write_backlog(tl_sslproto *p, void *Py_UNUSED(closure))
{
    /* A snapshot (asyncio's is a deque). */
    PyObject *l = PyList_New(p->wb_len);
    if (l == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < p->wb_len; i++) {
        PyList_SET_ITEM(l, i,
                        Py_NewRef(p->wb[(p->wb_head + i) % p->wb_cap]));
    }
    return l;
}

static PyGetSetDef Proto_getset[] = {
    {"_state", (getter)Proto_get_state, NULL, NULL, NULL},
    {"_app_state", (getter)Proto_get_app_state, NULL, NULL, NULL},
    {"_write_buffer_size", (getter)Proto_get_write_buffer_size, NULL, NULL,
     NULL},
    {"_write_backlog", (getter)Proto_get_write_backlog, NULL, NULL, NULL},
    {NULL}};

#define TL_RO_OBJ(name, field)                                              \
    {name, T_OBJECT, offsetof(tl_sslproto, field), READONLY, NULL}
#define TL_RO_BOOL(name, field)                                             \
    {name, T_BOOL, offsetof(tl_sslproto, field), READONLY, NULL}

static PyMemberDef Proto_members[] = {
    TL_RO_OBJ("_loop", loop),
    TL_RO_OBJ("_app_protocol", app_protocol),
    TL_RO_OBJ("_app_transport", app_transport),
    TL_RO_OBJ("_transport", transport),
    TL_RO_OBJ("_waiter", waiter),
    TL_RO_OBJ("_sslcontext", sslcontext),
    TL_RO_OBJ("_server_side", server_side),
    TL_RO_OBJ("_server_hostname", server_hostname),
    TL_RO_OBJ("_extra", extra),
    TL_RO_OBJ("_incoming", incoming),
    TL_RO_OBJ("_outgoing", outgoing),
    TL_RO_OBJ("_sslobj", sslobj),
    TL_RO_OBJ("_context", context),
    TL_RO_OBJ("_ssl_handshake_timeout", handshake_timeout),
    TL_RO_OBJ("_ssl_shutdown_timeout", shutdown_timeout),
    TL_RO_OBJ("_handshake_start_time", handshake_start_time),
    TL_RO_OBJ("_handshake_timeout_handle", handshake_handle),
    TL_RO_OBJ("_shutdown_timeout_handle", shutdown_handle),
    TL_RO_OBJ("_incoming_high_water", in_high_obj),
    TL_RO_OBJ("_incoming_low_water", in_low_obj),
    TL_RO_OBJ("_outgoing_high_water", out_high_obj),
    TL_RO_OBJ("_outgoing_low_water", out_low_obj),
    TL_RO_BOOL("_app_protocol_is_buffer", app_is_buffer),
    TL_RO_BOOL("_app_transport_created", app_transport_created),
    TL_RO_BOOL("_eof_received", eof_received),
    TL_RO_BOOL("_ssl_writing_paused", ssl_writing_paused),
    TL_RO_BOOL("_app_reading_paused", app_reading_paused),
    TL_RO_BOOL("_ssl_reading_paused", ssl_reading_paused),
    TL_RO_BOOL("_app_writing_paused", app_writing_paused),
    {"_conn_lost", T_LONG, offsetof(tl_sslproto, conn_lost), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(tl_sslproto, dict), READONLY,
     NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tl_sslproto, weakreflist),
     READONLY, NULL},
    {NULL}};

/* ---- module state --------------------------------------------------- */

/* _core._set_ssl_helpers(**helpers): called once by tideloop/_sslproto.py
 * with its slow-path helpers and what differs between Python versions;
 * looks the ssl and asyncio objects up. */
static PyObject *
set_ssl_helpers(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {
        "fatal_log", "flow_failed", "log", "abort_passes_exc",
        "closing_follows_transport", "shutdown_timeout_until_lost",
        "asserts", NULL};
    tl_ssl_state *ss = ((tl_state *)PyModule_GetState(module))->ssl;
    PyObject *fatal_log, *flow_failed, *log;
    int abort_exc, follows, until_lost, asserts;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OOOpppp", kwlist,
                                     &fatal_log, &flow_failed, &log,
                                     &abort_exc, &follows, &until_lost,
                                     &asserts)) {
        return NULL;
    }
    PyObject *ssl = NULL, *sslproto = NULL, *constants = NULL;
    PyObject *exceptions = NULL, *pending = NULL;
    ssl = PyImport_ImportModule("ssl");
    sslproto = PyImport_ImportModule("asyncio.sslproto");
    constants = PyImport_ImportModule("asyncio.constants");
    exceptions = PyImport_ImportModule("asyncio.exceptions");
    if (ssl == NULL || sslproto == NULL || constants == NULL ||
        exceptions == NULL) {
        goto error;
    }
#define TL_GET(field, mod, name)                                            \
    Py_XSETREF(ss->field, PyObject_GetAttrString(mod, name));              \
    if (ss->field == NULL) {                                                \
        goto error;                                                         \
    }
    TL_GET(MemoryBIOType, ssl, "MemoryBIO");
    TL_GET(SSLObjectType, ssl, "SSLObject");
    TL_GET(SSLError, ssl, "SSLError");
    TL_GET(CertificateError, ssl, "CertificateError");
    TL_GET(create_transport_context, sslproto, "_create_transport_context");
    TL_GET(flowcontrol_defaults, sslproto, "add_flowcontrol_defaults");
    TL_GET(TimeoutError, exceptions, "TimeoutError");
    TL_GET(handshake_timeout, constants, "SSL_HANDSHAKE_TIMEOUT");
    TL_GET(shutdown_timeout, constants, "SSL_SHUTDOWN_TIMEOUT");
    TL_GET(kb_read, constants, "FLOW_CONTROL_HIGH_WATER_SSL_READ");
    TL_GET(kb_write, constants, "FLOW_CONTROL_HIGH_WATER_SSL_WRITE");
    TL_GET(again_errors, sslproto, "SSLAgainErrors");
#undef TL_GET
    {
        PyObject *t = PyObject_GetAttrString(
            constants, "LOG_THRESHOLD_FOR_CONNLOST_WRITES");
        if (t == NULL) {
            goto error;
        }
        ss->log_threshold = PyLong_AsLong(t);
        Py_DECREF(t);
        if (ss->log_threshold == -1 && PyErr_Occurred()) {
            goto error;
        }
    }
    /* The enum members, in declaration order, for _state/_app_state. */
    const char *enums[2] = {"SSLProtocolState", "AppProtocolState"};
    PyObject **dest[2] = {&ss->states, &ss->app_states};
    Py_ssize_t counts[2] = {TL_SSL_NSTATES, TL_APP_NSTATES};
    for (int i = 0; i < 2; i++) {
        PyObject *cls = PyObject_GetAttrString(sslproto, enums[i]);
        PyObject *seq = cls ? PySequence_Tuple(cls) : NULL;
        Py_XDECREF(cls);
        if (seq == NULL) {
            goto error;
        }
        if (PyTuple_GET_SIZE(seq) != counts[i]) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_RuntimeError, "unexpected asyncio.sslproto.%s",
                         enums[i]);
            goto error;
        }
        Py_XSETREF(*dest[i], seq);
    }
    /* MemoryBIO.pending's C getter, if it is a plain getset. */
    pending = PyObject_GetAttrString(ss->MemoryBIOType, "pending");
    if (pending == NULL) {
        goto error;
    }
    if (Py_IS_TYPE(pending, &PyGetSetDescr_Type)) {
        PyGetSetDef *gs = ((PyGetSetDescrObject *)pending)->d_getset;
        ss->bio_pending_get = gs->get;
        ss->bio_pending_closure = gs->closure;
    }
    Py_XSETREF(ss->h_fatal_log, Py_NewRef(fatal_log));
    Py_XSETREF(ss->h_flow_failed, Py_NewRef(flow_failed));
    Py_XSETREF(ss->h_log, Py_NewRef(log));
    ss->abort_passes_exc = (char)abort_exc;
    ss->closing_follows_transport = (char)follows;
    ss->shutdown_timeout_until_lost = (char)until_lost;
    ss->asserts = (char)asserts;
    ss->helpers_set = 1;
    Py_DECREF(ssl);
    Py_DECREF(sslproto);
    Py_DECREF(constants);
    Py_DECREF(exceptions);
    Py_DECREF(pending);
    Py_RETURN_NONE;

error:
    Py_XDECREF(ssl);
    Py_XDECREF(sslproto);
    Py_XDECREF(constants);
    Py_XDECREF(exceptions);
    Py_XDECREF(pending);
    return NULL;
}

static PyMethodDef ssl_functions[] = {
    {"_set_ssl_helpers", (PyCFunction)(void (*)(void))set_ssl_helpers,
     METH_VARARGS | METH_KEYWORDS,
     "Install the Python helpers of the C SSL protocol (once)."},
    {NULL}};

int
tl_ssl_init_types(PyObject *module, tl_state *st)
{
    tl_ssl_state *ss = PyMem_Calloc(1, sizeof(*ss));
    if (ss == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    st->ssl = ss;
#define TL_INTERN(name)                                                     \
    if ((ss->s_##name = PyUnicode_InternFromString(#name)) == NULL) {       \
        return -1;                                                          \
    }
    TL_SSL_STRINGS(TL_INTERN)
#undef TL_INTERN
    ss->kw_context = PyTuple_Pack(1, st->str_context);
    if (ss->kw_context == NULL) {
        return -1;
    }
    {
        PyObject *a = PyUnicode_InternFromString("server_side");
        PyObject *b = PyUnicode_InternFromString("server_hostname");
        if (a != NULL && b != NULL) {
            ss->kw_wrap_bio = PyTuple_Pack(2, a, b);
        }
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (ss->kw_wrap_bio == NULL) {
            return -1;
        }
    }
    PyObject *protocols = PyImport_ImportModule("asyncio.protocols");
    if (protocols == NULL) {
        return -1;
    }
    ss->BufferedProtocolType =
        PyObject_GetAttrString(protocols, "BufferedProtocol");
    Py_DECREF(protocols);
    if (ss->BufferedProtocolType == NULL) {
        return -1;
    }
    /* The base has __slots__ = () down to object: our struct starts right
     * after the object header. */
    if (((PyTypeObject *)ss->BufferedProtocolType)->tp_basicsize !=
        sizeof(PyObject)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "asyncio.BufferedProtocol has instance fields");
        return -1;
    }
    PyObject *bases = PyTuple_Pack(1, ss->BufferedProtocolType);
    if (bases == NULL) {
        return -1;
    }
    PyType_Slot slots[] = {
        {Py_tp_new, Proto_new},
        {Py_tp_dealloc, Proto_dealloc},
        {Py_tp_traverse, Proto_traverse},
        {Py_tp_clear, Proto_clear},
        {Py_tp_methods, tl_sslproto_methods},
        {Py_tp_getset, Proto_getset},
        {Py_tp_members, Proto_members},
        {Py_tp_doc, "asyncio's SSL protocol (sslproto.SSLProtocol) in C: "
                    "TLS over ssl.MemoryBIO/SSLObject for a transport."},
        {0, NULL}};
    PyType_Spec spec = {
        .name = "tideloop._core.SSLProtocol",
        .basicsize = sizeof(tl_sslproto),
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
        .slots = slots,
    };
    ss->ProtocolType =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, bases);
    Py_DECREF(bases);
    if (ss->ProtocolType == NULL) {
        return -1;
    }
    PyObject *max_size = PyLong_FromLong(TL_SSL_MAX_SIZE);
    if (max_size == NULL ||
        PyObject_SetAttrString((PyObject *)ss->ProtocolType, "max_size",
                               max_size) < 0) {
        Py_XDECREF(max_size);
        return -1;
    }
    Py_DECREF(max_size);
    if (PyModule_AddObjectRef(module, "SSLProtocol",
                              (PyObject *)ss->ProtocolType) < 0 ||
        tl_ssltr_init_type(module, ss) < 0 ||
        tl_sslwin_init_type(module, ss) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, ssl_functions);
}

int
tl_ssl_traverse(tl_state *st, visitproc visit, void *arg)
{
    tl_ssl_state *ss = st->ssl;
    if (ss == NULL) {
        return 0;
    }
#define TL_VISIT(f) Py_VISIT(ss->f);
    TL_SSL_STATE_OBJECTS(TL_VISIT)
#undef TL_VISIT
    return 0;
}

void
tl_ssl_clear(tl_state *st)
{
    tl_ssl_state *ss = st->ssl;
    if (ss == NULL) {
        return;
    }
#define TL_CLEAR(f) Py_CLEAR(ss->f);
    TL_SSL_STATE_OBJECTS(TL_CLEAR)
#undef TL_CLEAR
#define TL_CLEAR_STR(name) Py_CLEAR(ss->s_##name);
    TL_SSL_STRINGS(TL_CLEAR_STR)
#undef TL_CLEAR_STR
    ss->helpers_set = 0;
}

void
tl_ssl_free(tl_state *st)
{
    /* Freed only with the module: objects of our types keep a pointer to
     * this state, and the module outlives them (their type holds it). */
    tl_ssl_clear(st);
    PyMem_Free(st->ssl);
    st->ssl = NULL;
}
