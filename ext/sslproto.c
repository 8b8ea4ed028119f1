/* SSLProtocol: asyncio's sslproto.SSLProtocol (3.11+) in C.
 *
 * This file holds the object's life (construction, GC), the callbacks the
 * underlying transport makes (connection_made/lost, get_buffer,
 * buffer_updated, eof_received, pause/resume_writing), the handshake and
 * shutdown state machine, abort and fatal errors.  The data paths and flow
 * control are in sslflow.c, the app's transport in ssltransport.c.
 *
 * Each function mirrors the asyncio method of the same name, statement by
 * statement, so that the order of callbacks, the exceptions that escape
 * and the messages are asyncio's.  Where asyncio's code lets an exception
 * propagate, the C function returns -1 with it set; where asyncio catches
 * `Exception`, tl_ssl_catch() takes it and anything else (KeyboardInterrupt,
 * SystemExit, CancelledError...) propagates as in Python.
 *
 * Re-entrancy: every call into Python (the app protocol, the transport,
 * the loop, the ssl module) may close, abort or even drop the connection;
 * state is re-read after each, and objects used across a call are held by
 * a reference of our own (tl_ssl_call). */
#include "sslproto.h"

#include <stddef.h>
#include <structmember.h>

#define TL_LOG_DEBUG 10

/* handle.cancel(); the field is cleared once that succeeded. */
static int
cancel_handle(PyObject **handle, tl_ssl_state *ss)
{
    if (*handle == NULL) {
        return 0;
    }
    PyObject *r = tl_ssl_call(*handle, ss->s_cancel, NULL, 0);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    Py_CLEAR(*handle);
    return 0;
}

