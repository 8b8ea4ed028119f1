/* _SSLProtocolTransport: the transport an app protocol sees over TLS
 * (asyncio's sslproto._SSLProtocolTransport, 3.11+), in C.
 *
 * Its real base is asyncio.transports._FlowControlMixin, as in asyncio
 * (loop.sendfile()'s fallback checks for it); our fields live after the
 * base's layout.  The type cannot be subclassed, so that offset is the
 * base's size.  Every method forwards to the SSLProtocol in C.  After a
 * second close() the transport drops its protocol, as asyncio's does, and
 * its methods then fail with asyncio's AttributeError on None. */
#include "sslproto.h"

#include <stddef.h>
#include <structmember.h>

typedef struct {
    PyObject *loop;
    PyObject *proto;             /* tl_sslproto, NULL after close() twice */
    PyObject *dict;
    PyObject *weakreflist;
    char closed;
} tl_ssltr;

static inline tl_ssltr *
TRS(PyObject *self)
{
    return (tl_ssltr *)((char *)self + Py_TYPE(self)->tp_base->tp_basicsize);
}

void
tl_ssltr_mark_closed(PyObject *tr)
{
    TRS(tr)->closed = 1;
}

PyObject *
tl_ssltr_new(tl_ssl_state *ss, PyObject *loop, PyObject *proto)
{
    PyTypeObject *tp = ss->TransportType;
    PyObject *self = tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    tl_ssltr *t = TRS(self);
    if (tl_new_instance_dict(&t->dict) < 0) {
        t->closed = 1;    /* never opened: no ResourceWarning */
        Py_DECREF(self);
        return NULL;
    }
    t->loop = Py_NewRef(loop);
    t->proto = Py_NewRef(proto);
    return self;
}

/* New reference to our protocol, or NULL with asyncio's AttributeError
 * ('NoneType' object has no attribute `attr`) once it was dropped. */
static tl_sslproto *
need_proto(PyObject *self, const char *attr)
{
    PyObject *p = TRS(self)->proto;
    if (p == NULL) {
        PyObject *r = PyObject_GetAttrString(Py_None, attr);
        Py_XDECREF(r);
        return NULL;
    }
    Py_INCREF(p);
    return (tl_sslproto *)p;
}

/* Ends a method: drops the protocol reference; rc < 0 means an error. */
static PyObject *
done(tl_sslproto *p, int rc)
{
    Py_DECREF(p);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
SSLTr_get_extra_info(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "default", NULL};
    PyObject *name, *dflt = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:get_extra_info",
                                     kwlist, &name, &dflt)) {
        return NULL;
    }
    tl_sslproto *p = need_proto(self, "_get_extra_info");
    if (p == NULL) {
        return NULL;
    }
    PyObject *r = tl_ssl_get_extra_info(p, name, dflt);
    Py_DECREF(p);
    return r;
}

static PyObject *
SSLTr_set_protocol(PyObject *self, PyObject *protocol)
{
    tl_sslproto *p = need_proto(self, "_set_app_protocol");
    if (p == NULL) {
        return NULL;
    }
    return done(p, tl_ssl_set_app_protocol(p, protocol));
}

static PyObject *
SSLTr_get_protocol(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_sslproto *p = need_proto(self, "_app_protocol");
    if (p == NULL) {
        return NULL;
    }
    PyObject *r = Py_NewRef(TL_NONE(p->app_protocol));
    Py_DECREF(p);
    return r;
}

static PyObject *
SSLTr_is_closing(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    if (TRS(self)->closed) {
        Py_RETURN_TRUE;
    }
    tl_ssl_state *ss = tl_state_from_type(Py_TYPE(self))->ssl;
    if (!ss->closing_follows_transport) {
        Py_RETURN_FALSE;
    }
    /* 3.14+: closing as soon as the underlying transport is. */
    tl_sslproto *p = need_proto(self, "_is_transport_closing");
    if (p == NULL) {
        return NULL;
    }
    PyObject *r = p->transport == NULL
                      ? Py_NewRef(Py_False)
                      : tl_ssl_call(p->transport, ss->s_is_closing, NULL, 0);
    Py_DECREF(p);
    return r;
}

