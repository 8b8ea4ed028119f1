/* The data paths of SSLProtocol and its flow control (asyncio's
 * sslproto.py, "Outgoing flow", "Incoming flow" and the flow control
 * sections), and calling the app protocol in its context.
 *
 * Incoming: buffer_updated() (sslproto.c) has written the record bytes
 * into the incoming BIO; _do_read() decrypts them with SSLObject.read()
 * into our buffer (or the app's, for a BufferedProtocol) and hands them to
 * data_received()/buffer_updated() in one call, as asyncio does.
 *
 * Outgoing: app writes go to the backlog, SSLObject.write() encrypts them
 * into the outgoing BIO, and _process_outgoing() passes what it holds to
 * transport.write() in one piece.
 *
 * SSLWantReadError is costly to raise (CPython issue 123954), and asyncio
 * raises it once per _do_read() to end its read loop.  Here the loop ends
 * when neither the incoming BIO nor the SSL object holds bytes, which is
 * when that read would have raised it (read-ahead is off in Python's ssl,
 * so no record hides inside OpenSSL).  A partial record left in the BIO
 * still makes a read raise, handled as asyncio handles it. */
#include "sslproto.h"

#define TL_LOG_WARNING 30

/* ---- calling Python ------------------------------------------------- */

PyObject *
tl_ssl_call(PyObject *obj, PyObject *name, PyObject *const *args,
            Py_ssize_t nargs)
{
    PyObject *stack[4];
    obj = TL_NONE(obj);
    Py_INCREF(obj);
    stack[0] = obj;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        stack[i + 1] = args[i];
    }
    PyObject *r = PyObject_VectorcallMethod(name, stack, nargs + 1, NULL);
    Py_DECREF(obj);
    return r;
}

PyObject *
tl_ssl_catch(void)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return NULL;
    }
    return tl_fetch_exception();
}