static int
wakeup_waiter(tl_sslproto *p, PyObject *exc)
{
    tl_ssl_state *ss = p->ss;
    if (p->waiter == NULL) {
        return 0;
    }
    PyObject *r = tl_ssl_call(p->waiter, ss->s_cancelled, NULL, 0);
    if (r == NULL) {
        return -1;
    }
    int cancelled = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (cancelled < 0) {
        return -1;
    }
    if (!cancelled) {
        if (exc != NULL) {
            r = tl_ssl_call(p->waiter, ss->s_set_exception, &exc, 1);
        }
        else {
            PyObject *none = Py_None;
            r = tl_ssl_call(p->waiter, ss->s_set_result, &none, 1);
        }
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    Py_CLEAR(p->waiter);
    return 0;
}

int
tl_ssl_set_state(tl_sslproto *p, int new_state)
{
    int cur = p->state, allowed = 0;
    if (new_state == TL_SSL_UNWRAPPED) {
        allowed = 1;
    }
    else if (new_state == cur + 1) {
        /* UNWRAPPED -> DO_HANDSHAKE -> WRAPPED -> FLUSHING -> SHUTDOWN */
        allowed = 1;
    }
    if (allowed) {
        p->state = (unsigned char)new_state;
        return 0;
    }
    PyObject *states = p->ss->states;
    PyErr_Format(PyExc_RuntimeError, "cannot switch state from %S to %S",
                 PyTuple_GET_ITEM(states, cur),
                 PyTuple_GET_ITEM(states, new_state));
    return -1;
}

int
tl_ssl_fatal_error(tl_sslproto *p, PyObject *exc, const char *message)
{
    tl_ssl_state *ss = p->ss;
    if (message == NULL) {
        message = "Fatal error on transport";
    }
    if (p->transport != NULL) {
        PyObject *r = tl_ssl_call(p->transport, ss->s__force_close, &exc, 1);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    /* The logging half (debug log of OSErrors, the exception handler for
     * the rest) is Python: it runs once per failed connection. */
    PyObject *msg = PyUnicode_FromString(message);
    if (msg == NULL) {
        return -1;
    }
    PyObject *args[3] = {(PyObject *)p, exc, msg};
    PyObject *r = PyObject_Vectorcall(ss->h_fatal_log, args, 3, NULL);
    Py_DECREF(msg);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* ---- the app transport and protocol --------------------------------- */

PyObject *
tl_ssl_get_app_transport(tl_sslproto *p)
{
    if (p->app_transport == NULL) {
        if (p->app_transport_created) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Creating _SSLProtocolTransport twice");
            return NULL;
        }
        p->app_transport = tl_ssltr_new(p->ss, p->loop, (PyObject *)p);
        if (p->app_transport == NULL) {
            return NULL;
        }
        p->app_transport_created = 1;
    }
    return Py_NewRef(p->app_transport);
}

int
tl_ssl_set_app_protocol(tl_sslproto *p, PyObject *app_protocol)
{
    tl_ssl_state *ss = p->ss;
    Py_INCREF(app_protocol);
    Py_XSETREF(p->app_protocol, app_protocol);
    /* asyncio: hasattr(get_buffer) first (cheap), then isinstance. */
    int buffered = PyObject_HasAttr(app_protocol, ss->s_get_buffer);
    if (buffered) {
        buffered = PyObject_IsInstance(app_protocol,
                                       ss->BufferedProtocolType);
        if (buffered < 0) {
            return -1;
        }
    }
    /* As asyncio, the bound methods of the last BufferedProtocol stay
     * (a switch inside get_buffer() still finds its buffer_updated()). */
    p->app_is_buffer = 0;
    if (buffered) {
        PyObject *get = PyObject_GetAttr(app_protocol, ss->s_get_buffer);
        if (get == NULL) {
            return -1;
        }
        PyObject *upd = PyObject_GetAttr(app_protocol, ss->s_buffer_updated);
        if (upd == NULL) {
            Py_DECREF(get);
            return -1;
        }
        Py_XSETREF(p->app_get_buffer, get);
        Py_XSETREF(p->app_buffer_updated, upd);
        p->app_is_buffer = 1;
    }
    return 0;
}

PyObject *
tl_ssl_get_extra_info(tl_sslproto *p, PyObject *name, PyObject *dflt)
{
    PyObject *v = PyDict_GetItemWithError(p->extra, name);
    if (v != NULL) {
        return Py_NewRef(v);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (p->transport != NULL) {
        PyObject *args[2] = {name, dflt};
        return tl_ssl_call(p->transport, p->ss->s_get_extra_info, args, 2);
    }
    return Py_NewRef(dflt);
}

/* ---- handshake ------------------------------------------------------ */

static int do_handshake(tl_sslproto *p);

static int
start_handshake(tl_sslproto *p)
{
    tl_ssl_state *ss = p->ss;
    int debug = tl_ssl_loop_debug(p);
    if (debug < 0) {
        return -1;
    }
    if (debug) {
        if (tl_ssl_log(ss, TL_LOG_DEBUG, "%r starts SSL handshake",
                       (PyObject *)p, NULL) < 0) {
            return -1;
        }
        PyObject *t = tl_ssl_call(p->loop, ss->s_time, NULL, 0);
        if (t == NULL) {
            return -1;
        }
        Py_XSETREF(p->handshake_start_time, t);
    }
    else {
        Py_CLEAR(p->handshake_start_time);
    }
    if (tl_ssl_set_state(p, TL_SSL_DO_HANDSHAKE) < 0) {
        return -1;
    }
    PyObject *h = tl_ssl_schedule(p, p->handshake_timeout,
                                  ss->s__check_handshake_timeout);
    if (h == NULL) {
        return -1;
    }
    Py_XSETREF(p->handshake_handle, h);
    return do_handshake(p);
}

/* `handshake_exc` is NULL (success), an exception or an exception class
 * (eof_received() passes ConnectionResetError itself, as asyncio does). */
static int
on_handshake_complete(tl_sslproto *p, PyObject *handshake_exc)
{
    tl_ssl_state *ss = p->ss;
    PyObject *peercert = NULL, *cipher = NULL, *compression = NULL;
    if (cancel_handle(&p->handshake_handle, ss) < 0) {
        return -1;
    }
    PyObject *sslobj = Py_NewRef(p->sslobj);
    if (handshake_exc == NULL) {
        if (tl_ssl_set_state(p, TL_SSL_WRAPPED) < 0) {
            goto failed;
        }
    }
    else {
        /* raise handshake_exc */
        if (PyExceptionClass_Check(handshake_exc)) {
            PyObject *e = PyObject_CallNoArgs(handshake_exc);
            if (e != NULL) {
                tl_restore_exception(e);
            }
        }
        else {
            tl_restore_exception(Py_NewRef(handshake_exc));
        }
        goto failed;
    }
    peercert = tl_ssl_call(sslobj, ss->s_getpeercert, NULL, 0);
    if (peercert == NULL) {
        goto failed;
    }

    int debug = tl_ssl_loop_debug(p);
    if (debug < 0) {
        goto error;
    }
    if (debug) {
        PyObject *now = tl_ssl_call(p->loop, ss->s_time, NULL, 0);
        if (now == NULL) {
            goto error;
        }
        PyObject *dt = PyNumber_Subtract(now,
                                         TL_NONE(p->handshake_start_time));
        Py_DECREF(now);
        if (dt == NULL) {
            goto error;
        }
        PyObject *k = PyFloat_FromDouble(1e3);
        PyObject *ms = k ? PyNumber_Multiply(dt, k) : NULL;
        Py_XDECREF(k);
        Py_DECREF(dt);
        if (ms == NULL) {
            goto error;
        }
        int rc = tl_ssl_log(ss, TL_LOG_DEBUG, "%r: SSL handshake took %.1f ms",
                            (PyObject *)p, ms);
        Py_DECREF(ms);
        if (rc < 0) {
            goto error;
        }
    }
    /* Extra info that becomes available after the handshake. */
    cipher = tl_ssl_call(sslobj, ss->s_cipher, NULL, 0);
    if (cipher == NULL) {
        goto error;
    }
    compression = tl_ssl_call(sslobj, ss->s_compression, NULL, 0);
    if (compression == NULL) {
        goto error;
    }
    if (PyDict_SetItem(p->extra, ss->s_peercert, peercert) < 0 ||
        PyDict_SetItem(p->extra, ss->s_cipher, cipher) < 0 ||
        PyDict_SetItem(p->extra, ss->s_compression, compression) < 0 ||
        PyDict_SetItem(p->extra, ss->s_ssl_object, sslobj) < 0) {
        goto error;
    }
    Py_CLEAR(peercert);
    Py_CLEAR(cipher);
    Py_CLEAR(compression);
    Py_CLEAR(sslobj);
    if (p->app_state == TL_APP_INIT) {
        p->app_state = TL_APP_CON_MADE;
        PyObject *tr = tl_ssl_get_app_transport(p);
        if (tr == NULL) {
            return -1;
        }
        PyObject *r = tl_ssl_app_call(p, ss->s_connection_made, &tr, 1);
        Py_DECREF(tr);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    if (wakeup_waiter(p, NULL) < 0) {
        return -1;
    }
    return tl_ssl_do_read(p);

failed: {
        /* except Exception as exc: */
        Py_XDECREF(sslobj);
        PyObject *exc = tl_ssl_catch();
        if (exc == NULL) {
            return -1;
        }
        (void)tl_ssl_set_state(p, TL_SSL_UNWRAPPED);
        int is_cert = PyObject_IsInstance(exc, ss->CertificateError);
        int rc = -1;
        if (is_cert >= 0 &&
            tl_ssl_fatal_error(
                p, exc,
                is_cert ? "SSL handshake failed on verifying the certificate"
                        : "SSL handshake failed") == 0) {
            rc = wakeup_waiter(p, exc);
        }
        Py_DECREF(exc);
        return rc;
    }
error:
    Py_XDECREF(sslobj);
    Py_XDECREF(peercert);
    Py_XDECREF(cipher);
    Py_XDECREF(compression);
    return -1;
}

/* One step of the handshake or the shutdown (`meth`: do_handshake or
 * unwrap), as asyncio's try/except around it: wanting more records
 * sends what the step produced, an SSLError completes the step with it.
 * 1: the step succeeded (the caller goes on), 0: handled, -1: error. */
static int
ssl_step(tl_sslproto *p, PyObject *meth,
         int (*complete)(tl_sslproto *, PyObject *))
{
    PyObject *r = PyObject_CallNoArgs(meth);
    if (r != NULL) {
        Py_DECREF(r);
        return 1;
    }
    if (PyErr_ExceptionMatches(p->ss->again_errors)) {
        PyErr_Clear();
        return tl_ssl_process_outgoing(p);
    }
    if (PyErr_ExceptionMatches(p->ss->SSLError)) {
        PyObject *exc = tl_fetch_exception();
        int rc = complete(p, exc);
        Py_DECREF(exc);
        return rc;
    }
    return -1;
}

static int
do_handshake(tl_sslproto *p)
{
    int rc = ssl_step(p, p->ssl_handshake, on_handshake_complete);
    return rc == 1 ? on_handshake_complete(p, NULL) : rc;
}

/* ---- shutdown ------------------------------------------------------- */

int
tl_ssl_start_shutdown(tl_sslproto *p)
{
    if (p->state == TL_SSL_FLUSHING || p->state == TL_SSL_SHUTDOWN ||
        p->state == TL_SSL_UNWRAPPED) {
        return 0;
    }
    if (p->app_transport != NULL) {
        tl_ssltr_mark_closed(p->app_transport);
    }
    if (p->state == TL_SSL_DO_HANDSHAKE) {
        return tl_ssl_abort(p, Py_None);
    }
    if (tl_ssl_set_state(p, TL_SSL_FLUSHING) < 0) {
        return -1;
    }
    PyObject *h = tl_ssl_schedule(p, p->shutdown_timeout,
                                  p->ss->s__check_shutdown_timeout);
    if (h == NULL) {
        return -1;
    }
    Py_XSETREF(p->shutdown_handle, h);
    return tl_ssl_do_flush(p);
}

int
tl_ssl_do_flush(tl_sslproto *p)
{
    if (tl_ssl_do_read(p) < 0 || tl_ssl_set_state(p, TL_SSL_SHUTDOWN) < 0) {
        return -1;
    }
    return tl_ssl_do_shutdown(p);
}

static int
on_shutdown_complete(tl_sslproto *p, PyObject *shutdown_exc)
{
    tl_ssl_state *ss = p->ss;
    if (!ss->shutdown_timeout_until_lost || shutdown_exc != NULL) {
        if (cancel_handle(&p->shutdown_handle, ss) < 0) {
            return -1;
        }
    }
    if (shutdown_exc != NULL) {
        return tl_ssl_fatal_error(p, shutdown_exc, NULL);
    }
    if (ss->shutdown_timeout_until_lost && p->shutdown_handle == NULL) {
        /* 3.14+: transport.close() flushes first, which a peer that does
         * not read can delay forever: keep (or start) the timeout until
         * connection_lost(). */
        PyObject *h = tl_ssl_schedule(p, p->shutdown_timeout,
                                      ss->s__check_shutdown_timeout);
        if (h == NULL) {
            return -1;
        }
        p->shutdown_handle = h;
    }
    PyObject *close = PyObject_GetAttr(TL_NONE(p->transport), ss->s_close);
    if (close == NULL) {
        return -1;
    }
    PyObject *args[3] = {p->loop, close, TL_NONE(p->context)};
    PyObject *r = PyObject_VectorcallMethod(
        ss->s_call_soon, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
        ss->kw_context);
    Py_DECREF(close);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

int
tl_ssl_do_shutdown(tl_sslproto *p)
{
    if (!p->eof_received) {
        int rc = ssl_step(p, p->ssl_unwrap, on_shutdown_complete);
        if (rc != 1) {
            return rc;
        }
    }
    if (tl_ssl_process_outgoing(p) < 0 || tl_ssl_call_eof_received(p) < 0) {
        return -1;
    }
    return on_shutdown_complete(p, NULL);
}

int
tl_ssl_abort(tl_sslproto *p, PyObject *exc)
{
    (void)tl_ssl_set_state(p, TL_SSL_UNWRAPPED);
    if (p->transport == NULL) {
        return 0;
    }
    PyObject *r;
    if (p->ss->abort_passes_exc) {
        r = tl_ssl_call(p->transport, p->ss->s__force_close, &exc, 1);
    }
    else {
        r = tl_ssl_call(p->transport, p->ss->s_abort, NULL, 0);
    }
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* ---- the callbacks of the underlying transport ---------------------- */

static PyObject *
Proto_connection_made(tl_sslproto *p, PyObject *transport)
{
    Py_INCREF(transport);
    Py_XSETREF(p->transport, transport);
    if (!p->context_explicit) {
        /* start_tls(): the connection keeps the context the transport
         * runs its protocol in (asyncio 3.15's transports have one). */
        PyObject *ctx = PyObject_GetAttr(transport, p->ss->s__context);
        if (ctx == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                return NULL;
            }
            PyErr_Clear();
        }
        else if (PyContext_CheckExact(ctx)) {
            Py_XSETREF(p->context, ctx);
        }
        else {
            Py_DECREF(ctx);
        }
    }
    if (start_handshake(p) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Proto_connection_lost(tl_sslproto *p, PyObject *exc)
{
    tl_ssl_state *ss = p->ss;
    tl_ssl_backlog_clear(p);
    PyObject *r = PyObject_CallNoArgs(p->out_read);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    p->conn_lost += 1;
    /* Just mark the app transport as closed so that its finalizer does
     * not complain. */
    if (p->app_transport != NULL) {
        tl_ssltr_mark_closed(p->app_transport);
    }
    if (p->state != TL_SSL_DO_HANDSHAKE &&
        (p->app_state == TL_APP_CON_MADE || p->app_state == TL_APP_EOF)) {
        p->app_state = TL_APP_CON_LOST;
        PyObject *cb = PyObject_GetAttr(TL_NONE(p->app_protocol),
                                        ss->s_connection_lost);
        if (cb == NULL) {
            return NULL;
        }
        PyObject *args[4] = {p->loop, cb, exc, TL_NONE(p->context)};
        r = PyObject_VectorcallMethod(ss->s_call_soon, args,
                                      3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      ss->kw_context);
        Py_DECREF(cb);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    (void)tl_ssl_set_state(p, TL_SSL_UNWRAPPED);
    Py_CLEAR(p->transport);
    Py_CLEAR(p->app_transport);
    Py_CLEAR(p->app_protocol);
    Py_CLEAR(p->app_get_buffer);
    Py_CLEAR(p->app_buffer_updated);
    /* Nothing reads the buffer any more: give the 256 KiB back now. */
    Py_CLEAR(p->buf_view);
    Py_CLEAR(p->buf);
    if (wakeup_waiter(p, exc == Py_None ? NULL : exc) < 0 ||
        cancel_handle(&p->shutdown_handle, ss) < 0 ||
        cancel_handle(&p->handshake_handle, ss) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}


int
tl_ssl_ensure_buffer(tl_sslproto *p)
{
    if (p->buf != NULL) {
        return 0;
    }
    /* Not zero-filled: only the pages recv() writes become resident. */
    p->buf = PyByteArray_FromStringAndSize(NULL, TL_SSL_MAX_SIZE);
    if (p->buf == NULL) {
        return -1;
    }
    p->buf_view = PyMemoryView_FromObject(p->buf);
    if (p->buf_view == NULL) {
        Py_CLEAR(p->buf);
        return -1;
    }
    return 0;
}

static PyObject *
Proto_get_buffer(tl_sslproto *p, PyObject *n)
{
    /* asyncio: any n <= 0 or > max_size asks for max_size, and the buffer
     * is never smaller than that: the whole buffer is always returned. */
    if (PyNumber_AsSsize_t(n, NULL) == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (tl_ssl_ensure_buffer(p) < 0) {
        return NULL;
    }
    return Py_NewRef(p->buf_view);
}

int
tl_ssl_buffer_updated(PyObject *proto, Py_ssize_t nbytes)
{
    tl_sslproto *p = (tl_sslproto *)proto;
    if (tl_ssl_ensure_buffer(p) < 0) {
        return -1;
    }
    /* asyncio writes self._ssl_buffer_view[:nbytes] */
    if (nbytes < 0) {
        nbytes = Py_MAX(TL_SSL_MAX_SIZE + nbytes, 0);
    }
    else if (nbytes > TL_SSL_MAX_SIZE) {
        nbytes = TL_SSL_MAX_SIZE;
    }
    /* The BIO copies the bytes at once: a window on our memory is
     * enough. */
    PyObject *mv = tl_ssl_window(p, PyByteArray_AS_STRING(p->buf), nbytes,
                                 0, 1);
    if (mv == NULL) {
        return -1;
    }
    PyObject *r = PyObject_Vectorcall(p->in_write, &mv, 1, NULL);
    Py_DECREF(mv);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    switch (p->state) {
    case TL_SSL_DO_HANDSHAKE:
        return do_handshake(p);
    case TL_SSL_WRAPPED:
        return tl_ssl_do_read(p);
    case TL_SSL_FLUSHING:
        return tl_ssl_do_flush(p);
    case TL_SSL_SHUTDOWN:
        return tl_ssl_do_shutdown(p);
    }
    return 0;
}

int
tl_ssl_recv_buffer(PyObject *proto, char **buf, Py_ssize_t *len)
{
    tl_sslproto *p = (tl_sslproto *)proto;
    if (tl_ssl_ensure_buffer(p) < 0) {
        return -1;
    }
    *buf = PyByteArray_AS_STRING(p->buf);
    *len = PyByteArray_GET_SIZE(p->buf);
    return 0;
}

int
tl_ssl_is_protocol(tl_state *st, PyObject *obj)
{
    return st->ssl != NULL && st->ssl->ProtocolType != NULL &&
           Py_IS_TYPE(obj, st->ssl->ProtocolType);
}

static PyObject *
Proto_buffer_updated(tl_sslproto *p, PyObject *nbytes_obj)
{
    Py_ssize_t nbytes = PyNumber_AsSsize_t(nbytes_obj, NULL);
    if (nbytes == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (tl_ssl_buffer_updated((PyObject *)p, nbytes) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Proto_eof_received(tl_sslproto *p, PyObject *Py_UNUSED(ignored))
{
    p->eof_received = 1;
    int rc = tl_ssl_loop_debug(p);
    if (rc > 0) {
        rc = tl_ssl_log(p->ss, TL_LOG_DEBUG, "%r received EOF",
                        (PyObject *)p, NULL);
    }
    if (rc == 0) {
        switch (p->state) {
        case TL_SSL_DO_HANDSHAKE:
            rc = on_handshake_complete(p, PyExc_ConnectionResetError);
            break;
        case TL_SSL_WRAPPED:
            rc = tl_ssl_set_state(p, TL_SSL_FLUSHING);
            if (rc == 0) {
                if (p->app_reading_paused) {
                    Py_RETURN_TRUE;
                }
                rc = tl_ssl_do_flush(p);
            }
            break;
        case TL_SSL_FLUSHING:
            rc = tl_ssl_do_write(p);
            if (rc == 0) {
                rc = tl_ssl_set_state(p, TL_SSL_SHUTDOWN);
            }
            if (rc == 0) {
                rc = tl_ssl_do_shutdown(p);
            }
            break;
        case TL_SSL_SHUTDOWN:
            rc = tl_ssl_do_shutdown(p);
            break;
        }
    }
    if (rc == 0) {
        Py_RETURN_NONE;
    }
    /* except Exception: self._transport.close(); raise */
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyObject *exc = tl_fetch_exception();
        PyObject *r = tl_ssl_call(p->transport, p->ss->s_close, NULL, 0);
        if (r == NULL) {
            PyObject *exc2 = tl_fetch_exception();
            PyException_SetContext(exc2, exc);   /* steals exc */
            tl_restore_exception(exc2);
            return NULL;
        }
        Py_DECREF(r);
        tl_restore_exception(exc);
    }
    return NULL;
}

static PyObject *
Proto_pause_writing(tl_sslproto *p, PyObject *Py_UNUSED(ignored))
{
    if (p->ssl_writing_paused && p->ss->asserts) {
        PyErr_SetNone(PyExc_AssertionError);
        return NULL;
    }
    p->ssl_writing_paused = 1;
    Py_RETURN_NONE;
}

static PyObject *
Proto_resume_writing(tl_sslproto *p, PyObject *Py_UNUSED(ignored))
{
    if (!p->ssl_writing_paused && p->ss->asserts) {
        PyErr_SetNone(PyExc_AssertionError);
        return NULL;
    }
    p->ssl_writing_paused = 0;
    if (tl_ssl_process_outgoing(p) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- methods the loop calls back ------------------------------------ */

static PyObject *
Proto_check_handshake_timeout(tl_sslproto *p, PyObject *Py_UNUSED(ignored))
{
    if (p->state != TL_SSL_DO_HANDSHAKE) {
        Py_RETURN_NONE;
    }
    PyObject *exc = PyObject_CallFunction(
        PyExc_ConnectionAbortedError, "N",
        PyUnicode_FromFormat("SSL handshake is taking longer than %S "
                             "seconds: aborting the connection",
                             p->handshake_timeout));
    if (exc == NULL) {
        return NULL;
    }
    int rc = tl_ssl_fatal_error(p, exc, NULL);
    Py_DECREF(exc);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Proto_check_shutdown_timeout(tl_sslproto *p, PyObject *Py_UNUSED(ignored))
{
    if (p->state != TL_SSL_FLUSHING && p->state != TL_SSL_SHUTDOWN) {
        Py_RETURN_NONE;
    }
    PyObject *exc = PyObject_CallFunction(p->ss->TimeoutError, "s",
                                          "SSL shutdown timed out");
    if (exc == NULL) {
        return NULL;
    }
    PyObject *r = tl_ssl_call(p->transport, p->ss->s__force_close, &exc, 1);
    Py_DECREF(exc);
    return r;
}

static PyObject *
Proto_do_read(tl_sslproto *p, PyObject *Py_UNUSED(ignored))
{
    if (tl_ssl_do_read(p) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The resume() closure of asyncio's _resume_reading(). */
static PyObject *
Proto_resume_reading_cb(tl_sslproto *p, PyObject *Py_UNUSED(ignored))
{
    int rc = 0;
    if (p->state == TL_SSL_WRAPPED) {
        rc = tl_ssl_do_read(p);
    }
    else if (p->state == TL_SSL_FLUSHING) {
        rc = tl_ssl_do_flush(p);
    }
    else if (p->state == TL_SSL_SHUTDOWN) {
        rc = tl_ssl_do_shutdown(p);
    }
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Positional arguments of the private methods, in asyncio's ranges. */
static int
check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t min,
            Py_ssize_t max)
{
    if (nargs < min || nargs > max) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from %zd to %zd positional arguments but "
                     "%zd were given", name, min, max, nargs);
        return 0;
    }
    return 1;
}

static PyObject *
Proto_get_app_transport_m(tl_sslproto *p, PyObject *Py_UNUSED(ignored))
{
    return tl_ssl_get_app_transport(p);
}

static PyObject *
Proto_start_shutdown_m(tl_sslproto *p, PyObject *Py_UNUSED(ignored))
{
    if (tl_ssl_start_shutdown(p) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Proto_abort_m(tl_sslproto *p, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("_abort", nargs, 0, 1)) {
        return NULL;
    }
    if (tl_ssl_abort(p, nargs ? args[0] : Py_None) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Proto_get_extra_info_m(tl_sslproto *p, PyObject *const *args,
                       Py_ssize_t nargs)
{
    if (!check_nargs("_get_extra_info", nargs, 1, 2)) {
        return NULL;
    }
    return tl_ssl_get_extra_info(p, args[0], nargs > 1 ? args[1] : Py_None);
}

static PyObject *
Proto_set_app_protocol_m(tl_sslproto *p, PyObject *app)
{
    if (tl_ssl_set_app_protocol(p, app) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Proto_wakeup_waiter_m(tl_sslproto *p, PyObject *const *args,
                      Py_ssize_t nargs)
{
    if (!check_nargs("_wakeup_waiter", nargs, 0, 1)) {
        return NULL;
    }
    PyObject *exc = nargs ? args[0] : Py_None;
    if (wakeup_waiter(p, exc == Py_None ? NULL : exc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyMethodDef tl_sslproto_methods[] = {
    {"connection_made", (PyCFunction)Proto_connection_made, METH_O, NULL},
    {"connection_lost", (PyCFunction)Proto_connection_lost, METH_O, NULL},
    {"get_buffer", (PyCFunction)Proto_get_buffer, METH_O, NULL},
    {"buffer_updated", (PyCFunction)Proto_buffer_updated, METH_O, NULL},
    {"eof_received", (PyCFunction)Proto_eof_received, METH_NOARGS, NULL},
    {"pause_writing", (PyCFunction)Proto_pause_writing, METH_NOARGS, NULL},
    {"resume_writing", (PyCFunction)Proto_resume_writing, METH_NOARGS,
     NULL},
    {"_check_handshake_timeout", (PyCFunction)Proto_check_handshake_timeout,
     METH_NOARGS, NULL},
    {"_check_shutdown_timeout", (PyCFunction)Proto_check_shutdown_timeout,
     METH_NOARGS, NULL},
    {"_do_read", (PyCFunction)Proto_do_read, METH_NOARGS, NULL},
    {"_resume_reading_cb", (PyCFunction)Proto_resume_reading_cb,
     METH_NOARGS, NULL},
    {"_get_app_transport", (PyCFunction)Proto_get_app_transport_m,
     METH_NOARGS, NULL},
    {"_start_shutdown", (PyCFunction)Proto_start_shutdown_m, METH_NOARGS,
     NULL},
    {"_abort", (PyCFunction)(void (*)(void))Proto_abort_m, METH_FASTCALL,
     NULL},
    {"_get_extra_info", (PyCFunction)(void (*)(void))Proto_get_extra_info_m,
     METH_FASTCALL, NULL},
    {"_set_app_protocol", (PyCFunction)Proto_set_app_protocol_m, METH_O,
     NULL},
    {"_wakeup_waiter", (PyCFunction)(void (*)(void))Proto_wakeup_waiter_m,
     METH_FASTCALL, NULL},
    {NULL}};