static PyObject *
SSLTr_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_ssltr *t = TRS(self);
    if (t->closed) {
        Py_CLEAR(t->proto);
        Py_RETURN_NONE;
    }
    t->closed = 1;
    tl_sslproto *p = need_proto(self, "_start_shutdown");
    if (p == NULL) {
        return NULL;
    }
    return done(p, tl_ssl_start_shutdown(p));
}

static PyObject *
SSLTr_is_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_sslproto *p = need_proto(self, "_app_reading_paused");
    if (p == NULL) {
        return NULL;
    }
    int paused = p->app_reading_paused;
    Py_DECREF(p);
    return PyBool_FromLong(!paused);
}

static PyObject *
SSLTr_pause_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_sslproto *p = need_proto(self, "_pause_reading");
    if (p == NULL) {
        return NULL;
    }
    p->app_reading_paused = 1;
    return done(p, 0);
}

static PyObject *
SSLTr_resume_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_sslproto *p = need_proto(self, "_resume_reading");
    if (p == NULL) {
        return NULL;
    }
    return done(p, tl_ssl_resume_reading(p));
}

/* set_write_buffer_limits() / set_read_buffer_limits(): asyncio's
 * add_flowcontrol_defaults(), then the flow control runs once. */
static PyObject *
set_limits(PyObject *self, PyObject *args, PyObject *kwds, int writing)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high = Py_None, *low = Py_None;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds,
            writing ? "|OO:set_write_buffer_limits"
                    : "|OO:set_read_buffer_limits",
            kwlist, &high, &low)) {
        return NULL;
    }
    tl_sslproto *p = need_proto(self, writing ? "_set_write_buffer_limits"
                                              : "_set_read_buffer_limits");
    if (p == NULL) {
        return NULL;
    }
    int rc = tl_ssl_set_limits(p, high, low, writing);
    if (rc == 0) {
        rc = writing ? tl_ssl_control_app_writing(p)
                     : tl_ssl_control_ssl_reading(p);
    }
    return done(p, rc);
}

static PyObject *
SSLTr_set_write_buffer_limits(PyObject *self, PyObject *args,
                              PyObject *kwds)
{
    return set_limits(self, args, kwds, 1);
}

static PyObject *
SSLTr_set_read_buffer_limits(PyObject *self, PyObject *args,
                             PyObject *kwds)
{
    return set_limits(self, args, kwds, 0);
}

static PyObject *
SSLTr_get_write_buffer_limits(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_sslproto *p = need_proto(self, "_outgoing_low_water");
    if (p == NULL) {
        return NULL;
    }
    PyObject *r = PyTuple_Pack(2, p->out_low_obj, p->out_high_obj);
    Py_DECREF(p);
    return r;
}

static PyObject *
SSLTr_get_read_buffer_limits(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_sslproto *p = need_proto(self, "_incoming_low_water");
    if (p == NULL) {
        return NULL;
    }
    PyObject *r = PyTuple_Pack(2, p->in_low_obj, p->in_high_obj);
    Py_DECREF(p);
    return r;
}

static PyObject *
SSLTr_get_write_buffer_size(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_sslproto *p = need_proto(self, "_get_write_buffer_size");
    if (p == NULL) {
        return NULL;
    }
    Py_ssize_t n = tl_ssl_write_buffer_size(p);
    Py_DECREF(p);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *
SSLTr_get_read_buffer_size(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_sslproto *p = need_proto(self, "_get_read_buffer_size");
    if (p == NULL) {
        return NULL;
    }
    Py_ssize_t n = tl_ssl_bio_pending(p, p->incoming);
    Py_DECREF(p);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *
SSLTr_write(PyObject *self, PyObject *data)
{
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) &&
        !PyMemoryView_Check(data)) {
        PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(data),
                                                "__name__");
        if (name != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "data: expecting a bytes-like instance, got %U",
                         name);
            Py_DECREF(name);
        }
        return NULL;
    }
    int nonempty = PyBytes_CheckExact(data) ? PyBytes_GET_SIZE(data) > 0
                                            : PyObject_IsTrue(data);
    if (nonempty <= 0) {
        return nonempty < 0 ? NULL : Py_NewRef(Py_None);
    }
    tl_sslproto *p = need_proto(self, "_write_appdata");
    if (p == NULL) {
        return NULL;
    }
    return done(p, tl_ssl_write_appdata(p, data, NULL));
}