int
tl_ssl_log(tl_ssl_state *ss, int level, const char *fmt, PyObject *a1,
           PyObject *a2)
{
    PyObject *lvl = PyLong_FromLong(level);
    PyObject *f = PyUnicode_FromString(fmt);
    PyObject *r = NULL;
    if (lvl != NULL && f != NULL) {
        PyObject *args[4] = {lvl, f, a1, a2};
        r = PyObject_Vectorcall(ss->h_log, args,
                                a1 == NULL ? 2 : (a2 == NULL ? 3 : 4), NULL);
    }
    Py_XDECREF(lvl);
    Py_XDECREF(f);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

int
tl_ssl_loop_debug(tl_sslproto *p)
{
    PyObject *r = tl_ssl_call(p->loop, p->ss->s_get_debug, NULL, 0);
    if (r == NULL) {
        return -1;
    }
    int d = PyObject_IsTrue(r);
    Py_DECREF(r);
    return d;
}

PyObject *
tl_ssl_schedule(tl_sslproto *p, PyObject *delay, PyObject *name)
{
    tl_ssl_state *ss = p->ss;
    PyObject *cb = PyObject_GetAttr((PyObject *)p, name);
    if (cb == NULL) {
        return NULL;
    }
    /* Every callback of the connection runs in its context. */
    PyObject *ctx = TL_NONE(p->context);
    PyObject *r;
    if (delay == NULL) {
        PyObject *args[3] = {p->loop, cb, ctx};
        r = PyObject_VectorcallMethod(ss->s_call_soon, args,
                                      2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      ss->kw_context);
    }
    else {
        PyObject *args[4] = {p->loop, delay, cb, ctx};
        r = PyObject_VectorcallMethod(ss->s_call_later, args,
                                      3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      ss->kw_context);
    }
    Py_DECREF(cb);
    return r;
}

/* ---- the app protocol, in the connection's context ------------------ */

PyObject *
tl_ssl_app_call(tl_sslproto *p, PyObject *name, PyObject *const *args,
                Py_ssize_t nargs)
{
    PyObject *ctx = p->context;
    PyThreadState *ts = PyThreadState_Get();
    if (ctx == NULL || ts->context == ctx) {
        return tl_ssl_call(p->app_protocol, name, args, nargs);
    }
    /* Entering fails only if the context is already entered further up
     * this thread's stack (a callback of this connection calling into
     * another connection that calls back into this one): the call then
     * runs in the current context, as asyncio would run it. */
    Py_INCREF(ctx);
    if (PyContext_Enter(ctx) < 0) {
        PyErr_Clear();
        Py_DECREF(ctx);
        return tl_ssl_call(p->app_protocol, name, args, nargs);
    }
    PyObject *r = tl_ssl_call(p->app_protocol, name, args, nargs);
    if (PyContext_Exit(ctx) < 0) {
        Py_CLEAR(r);
    }
    Py_DECREF(ctx);
    return r;
}

/* Same for a cached bound method of the app protocol. */
static PyObject *
app_call_bound(tl_sslproto *p, PyObject *meth, PyObject *arg)
{
    if (meth == NULL) {
        /* Dropped by connection_lost() meanwhile: None's AttributeError. */
        return PyObject_CallOneArg(Py_None, arg);
    }
    PyObject *ctx = p->context;
    PyThreadState *ts = PyThreadState_Get();
    Py_INCREF(meth);
    if (ctx == NULL || ts->context == ctx) {
        PyObject *r = PyObject_Vectorcall(meth, &arg, 1, NULL);
        Py_DECREF(meth);
        return r;
    }
    Py_INCREF(ctx);
    int entered = PyContext_Enter(ctx) == 0;
    if (!entered) {
        PyErr_Clear();
    }
    PyObject *r = PyObject_Vectorcall(meth, &arg, 1, NULL);
    if (entered && PyContext_Exit(ctx) < 0) {
        Py_CLEAR(r);
    }
    Py_DECREF(ctx);
    Py_DECREF(meth);
    return r;
}

/* ---- the write backlog ---------------------------------------------- */

int
tl_ssl_backlog_push(tl_sslproto *p, PyObject *data)
{
    if (p->wb_len == p->wb_cap) {
        Py_ssize_t cap = p->wb_cap ? p->wb_cap * 2 : 8;
        PyObject **n = PyMem_Malloc(cap * sizeof(*n));
        if (n == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < p->wb_len; i++) {
            n[i] = p->wb[(p->wb_head + i) % p->wb_cap];
        }
        PyMem_Free(p->wb);
        p->wb = n;
        p->wb_head = 0;
        p->wb_cap = cap;
    }
    Py_INCREF(data);
    p->wb[(p->wb_head + p->wb_len) % p->wb_cap] = data;
    p->wb_len++;
    return 0;
}

static void
backlog_pop(tl_sslproto *p)
{
    PyObject *o = p->wb[p->wb_head];
    p->wb_head = (p->wb_head + 1) % p->wb_cap;
    p->wb_len--;
    Py_DECREF(o);
}

void
tl_ssl_backlog_clear(tl_sslproto *p)
{
    while (p->wb_len > 0) {
        backlog_pop(p);
    }
    p->wb_size = 0;
}

/* len(data), with the common types answered without a call. */
static Py_ssize_t
data_len(PyObject *data)
{
    if (PyBytes_CheckExact(data)) {
        return PyBytes_GET_SIZE(data);
    }
    return PyObject_Size(data);
}

/* ---- outgoing ------------------------------------------------------- */

int
tl_ssl_write_appdata(tl_sslproto *p, PyObject *single, PyObject *iterable)
{
    if (p->state == TL_SSL_FLUSHING || p->state == TL_SSL_SHUTDOWN ||
        p->state == TL_SSL_UNWRAPPED) {
        if (p->conn_lost >= p->ss->log_threshold &&
            tl_ssl_log(p->ss, TL_LOG_WARNING, "SSL connection is closed",
                       NULL, NULL) < 0) {
            return -1;
        }
        p->conn_lost += 1;
        return 0;
    }
    if (single != NULL) {
        Py_ssize_t n = data_len(single);
        if (n < 0 || tl_ssl_backlog_push(p, single) < 0) {
            return -1;
        }
        p->wb_size += n;
    }
    else {
        /* Items before a bad one stay queued, as in asyncio. */
        PyObject *it = PyObject_GetIter(iterable), *data;
        if (it == NULL) {
            return -1;
        }
        while ((data = PyIter_Next(it)) != NULL) {
            int rc = tl_ssl_backlog_push(p, data);
            Py_ssize_t n = rc == 0 ? data_len(data) : -1;
            Py_DECREF(data);
            if (n < 0) {
                Py_DECREF(it);
                return -1;
            }
            p->wb_size += n;
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    if (p->state == TL_SSL_WRAPPED && tl_ssl_do_write(p) < 0) {
        PyObject *exc = tl_ssl_catch();
        if (exc == NULL) {
            return -1;
        }
        int rc = tl_ssl_fatal_error(p, exc, "Fatal error on SSL protocol");
        Py_DECREF(exc);
        return rc;
    }
    return 0;
}

int
tl_ssl_do_write(tl_sslproto *p)
{
    while (p->wb_len > 0) {
        PyObject *data = p->wb[p->wb_head];
        Py_INCREF(data);
        PyObject *r = PyObject_Vectorcall(p->ssl_write, &data, 1, NULL);
        if (r == NULL) {
            Py_DECREF(data);
            if (!PyErr_ExceptionMatches(p->ss->again_errors)) {
                return -1;
            }
            PyErr_Clear();
            break;
        }
        Py_ssize_t count = PyLong_AsSsize_t(r);
        Py_DECREF(r);
        Py_ssize_t len = count == -1 && PyErr_Occurred() ? -1
                                                         : data_len(data);
        if (len < 0) {
            Py_DECREF(data);
            return -1;
        }
        /* Re-entrancy: nothing above calls Python code that could touch
         * the backlog (ssl and len() of a buffer), but check anyway. */
        if (p->wb_len == 0 || p->wb[p->wb_head] != data) {
            Py_DECREF(data);
            continue;
        }
        if (count < len) {
            PyObject *rest = PySequence_GetSlice(data, count, PY_SSIZE_T_MAX);
            if (rest == NULL) {
                Py_DECREF(data);
                return -1;
            }
            Py_SETREF(p->wb[p->wb_head], rest);
            p->wb_size -= count;
        }
        else {
            backlog_pop(p);
            p->wb_size -= len;
        }
        Py_DECREF(data);
    }
    return tl_ssl_process_outgoing(p);
}

int
tl_ssl_process_outgoing(tl_sslproto *p)
{
    if (!p->ssl_writing_paused) {
        PyObject *data = PyObject_CallNoArgs(p->out_read);
        if (data == NULL) {
            return -1;
        }
        if (PyBytes_GET_SIZE(data) > 0) {
            PyObject *r = tl_ssl_call(p->transport, p->ss->s_write, &data, 1);
            if (r == NULL) {
                Py_DECREF(data);
                return -1;
            }
            Py_DECREF(r);
        }
        Py_DECREF(data);
    }
    return tl_ssl_control_app_writing(p);
}

/* ---- incoming ------------------------------------------------------- */

/* ---- the window: a reusable buffer object --------------------------
 *
 * MemoryBIO.write() and the _ssl object's read() take any buffer and keep
 * no reference to it.  Rather than a memoryview per call (two GC objects
 * each, which also drive the collector), they get this small object,
 * pointed at the memory of the moment.  It is reused only while nobody
 * else holds it (refcount 1); a callee we do not know (an SSLObject
 * subclass) gets a memoryview. */

typedef struct {
    PyObject_HEAD
    char *buf;
    Py_ssize_t len;
    int readonly;
} tl_sslwin;

static int
win_getbuffer(tl_sslwin *w, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)w, w->buf, w->len,
                             w->readonly, flags);
}

static void
win_dealloc(tl_sslwin *w)
{
    PyTypeObject *tp = Py_TYPE(w);
    tp->tp_free(w);
    Py_DECREF(tp);
}

PyObject *
tl_ssl_window(tl_sslproto *p, char *buf, Py_ssize_t len, int writable,
              int trusted)
{
    if (!trusted) {
        return PyMemoryView_FromMemory(buf, len,
                                       writable ? PyBUF_WRITE : PyBUF_READ);
    }
    tl_sslwin *w = (tl_sslwin *)p->win;
    if (w == NULL || Py_REFCNT(w) != 1) {
        PyTypeObject *tp = p->ss->WindowType;
        w = PyObject_New(tl_sslwin, tp);
        if (w == NULL) {
            return NULL;
        }
        Py_INCREF(tp);  /* instances of heap types hold their type */
        Py_XSETREF(p->win, (PyObject *)w);
    }
    w->buf = buf;
    w->len = len;
    w->readonly = !writable;
    return Py_NewRef((PyObject *)w);
}

int
tl_sslwin_init_type(PyObject *module, tl_ssl_state *ss)
{
    PyType_Slot slots[] = {
        {Py_tp_dealloc, win_dealloc},
        {Py_bf_getbuffer, win_getbuffer},
        {0, NULL}};
    PyType_Spec spec = {
        .name = "tideloop._core._SSLWindow",
        .basicsize = sizeof(tl_sslwin),
        .flags = Py_TPFLAGS_DEFAULT,
        .slots = slots,
    };
    ss->WindowType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec,
                                                              NULL);
    return ss->WindowType == NULL ? -1 : 0;
}

/* ---- incoming ------------------------------------------------------- */

/* What a read could return at most: the bytes in the incoming BIO (still
 * encrypted, so more than their plaintext) plus those the SSL object has
 * decrypted already.  0 means asyncio's read() would raise
 * SSLWantReadError (read-ahead is off: no record hides in OpenSSL); -1 on
 * error.
 *
 * SSLObject.pending() releases the GIL, so it is asked only when the SSL
 * object may hold plaintext (ssl_more): SSL_read() returns the rest of
 * the current record up to the length asked, so a read that got less than
 * it asked for (or none) left nothing behind. */
static Py_ssize_t
read_avail(tl_sslproto *p)
{
    Py_ssize_t n = tl_ssl_bio_pending(p, p->incoming);
    if (n < 0) {
        return -1;
    }
    if (!p->ssl_more) {
        return n;
    }
    PyObject *r = PyObject_CallNoArgs(p->ssl_pending);
    if (r == NULL) {
        return -1;
    }
    Py_ssize_t d = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (d == -1 && PyErr_Occurred()) {
        return -1;
    }
    return n + d;
}

/* sslobj.read(n, buffer): bytes read, 0 at close_notify, -2 for
 * SSLWantReadError/SSLSyscallError (cleared), -1 on error. */
static Py_ssize_t
ssl_read_into(tl_sslproto *p, PyObject *buffer, Py_ssize_t n)
{
    PyObject *len = PyLong_FromSsize_t(n);
    if (len == NULL) {
        return -1;
    }
    PyObject *args[2] = {len, buffer};
    PyObject *r = PyObject_Vectorcall(p->ssl_read, args, 2, NULL);
    Py_DECREF(len);
    if (r == NULL) {
        if (PyErr_ExceptionMatches(p->ss->again_errors)) {
            PyErr_Clear();
            p->ssl_more = 0;
            return -2;
        }
        p->ssl_more = 1;
        return -1;
    }
    Py_ssize_t count = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    p->ssl_more = count >= n;
    return count;
}