static PyObject *
SSLTr_writelines(PyObject *self, PyObject *list_of_data)
{
    tl_sslproto *p = need_proto(self, "_write_appdata");
    if (p == NULL) {
        return NULL;
    }
    return done(p, tl_ssl_write_appdata(p, NULL, list_of_data));
}

static PyObject *
SSLTr_write_eof(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyErr_SetNone(PyExc_NotImplementedError);
    return NULL;
}

static PyObject *
SSLTr_can_write_eof(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_FALSE;
}

static PyObject *
SSLTr_force_close(PyObject *self, PyObject *exc)
{
    TRS(self)->closed = 1;
    PyObject *p = TRS(self)->proto;
    if (p == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(p);
    return done((tl_sslproto *)p, tl_ssl_abort((tl_sslproto *)p, exc));
}

static PyObject *
SSLTr_abort(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return SSLTr_force_close(self, Py_None);
}

static PyObject *
SSLTr_test_append_write_backlog(PyObject *self, PyObject *data)
{
    tl_sslproto *p = need_proto(self, "_write_backlog");
    if (p == NULL) {
        return NULL;
    }
    int rc = tl_ssl_backlog_push(p, data);
    if (rc == 0) {
        Py_ssize_t n = PyObject_Size(data);
        if (n < 0) {
            rc = -1;
        }
        else {
            p->wb_size += n;
        }
    }
    return done(p, rc);
}

static PyObject *
SSLTr_get_protocol_paused(PyObject *self, void *Py_UNUSED(closure))
{
    tl_sslproto *p = need_proto(self, "_app_writing_paused");
    if (p == NULL) {
        return NULL;
    }
    int paused = p->app_writing_paused;
    Py_DECREF(p);
    return PyBool_FromLong(paused);
}

static PyObject *
SSLTr_get_closed(PyObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(TRS(self)->closed);
}

static int
SSLTr_set_closed(PyObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    int v = value == NULL ? 0 : PyObject_IsTrue(value);
    if (v < 0) {
        return -1;
    }
    TRS(self)->closed = (char)v;
    return 0;
}

static PyObject *
SSLTr_get_loop(PyObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(TL_NONE(TRS(self)->loop));
}

static PyObject *
SSLTr_get_ssl_protocol(PyObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(TL_NONE(TRS(self)->proto));
}

static PyObject *
SSLTr_get_context(PyObject *self, void *Py_UNUSED(closure))
{
    PyObject *p = TRS(self)->proto;
    return Py_NewRef(p ? TL_NONE(((tl_sslproto *)p)->context) : Py_None);
}

static PyMethodDef SSLTr_methods[] = {
    {"get_extra_info", (PyCFunction)(void (*)(void))SSLTr_get_extra_info,
     METH_VARARGS | METH_KEYWORDS, "Get optional transport information."},
    {"set_protocol", SSLTr_set_protocol, METH_O, NULL},
    {"get_protocol", SSLTr_get_protocol, METH_NOARGS, NULL},
    {"is_closing", SSLTr_is_closing, METH_NOARGS, NULL},
    {"close", SSLTr_close, METH_NOARGS,
     "Close the transport: buffered data is flushed, then the TLS "
     "shutdown runs and connection_lost(None) follows."},
    {"is_reading", SSLTr_is_reading, METH_NOARGS, NULL},
    {"pause_reading", SSLTr_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", SSLTr_resume_reading, METH_NOARGS, NULL},
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))SSLTr_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"get_write_buffer_limits", SSLTr_get_write_buffer_limits, METH_NOARGS,
     NULL},
    {"get_write_buffer_size", SSLTr_get_write_buffer_size, METH_NOARGS,
     NULL},
    {"set_read_buffer_limits",
     (PyCFunction)(void (*)(void))SSLTr_set_read_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"get_read_buffer_limits", SSLTr_get_read_buffer_limits, METH_NOARGS,
     NULL},
    {"get_read_buffer_size", SSLTr_get_read_buffer_size, METH_NOARGS, NULL},
    {"write", SSLTr_write, METH_O, NULL},
    {"writelines", SSLTr_writelines, METH_O, NULL},
    {"write_eof", SSLTr_write_eof, METH_NOARGS, NULL},
    {"can_write_eof", SSLTr_can_write_eof, METH_NOARGS, NULL},
    {"abort", SSLTr_abort, METH_NOARGS, NULL},
    {"_force_close", SSLTr_force_close, METH_O, NULL},
    {"_test__append_write_backlog", SSLTr_test_append_write_backlog, METH_O,
     NULL},
    {NULL}};