/* Read into mem[0:n] through a window: as ssl_read_into. */
static Py_ssize_t
ssl_read_mem(tl_sslproto *p, char *mem, Py_ssize_t n)
{
    PyObject *w = tl_ssl_window(p, mem, n, 1, p->ssl_inner);
    if (w == NULL) {
        return -1;
    }
    Py_ssize_t count = ssl_read_into(p, w, n);
    Py_DECREF(w);
    return count;
}

/* asyncio's _do_read__copied(): everything readable now, in one
 * data_received() call.  The records are decrypted straight into the
 * bytes object handed to the app, sized by read_avail() (an upper bound)
 * and shrunk at the end: no copy of the plaintext. */
static int
do_read_copied(tl_sslproto *p)
{
    PyObject *data = NULL;
    Py_ssize_t total = 0, cap = 0;
    int close_notify = 0;

    for (;;) {
        Py_ssize_t avail = read_avail(p);
        if (avail <= 0) {
            if (avail < 0) {
                goto error;
            }
            break;
        }
        if (cap - total < avail) {
            /* First read, or more arrived since: room for the bound.  No
             * slack: a small message then gets a small block, which
             * malloc serves and shrinks in place (a 16 KiB floor cost a
             * split block and a realloc per message). */
            Py_ssize_t want = total + avail;
            if (data == NULL) {
                data = PyBytes_FromStringAndSize(NULL, want);
                if (data == NULL) {
                    goto error;
                }
            }
            else if (_PyBytes_Resize(&data, want) < 0) {
                goto error;
            }
            cap = want;
        }
        Py_ssize_t n = ssl_read_mem(p, PyBytes_AS_STRING(data) + total,
                                    cap - total);
        if (n == -2) {
            break;
        }
        if (n < 0) {
            goto error;
        }
        if (n == 0) {
            close_notify = 1;
            break;
        }
        total += n;
    }
    if (total == 0) {
        Py_CLEAR(data);
    }
    else if (total < cap && _PyBytes_Resize(&data, total) < 0) {
        goto error;
    }
    if (data != NULL) {
        PyObject *r = tl_ssl_app_call(p, p->ss->s_data_received, &data, 1);
        Py_CLEAR(data);
        if (r == NULL) {
            goto error;
        }
        Py_DECREF(r);
    }
    if (close_notify && (tl_ssl_call_eof_received(p) < 0 ||
                         tl_ssl_start_shutdown(p) < 0)) {
        goto error;
    }
    return 0;
error:
    Py_XDECREF(data);
    return -1;
}

static int
do_read_buffered(tl_sslproto *p)
{
    tl_ssl_state *ss = p->ss;
    Py_ssize_t offset = 0, count = 1;
    Py_buffer view;
    int have_view = 0, rc = -1;

    Py_ssize_t pending = tl_ssl_bio_pending(p, p->incoming);
    if (pending < 0) {
        return -1;
    }
    PyObject *hint = PyLong_FromSsize_t(pending);
    if (hint == NULL) {
        return -1;
    }
    PyObject *appbuf = app_call_bound(p, p->app_get_buffer, hint);
    Py_DECREF(hint);
    if (appbuf == NULL) {
        return -1;
    }
    Py_ssize_t wants = PyObject_Size(appbuf);
    if (wants < 0) {
        goto done;
    }
    Py_ssize_t ready = read_avail(p);
    if (ready < 0) {
        goto done;
    }
    if (ready) {
        count = ssl_read_into(p, appbuf, wants);
        if (count == -2) {
            count = 1;
            ready = 0;
        }
        else if (count < 0) {
            goto done;
        }
    }
    if (ready && count > 0) {
        offset = count;
        for (;;) {
            if (offset >= wants) {
                /* The app's buffer is full: read the rest later. */
                PyObject *h = tl_ssl_schedule(p, NULL, ss->s__do_read);
                if (h == NULL) {
                    goto done;
                }
                Py_DECREF(h);
                break;
            }
            ready = read_avail(p);
            if (ready <= 0) {
                if (ready < 0) {
                    goto done;
                }
                break;
            }
            /* Further reads land in the app's memory at the offset:
             * asyncio slices the object (buf[offset:]), which for a
             * bytearray is a copy, and what is read into it is lost.
             * The first read proved the buffer writable. */
            if (!have_view) {
                if (PyObject_GetBuffer(appbuf, &view, PyBUF_WRITABLE) < 0) {
                    goto done;
                }
                have_view = 1;
            }
            if (offset >= view.len) {
                break;
            }
            count = ssl_read_mem(p, (char *)view.buf + offset,
                                 Py_MIN(wants, view.len) - offset);
            if (count == -2) {
                count = 1;
                break;
            }
            if (count <= 0) {
                if (count < 0) {
                    goto done;
                }
                break;
            }
            offset += count;
        }
    }
    if (have_view) {
        PyBuffer_Release(&view);
        have_view = 0;
    }
    Py_CLEAR(appbuf);
    if (offset > 0) {
        PyObject *n = PyLong_FromSsize_t(offset);
        if (n == NULL) {
            return -1;
        }
        PyObject *r = app_call_bound(p, p->app_buffer_updated, n);
        Py_DECREF(n);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    if (count == 0) {
        /* close_notify */
        if (tl_ssl_call_eof_received(p) < 0 ||
            tl_ssl_start_shutdown(p) < 0) {
            return -1;
        }
    }
    return 0;
done:
    if (have_view) {
        PyBuffer_Release(&view);
    }
    Py_XDECREF(appbuf);
    return rc;
}

int
tl_ssl_do_read(tl_sslproto *p)
{
    if (p->state != TL_SSL_WRAPPED && p->state != TL_SSL_FLUSHING) {
        return 0;
    }
    int rc = 0;
    if (!p->app_reading_paused) {
        if (p->app_is_buffer && p->app_get_buffer != NULL) {
            rc = do_read_buffered(p);
        }
        else {
            rc = do_read_copied(p);
        }
        if (rc == 0) {
            rc = p->wb_len > 0 ? tl_ssl_do_write(p)
                               : tl_ssl_process_outgoing(p);
        }
    }
    else {
        /* Paused: asyncio sends nothing here either, which stalls the
         * peer when the last flight of the handshake (a TLS 1.3 client's
         * Finished) is waiting in the outgoing BIO.  Send what is there;
         * normally nothing (app writes flush themselves). */
        Py_ssize_t out = tl_ssl_bio_pending(p, p->outgoing);
        rc = out < 0 ? -1 : (out > 0 ? tl_ssl_process_outgoing(p) : 0);
    }
    if (rc == 0) {
        rc = tl_ssl_control_ssl_reading(p);
    }
    if (rc == 0) {
        return 0;
    }
    PyObject *exc = tl_ssl_catch();
    if (exc == NULL) {
        return -1;
    }
    rc = tl_ssl_fatal_error(p, exc, "Fatal error on SSL protocol");
    Py_DECREF(exc);
    return rc;
}

int
tl_ssl_call_eof_received(tl_sslproto *p)
{
    if (p->app_state != TL_APP_CON_MADE) {
        return 0;
    }
    p->app_state = TL_APP_EOF;
    PyObject *r = tl_ssl_app_call(p, p->ss->s_eof_received, NULL, 0);
    if (r != NULL) {
        int keep_open = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (keep_open == 0 ||
            (keep_open > 0 &&
             tl_ssl_log(p->ss, TL_LOG_WARNING,
                        "returning true from eof_received() has no "
                        "effect when using ssl", NULL, NULL) == 0)) {
            return 0;
        }
    }
    /* except (KeyboardInterrupt, SystemExit): raise
     * except BaseException as ex: self._fatal_error(ex, ...) */
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt) ||
        PyErr_ExceptionMatches(PyExc_SystemExit)) {
        return -1;
    }
    PyObject *exc = tl_fetch_exception();
    int rc = tl_ssl_fatal_error(p, exc, "Error calling eof_received()");
    Py_DECREF(exc);
    return rc;
}