static PyGetSetDef SSLTr_getset[] = {
    {"_protocol_paused", SSLTr_get_protocol_paused, NULL, NULL, NULL},
    {"_closed", SSLTr_get_closed, SSLTr_set_closed, NULL, NULL},
    {"_loop", SSLTr_get_loop, NULL, NULL, NULL},
    {"_ssl_protocol", SSLTr_get_ssl_protocol, NULL, NULL, NULL},
    {"_context", SSLTr_get_context, NULL, NULL, NULL},
    {NULL}};

static int
SSLTr_traverse(PyObject *self, visitproc visit, void *arg)
{
    tl_ssltr *t = TRS(self);
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(t->loop);
    Py_VISIT(t->proto);
    Py_VISIT(t->dict);
    return tl_base_slots_visit(self, visit, arg);
}

static int
SSLTr_clear(PyObject *self)
{
    tl_ssltr *t = TRS(self);
    Py_CLEAR(t->loop);
    Py_CLEAR(t->proto);
    Py_CLEAR(t->dict);
    tl_base_slots_clear(self);
    return 0;
}

/* asyncio warns from __del__ and does not close. */
static void
SSLTr_finalize(PyObject *self)
{
    tl_ssltr *t = TRS(self);
    if (t->closed) {
        return;
    }
    t->closed = 1;
    PyObject *exc = tl_fetch_exception();
    if (PyErr_WarnEx(PyExc_ResourceWarning,
                     "unclosed transport <asyncio._SSLProtocolTransport "
                     "object>", 1) < 0) {
        PyErr_WriteUnraisable(self);
    }
    if (exc != NULL) {
        tl_restore_exception(exc);
    }
}

static void
SSLTr_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc(self) < 0) {
        return;  /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    if (TRS(self)->weakreflist != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    SSLTr_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

int
tl_ssltr_init_type(PyObject *module, tl_ssl_state *ss)
{
    PyObject *transports = PyImport_ImportModule("asyncio.transports");
    if (transports == NULL) {
        return -1;
    }
    PyObject *mixin = PyObject_GetAttrString(transports, "_FlowControlMixin");
    Py_DECREF(transports);
    if (mixin == NULL) {
        return -1;
    }
    PyObject *bases = PyTuple_Pack(1, mixin);
    Py_ssize_t base_size = ((PyTypeObject *)mixin)->tp_basicsize;
    Py_DECREF(mixin);
    if (bases == NULL) {
        return -1;
    }
    PyMemberDef members[] = {
        {"__weaklistoffset__", T_PYSSIZET,
         base_size + offsetof(tl_ssltr, weakreflist), READONLY},
        {"__dictoffset__", T_PYSSIZET, base_size + offsetof(tl_ssltr, dict),
         READONLY},
        {NULL}};
    PyType_Slot slots[] = {
        {Py_tp_dealloc, SSLTr_dealloc},
        {Py_tp_traverse, SSLTr_traverse},
        {Py_tp_clear, SSLTr_clear},
        {Py_tp_finalize, SSLTr_finalize},
        {Py_tp_methods, SSLTr_methods},
        {Py_tp_getset, SSLTr_getset},
        {Py_tp_members, members},
        {Py_tp_doc, "The transport of an app protocol over TLS (asyncio's "
                    "sslproto._SSLProtocolTransport in C)."},
        {0, NULL}};
    PyType_Spec spec = {
        .name = "tideloop._core._SSLProtocolTransport",
        .basicsize = (int)(base_size + sizeof(tl_ssltr)),
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
        .slots = slots,
    };
    PyTypeObject *tp =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, bases);
    Py_DECREF(bases);
    if (tp == NULL) {
        return -1;
    }
    tp->tp_name = "_SSLProtocolTransport";
    ss->TransportType = tp;
    ss->tr_offset = base_size;
    if (PyObject_SetAttrString((PyObject *)tp, "_start_tls_compatible",
                               Py_True) < 0) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "_SSLProtocolTransport",
                                 (PyObject *)tp);
}