/* ---- flow control --------------------------------------------------- */

Py_ssize_t
tl_ssl_bio_pending(tl_sslproto *p, PyObject *bio)
{
    tl_ssl_state *ss = p->ss;
    PyObject *r = ss->bio_pending_get
                      ? ss->bio_pending_get(bio, ss->bio_pending_closure)
                      : PyObject_GetAttr(bio, ss->s_pending);
    if (r == NULL) {
        return -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    return n;
}

Py_ssize_t
tl_ssl_write_buffer_size(tl_sslproto *p)
{
    Py_ssize_t n = tl_ssl_bio_pending(p, p->outgoing);
    return n < 0 ? -1 : n + p->wb_size;
}

/* protocol.pause_writing()/resume_writing() failing goes to the loop's
 * exception handler, as in asyncio. */
static int
call_flow(tl_sslproto *p, PyObject *name, const char *message)
{
    PyObject *r = tl_ssl_app_call(p, name, NULL, 0);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt) ||
        PyErr_ExceptionMatches(PyExc_SystemExit)) {
        return -1;
    }
    PyObject *exc = tl_fetch_exception();
    PyObject *msg = PyUnicode_FromString(message);
    if (msg == NULL) {
        Py_DECREF(exc);
        return -1;
    }
    PyObject *args[3] = {(PyObject *)p, msg, exc};
    r = PyObject_Vectorcall(p->ss->h_flow_failed, args, 3, NULL);
    Py_DECREF(msg);
    Py_DECREF(exc);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

int
tl_ssl_control_app_writing(tl_sslproto *p)
{
    Py_ssize_t size = tl_ssl_write_buffer_size(p);
    if (size < 0) {
        return -1;
    }
    if ((double)size >= p->out_high && !p->app_writing_paused) {
        p->app_writing_paused = 1;
        return call_flow(p, p->ss->s_pause_writing,
                         "protocol.pause_writing() failed");
    }
    if ((double)size <= p->out_low && p->app_writing_paused) {
        p->app_writing_paused = 0;
        return call_flow(p, p->ss->s_resume_writing,
                         "protocol.resume_writing() failed");
    }
    return 0;
}

int
tl_ssl_control_ssl_reading(tl_sslproto *p)
{
    Py_ssize_t size = tl_ssl_bio_pending(p, p->incoming);
    if (size < 0) {
        return -1;
    }
    PyObject *name = NULL;
    if ((double)size >= p->in_high && !p->ssl_reading_paused) {
        p->ssl_reading_paused = 1;
        name = p->ss->s_pause_reading;
    }
    else if ((double)size <= p->in_low && p->ssl_reading_paused) {
        p->ssl_reading_paused = 0;
        name = p->ss->s_resume_reading;
    }
    if (name != NULL) {
        PyObject *r = tl_ssl_call(p->transport, name, NULL, 0);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    return 0;
}

int
tl_ssl_set_limits(tl_sslproto *p, PyObject *high, PyObject *low,
                  int writing)
{
    tl_ssl_state *ss = p->ss;
    PyObject *args[3] = {high, low, writing ? ss->kb_write : ss->kb_read};
    PyObject *r = PyObject_Vectorcall(ss->flowcontrol_defaults, args, 3,
                                      NULL);
    if (r == NULL) {
        return -1;
    }
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError,
                        "add_flowcontrol_defaults() must return (hi, lo)");
        return -1;
    }
    PyObject *hi = PyTuple_GET_ITEM(r, 0), *lo = PyTuple_GET_ITEM(r, 1);
    double dhi = PyFloat_AsDouble(hi), dlo = PyFloat_AsDouble(lo);
    if ((dhi == -1.0 || dlo == -1.0) && PyErr_Occurred()) {
        Py_DECREF(r);
        return -1;
    }
    if (writing) {
        Py_XSETREF(p->out_high_obj, Py_NewRef(hi));
        Py_XSETREF(p->out_low_obj, Py_NewRef(lo));
        p->out_high = dhi;
        p->out_low = dlo;
    }
    else {
        Py_XSETREF(p->in_high_obj, Py_NewRef(hi));
        Py_XSETREF(p->in_low_obj, Py_NewRef(lo));
        p->in_high = dhi;
        p->in_low = dlo;
    }
    Py_DECREF(r);
    return 0;
}

int
tl_ssl_resume_reading(tl_sslproto *p)
{
    if (!p->app_reading_paused) {
        return 0;
    }
    p->app_reading_paused = 0;
    PyObject *h = tl_ssl_schedule(p, NULL, p->ss->s__resume_reading_cb);
    if (h == NULL) {
        return -1;
    }
    Py_DECREF(h);
    return 0;
}
