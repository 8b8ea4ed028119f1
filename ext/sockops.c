/* The sock_* methods' fd watches.
 *
 * asyncio's sock_recv(), sock_sendall(), sock_accept() & co. wait for
 * readiness with _add_reader(fd, self._sock_recv, fut, sock, ...): a
 * callback bound to the loop itself, whose first two arguments are the
 * pending future and the socket.  If the socket is closed meanwhile, the
 * kernel drops the fd from the poll set without an event and stock
 * asyncio's future never completes.  tideloop's _add_reader() and
 * _add_writer() are poll.c's, plus: a callback bound to the loop is
 * reported to the loop's _sock_watch(handle, writer), which keeps the
 * operation in the set that _loop.py sweeps for closed sockets (issue
 * 15.3a).  A user's callback (not bound to the loop) costs one type
 * check. */
#include "sockops.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* Steals `h`; returns it, or NULL if _sock_watch() raised. */
static PyObject *
sockops_report(LoopObject *self, PyObject *h, PyObject *callback,
               int writer)
{
    if (!PyMethod_Check(callback) ||
        PyMethod_GET_SELF(callback) != (PyObject *)self) {
        return h;
    }
    PyObject *r = PyObject_CallMethod((PyObject *)self, "_sock_watch", "Oi",
                                      h, writer);
    if (r == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    Py_DECREF(r);
    return h;
}

PyObject *
tl_sockops_add_reader(LoopObject *self, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *h = tl_poll_add_reader(self, args, nargs, kwnames);
    if (h == NULL) {
        return NULL;
    }
    return sockops_report(self, h, args[1], 0);
}

PyObject *
tl_sockops_add_writer(LoopObject *self, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *h = tl_poll_add_writer(self, args, nargs, kwnames);
    if (h == NULL) {
        return NULL;
    }
    return sockops_report(self, h, args[1], 1);
}

/* -- sock_recv(), sock_recv_into(), sock_sendall() & co. (issue 14.2) ----
 *
 * _sock_start(op, sock, a[, b]) does what asyncio's coroutine does before
 * it awaits: asyncio's checks (an SSL socket, a blocking one in debug
 * mode), then the call on the socket (sock.recv(n), sock.recv_into(buf),
 * sock.send(data), ...), whose result it returns when it does not block.
 * On an exact socket.socket in non-blocking mode, recv(), recv_into()
 * and send() are done here (recv(2), send(2), as the methods would do
 * them): no method call, and no BlockingIOError built and dropped when
 * the call would block.
 *
 * When it would block, it creates the future, watches the fd with a C
 * callback bound to the operation's record, enters the record in the
 * loop's _sock_waiters (swept for closed sockets, see _loop.py) and
 * returns it:
 *
 *     [fut, sock, fd, (st_dev, st_ino) | None, handle, writer, name,
 *      op, a, b, pos, loop]
 *
 * The coroutine awaits rec[0] and calls _sock_end(rec) in a `finally`
 * (asyncio's _sock_read_done()/_sock_write_done()): also when it was
 * cancelled, the watch is removed.  The callback runs asyncio's
 * _sock_recv() & co.: a done (cancelled) future is left alone, so a
 * cancelled sock_recv() never eats data. */

enum {
    SOP_RECV, SOP_RECV_INTO, SOP_SENDALL, SOP_RECVFROM, SOP_RECVFROM_INTO,
    SOP_SENDTO, SOP_COUNT
};

/* Per operation: the socket method it calls, the loop method's name
 * (tl_state.sop_names, in this order) and whether it waits for the fd
 * to be writable. */
static const char *const sop_method[SOP_COUNT] = {
    "recv", "recv_into", "send", "recvfrom", "recvfrom_into", "sendto"};
static const char *const sop_public[SOP_COUNT] = {
    "sock_recv", "sock_recv_into", "sock_sendall", "sock_recvfrom",
    "sock_recvfrom_into", "sock_sendto"};
static const char sop_writer[SOP_COUNT] = {0, 0, 1, 0, 0, 1};

/* The record's fields (see above); the first R_SWEPT are what the sweep
 * reads, also in the records of _loop.py's _sock_watch(). */
enum {
    R_FUT, R_SOCK, R_FD, R_IDENT, R_HANDLE, R_WRITER, R_NAME, R_SWEPT,
    R_OP = R_SWEPT, R_A, R_B, R_POS, R_LOOP, R_LEN
};

/* What one try of an operation did (TRY_METHOD: nothing, the socket's
 * method must do it). */
enum { TRY_ERROR = -1, TRY_BLOCKED = 0, TRY_DONE = 1, TRY_METHOD = 2 };

int
tl_sockops_init(tl_state *st)
{
    PyObject *mod = PyImport_ImportModule("socket");
    if (mod == NULL) {
        return -1;
    }
    st->socket_type = PyObject_GetAttrString(mod, "socket");
    Py_DECREF(mod);
    if (st->socket_type == NULL) {
        return -1;
    }
    for (int i = 0; i < SOP_COUNT; i++) {
        st->sop_names[i] = PyUnicode_InternFromString(sop_method[i]);
        st->sop_names[SOP_COUNT + i] =
            PyUnicode_InternFromString(sop_public[i]);
        if (st->sop_names[i] == NULL || st->sop_names[SOP_COUNT + i] == NULL) {
            return -1;
        }
    }
    return 0;
}

/* Whether the pending exception is asyncio's "try again next time". */
static int
sockops_would_block(void)
{
    return PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
           PyErr_ExceptionMatches(PyExc_InterruptedError);
}

/* The fd on which recv(2)/send(2) may stand for the socket's methods: an
 * exact socket.socket (no method overridden) with timeout 0.  Returns the
 * fd, -1 when the methods must be called, -2 with an exception set. */
static int
sockops_direct_fd(tl_state *st, PyObject *sock)
{
    if (Py_TYPE(sock) != (PyTypeObject *)st->socket_type) {
        return -1;
    }
    PyObject *args[1] = {sock};
    PyObject *t = tl_call_method(st->str_gettimeout, args, 1);
    if (t == NULL) {
        return -2;
    }
    int nonblocking = PyFloat_CheckExact(t) && PyFloat_AS_DOUBLE(t) == 0.0;
    Py_DECREF(t);
    if (!nonblocking) {
        return -1;
    }
    PyObject *f = tl_call_method(st->str_fileno, args, 1);
    if (f == NULL) {
        return -2;
    }
    long fd = PyLong_AsLong(f);
    Py_DECREF(f);
    if (fd == -1 && PyErr_Occurred()) {
        return -2;
    }
    return fd >= 0 && fd <= INT_MAX ? (int)fd : -1;
}

/* The bytes sock.send(data) would send when len(data) counts them and
 * data[pos:] slices them: a bytes or bytearray object, or the memoryview
 * the retries use (made by sockops_first_try(), never released) when it
 * is flat and of single bytes.  1 with *p and *len set, or 0. */
static int
sockops_flat_bytes(PyObject *data, const char **p, Py_ssize_t *len)
{
    if (PyBytes_CheckExact(data)) {
        *p = PyBytes_AS_STRING(data);
        *len = PyBytes_GET_SIZE(data);
        return 1;
    }
    if (PyByteArray_CheckExact(data)) {
        *p = PyByteArray_AS_STRING(data);
        *len = PyByteArray_GET_SIZE(data);
        return 1;
    }
    if (PyMemoryView_Check(data)) {
        Py_buffer *v = PyMemoryView_GET_BUFFER(data);
        if (v->ndim == 1 && v->itemsize == 1 &&
            (v->strides == NULL || v->strides[0] == 1)) {
            *p = v->buf;
            *len = v->len;
            return 1;
        }
    }
    return 0;
}

/* recv(2) into p[:len], or send(2) of it, on a non-blocking socket, as
 * the socket module does them (retried after EINTR): *done bytes. */
static int
sockops_sys_io(int fd, char *p, Py_ssize_t len, int sending,
               Py_ssize_t *done)
{
    for (;;) {
        ssize_t n = sending ? send(fd, p, (size_t)len, 0)
                            : recv(fd, p, (size_t)len, 0);
        if (n >= 0) {
            *done = n;
            return TRY_DONE;
        }
        if (errno != EINTR) {
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            return TRY_ERROR;
        }
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) {
        return TRY_BLOCKED;
    }
    tl_err_from_errno(err);
    return TRY_ERROR;
}

/* socket.recv(n): recv(2) into a new bytes object. */
static int
sockops_sys_recv(int fd, Py_ssize_t n, PyObject **res)
{
    PyObject *b = PyBytes_FromStringAndSize(NULL, n);
    if (b == NULL) {
        return TRY_ERROR;
    }
    Py_ssize_t got;
    int rc = sockops_sys_io(fd, PyBytes_AS_STRING(b), n, 0, &got);
    if (rc != TRY_DONE) {
        Py_DECREF(b);
        return rc;
    }
    if (got != n && _PyBytes_Resize(&b, got) < 0) {
        return TRY_ERROR;
    }
    *res = b;
    return TRY_DONE;
}

/* socket.recv_into(buf): recv(2) into the whole of buf, when it exports
 * a writable C-contiguous buffer, the one the method's "w*" takes.  For
 * anything else TRY_METHOD: the method is called, for its error. */
static int
sockops_sys_recv_into(int fd, PyObject *buf, PyObject **res)
{
    Py_buffer view;
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        return TRY_METHOD;
    }
    if (!PyBuffer_IsContiguous(&view, 'C')) {
        PyBuffer_Release(&view);
        return TRY_METHOD;
    }
    /* (An empty buffer: the method's 0 without a recv(2).) */
    Py_ssize_t got = 0;
    int rc = view.len == 0 ? TRY_DONE
                           : sockops_sys_io(fd, view.buf, view.len, 0, &got);
    PyBuffer_Release(&view);
    if (rc == TRY_DONE && (*res = PyLong_FromSsize_t(got)) == NULL) {
        return TRY_ERROR;
    }
    return rc;
}

/* sock.<method>(*args) with the interned name: a result, or TRY_BLOCKED
 * for asyncio's BlockingIOError/InterruptedError. */
static int
sockops_call(PyObject *name, PyObject **args, size_t nargs, PyObject **res)
{
    *res = tl_call_method(name, args, nargs);
    if (*res != NULL) {
        return TRY_DONE;
    }
    if (!sockops_would_block()) {
        return TRY_ERROR;
    }
    PyErr_Clear();
    return TRY_BLOCKED;
}

/* One sock.send() of data[pos:] for sendall (data: the first try's
 * object, later our memoryview, `retry`): *sent, and *len = len(data).
 * A memoryview the caller gave may have been released: it goes to
 * sock.send(). */
static int
sockops_try_send(tl_state *st, int fd, PyObject *sock, PyObject *data,
                 int retry, Py_ssize_t pos, Py_ssize_t *sent,
                 Py_ssize_t *len)
{
    const char *p;
    if (fd >= 0 && (retry || !PyMemoryView_Check(data)) &&
        sockops_flat_bytes(data, &p, len)) {
        return sockops_sys_io(fd, (char *)p + pos, *len - pos, 1, sent);
    }
    PyObject *rest = pos ? PySequence_GetSlice(data, pos, PY_SSIZE_T_MAX)
                         : Py_NewRef(data);
    if (rest == NULL) {
        return TRY_ERROR;
    }
    PyObject *args[2] = {sock, rest}, *r;
    int rc = sockops_call(st->sop_names[SOP_SENDALL], args, 2, &r);
    Py_DECREF(rest);
    *sent = 0;
    if (rc == TRY_DONE) {
        *sent = PyLong_AsSsize_t(r);
        Py_DECREF(r);
        if (*sent == -1 && PyErr_Occurred()) {
            return TRY_ERROR;
        }
    }
    if (rc != TRY_ERROR && (*len = PyObject_Size(data)) < 0) {
        return TRY_ERROR;
    }
    return rc;
}

/* One try of a receiving operation, or of sendto: sock.<method>(a[, b])
 * (sendto's retries: sock.sendto(a, 0, b), as asyncio's _sock_sendto). */
static int
sockops_try_other(tl_state *st, int op, int fd, PyObject *sock, PyObject *a,
                  PyObject *b, int retry, PyObject **res)
{
    if (op == SOP_RECV && fd >= 0 && PyLong_CheckExact(a)) {
        /* (n <= 0: the method's error, or its b"" without a recv(2).) */
        Py_ssize_t n = PyLong_AsSsize_t(a);
        if (n > 0) {
            return sockops_sys_recv(fd, n, res);
        }
        PyErr_Clear();
    }
    if (op == SOP_RECV_INTO && fd >= 0) {
        int rc = sockops_sys_recv_into(fd, a, res);
        if (rc != TRY_METHOD) {
            return rc;
        }
    }
    PyObject *zero = NULL;
    PyObject *args[4] = {sock, a, b, NULL};
    size_t nargs = b == NULL ? 2 : 3;
    if (op == SOP_SENDTO && retry) {
        zero = PyLong_FromLong(0);
        if (zero == NULL) {
            return TRY_ERROR;
        }
        args[2] = zero;
        args[3] = b;
        nargs = 4;
    }
    int rc = sockops_call(st->sop_names[op], args, nargs, res);
    Py_XDECREF(zero);
    return rc;
}

/* fut.<name>(value): 0, or -1 with an exception set. */
static int
sockops_settle(PyObject *name, PyObject *fut, PyObject *value)
{
    PyObject *args[2] = {fut, value};
    PyObject *r = tl_call_method(name, args, 2);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* The operation's next try when its fd is ready: TRY_DONE with *res
 * (sendall: None once all was sent), TRY_BLOCKED or TRY_ERROR. */
static int
sockops_retry(tl_state *st, PyObject *rec, int op, PyObject **res)
{
    PyObject *sock = PyList_GET_ITEM(rec, R_SOCK);
    int fd = sockops_direct_fd(st, sock);
    if (fd == -2) {
        return TRY_ERROR;
    }
    if (op != SOP_SENDALL) {
        PyObject *b = PyList_GET_ITEM(rec, R_B);
        return sockops_try_other(st, op, fd, sock, PyList_GET_ITEM(rec, R_A),
                                 b == Py_None ? NULL : b, 1, res);
    }
    Py_ssize_t pos = PyLong_AsSsize_t(PyList_GET_ITEM(rec, R_POS));
    if (pos == -1 && PyErr_Occurred()) {
        return TRY_ERROR;
    }
    Py_ssize_t sent, len;
    int rc = sockops_try_send(st, fd, sock, PyList_GET_ITEM(rec, R_A), 1,
                              pos, &sent, &len);
    if (rc != TRY_DONE) {
        return rc;
    }
    pos += sent;
    if (pos == len) {
        *res = Py_NewRef(Py_None);
        return TRY_DONE;
    }
    PyObject *p = PyLong_FromSsize_t(pos);
    if (p == NULL) {
        return TRY_ERROR;
    }
    PyList_SetItem(rec, R_POS, p);   /* steals p */
    return TRY_BLOCKED;
}

/* The fd is ready (a Handle runs this with no arguments): asyncio's
 * _sock_recv(), _sock_recv_into(), _sock_sendall() & co. */
static PyObject *
sockops_on_ready(PyObject *rec, PyObject *Py_UNUSED(ignored))
{
    if (PyList_GET_SIZE(rec) != R_LEN) {
        PyErr_SetString(PyExc_TypeError, "expected a sock_* record");
        return NULL;
    }
    tl_state *st = ((LoopObject *)PyList_GET_ITEM(rec, R_LOOP))->st;
    PyObject *fut = PyList_GET_ITEM(rec, R_FUT);
    PyObject *args[1] = {fut};
    PyObject *done = tl_call_method(st->str_done, args, 1);
    if (done == NULL) {
        return NULL;
    }
    int is_done = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (is_done != 0) {
        /* A cancelled operation: its data stays in the socket. */
        return is_done < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *result = NULL;
    int rc = sockops_retry(st, rec, (int)PyLong_AsLong(
                                        PyList_GET_ITEM(rec, R_OP)),
                           &result);
    if (rc == TRY_BLOCKED) {
        Py_RETURN_NONE;          /* try again next time */
    }
    if (rc == TRY_ERROR) {
        if (tl_err_stops_loop()) {
            return NULL;
        }
        PyObject *exc = tl_fetch_exception();
        rc = sockops_settle(st->str_set_exception, fut, exc);
        Py_DECREF(exc);
        return rc < 0 ? NULL : Py_NewRef(Py_None);
    }
    rc = sockops_settle(st->str_set_result, fut, result);
    Py_DECREF(result);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyMethodDef sockops_on_ready_def = {
    "_sock_ready", (PyCFunction)sockops_on_ready, METH_NOARGS, NULL};

/* (st_dev, st_ino) of `fd`, or None if fstat() fails. */
static PyObject *
sockops_identity(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        Py_RETURN_NONE;
    }
    PyObject *dev = PyLong_FromUnsignedLongLong(st.st_dev);
    PyObject *ino = dev ? PyLong_FromUnsignedLongLong(st.st_ino) : NULL;
    if (ino == NULL) {
        Py_XDECREF(dev);
        return NULL;
    }
    PyObject *t = PyTuple_New(2);
    if (t == NULL) {
        Py_DECREF(dev);
        Py_DECREF(ino);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, dev);
    PyTuple_SET_ITEM(t, 1, ino);
    return t;
}

/* loop.<name>(arg): 0, or -1 with an exception set. */
static int
sockops_call_loop(LoopObject *self, PyObject *name, PyObject *arg)
{
    PyObject *args[2] = {(PyObject *)self, arg};
    PyObject *r = tl_call_method(name, args, arg == NULL ? 1 : 2);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* asyncio's _ensure_fd_no_transport(fd), called only when the loop has
 * transports (self._transports.data, the WeakValueDictionary's dict, is
 * not empty): it does nothing otherwise. */
static int
sockops_check_transport(LoopObject *self, PyObject *fdobj)
{
    tl_state *st = self->st;
    PyObject *tr = PyObject_GetAttr((PyObject *)self, st->str_transports);
    if (tr == NULL) {
        return -1;
    }
    PyObject *data = PyObject_GetAttr(tr, st->str_data);
    Py_DECREF(tr);
    if (data == NULL) {
        return -1;
    }
    int some = PyDict_Check(data) ? PyDict_GET_SIZE(data) > 0 : 1;
    Py_DECREF(data);
    if (!some) {
        return 0;
    }
    return sockops_call_loop(self, st->str_ensure_fd_no_transport, fdobj);
}

/* Enter `rec` in the loop's _sock_waiters and arm the sweep when it is
 * not armed: 0, or -1 with an exception set. */
static int
sockops_enter(LoopObject *self, PyObject *rec)
{
    tl_state *st = self->st;
    PyObject *waiters = PyObject_GetAttr((PyObject *)self,
                                         st->str_sock_waiters);
    if (waiters == NULL) {
        return -1;
    }
    int rc = PyObject_SetItem(waiters, PyList_GET_ITEM(rec, R_FUT), rec);
    Py_DECREF(waiters);
    if (rc < 0) {
        return -1;
    }
    PyObject *sweeper = PyObject_GetAttr((PyObject *)self,
                                         st->str_sock_sweeper);
    if (sweeper == NULL) {
        return -1;
    }
    Py_DECREF(sweeper);
    if (sweeper != Py_None) {
        return 0;
    }
    return sockops_call_loop(self, st->str_sock_arm_sweeper, NULL);
}

/* Stop watching the fd of `rec`'s operation, unless another watch
 * replaced its handle (which cancelled it): asyncio's _sock_read_done()
 * and _sock_write_done(), the registration maybe left lingering for the
 * socket's next wait (poll.c).  0, or -1 with an exception set. */
static int
sockops_unwatch(LoopObject *self, PyObject *rec)
{
    PyObject *h = PyList_GET_ITEM(rec, R_HANDLE);
    if (!Py_IS_TYPE(h, self->st->HandleType) ||
        ((HandleObject *)h)->cancelled) {
        return 0;
    }
    long op = PyLong_AsLong(PyList_GET_ITEM(rec, R_OP));
    long fd = PyLong_AsLong(PyList_GET_ITEM(rec, R_FD));
    if (op < 0 || op >= SOP_COUNT || fd < 0 || fd > INT_MAX) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "expected a sock_* record");
        return -1;
    }
    return tl_poll_end_wait(self, (int)fd, sop_writer[op]);
}

/* sockops_wait() failed after watching the fd: unwatch it, keeping the
 * pending exception (the context of one raised meanwhile). */
static void
sockops_abandon(LoopObject *self, PyObject *rec)
{
    PyObject *exc = tl_fetch_exception();
    if (sockops_unwatch(self, rec) < 0) {
        tl_err_chain(exc);
    }
    else {
        tl_restore_exception(exc);
    }
}

/* The record of a pending operation, its fd watched and entered in
 * _sock_waiters; new reference, or NULL.  `a` is the argument the
 * retries use (sendall: a memoryview of the data).  `direct`: the fd of
 * the first try's recv(2)/send(2), which sock.fileno() would return
 * again, or -1. */
static PyObject *
sockops_wait(LoopObject *self, int op, PyObject *sock, int direct,
             PyObject *a, PyObject *b, Py_ssize_t pos)
{
    tl_state *st = self->st;
    PyObject *rec = NULL, *cb = NULL, *h = NULL, *ident = NULL;
    PyObject *args[1] = {sock};
    PyObject *fdobj = direct >= 0 ? PyLong_FromLong(direct)
                                  : tl_call_method(st->str_fileno, args, 1);
    if (fdobj == NULL || sockops_check_transport(self, fdobj) < 0) {
        goto error;
    }
    int fd = (int)PyLong_AsLong(fdobj);
    if (fd == -1 && PyErr_Occurred()) {
        goto error;
    }
    PyObject *fut = tl_loop_create_future(self);
    if (fut == NULL) {
        goto error;
    }
    rec = PyList_New(R_LEN);
    if (rec == NULL) {
        Py_DECREF(fut);
        goto error;
    }
    PyList_SET_ITEM(rec, R_FUT, fut);
    PyList_SET_ITEM(rec, R_SOCK, Py_NewRef(sock));
    PyList_SET_ITEM(rec, R_FD, Py_NewRef(fdobj));
    PyList_SET_ITEM(rec, R_IDENT, Py_NewRef(Py_None));
    PyList_SET_ITEM(rec, R_HANDLE, Py_NewRef(Py_None));
    PyList_SET_ITEM(rec, R_WRITER, PyLong_FromLong(sop_writer[op]));
    PyList_SET_ITEM(rec, R_NAME, Py_NewRef(st->sop_names[SOP_COUNT + op]));
    PyList_SET_ITEM(rec, R_OP, PyLong_FromLong(op));
    PyList_SET_ITEM(rec, R_A, Py_NewRef(a));
    PyList_SET_ITEM(rec, R_B, Py_NewRef(b ? b : Py_None));
    PyList_SET_ITEM(rec, R_POS, PyLong_FromSsize_t(pos));
    PyList_SET_ITEM(rec, R_LOOP, Py_NewRef((PyObject *)self));
    if (PyList_GET_ITEM(rec, R_WRITER) == NULL ||
        PyList_GET_ITEM(rec, R_OP) == NULL ||
        PyList_GET_ITEM(rec, R_POS) == NULL) {
        goto error;
    }
    cb = PyCFunction_New(&sockops_on_ready_def, rec);
    if (cb == NULL) {
        goto error;
    }
    /* The identity of the fd when this socket last waited on it, if the
     * fd stayed watched since: no fstat(). */
    ident = Py_XNewRef(tl_poll_sock_ident(self, fd, sock));
    h = tl_poll_sock_wait(self, fdobj, cb, sop_writer[op], sock);
    if (h == NULL) {
        goto error;
    }
    PyList_SetItem(rec, R_HANDLE, h);   /* steals h */
    if (ident == NULL && (ident = sockops_identity(fd)) == NULL) {
        sockops_abandon(self, rec);
        goto error;
    }
    tl_poll_sock_remember(self, fd, sock, ident);
    PyList_SetItem(rec, R_IDENT, ident);   /* steals ident */
    ident = NULL;
    if (sockops_enter(self, rec) < 0) {
        sockops_abandon(self, rec);
        goto error;
    }
    Py_DECREF(fdobj);
    Py_DECREF(cb);
    return rec;
error:
    Py_XDECREF(fdobj);
    Py_XDECREF(cb);
    Py_XDECREF(ident);
    Py_XDECREF(rec);
    return NULL;
}

/* The first try; its result (new reference), NULL with an exception, or
 * the record of the pending operation (see above). */
static PyObject *
sockops_first_try(LoopObject *self, int op, PyObject *sock, PyObject *a,
                  PyObject *b)
{
    tl_state *st = self->st;
    int fd = sockops_direct_fd(st, sock);
    if (fd == -2) {
        return NULL;
    }
    PyObject *res = NULL;
    if (op != SOP_SENDALL) {
        int rc = sockops_try_other(st, op, fd, sock, a, b, 0, &res);
        if (rc != TRY_BLOCKED) {
            return res;
        }
        return sockops_wait(self, op, sock, fd, a, b, 0);
    }
    Py_ssize_t sent, len;
    int rc = sockops_try_send(st, fd, sock, a, 0, 0, &sent, &len);
    if (rc == TRY_ERROR) {
        return NULL;
    }
    if (rc == TRY_BLOCKED) {
        sent = 0;
    }
    else if (sent == len) {
        Py_RETURN_NONE;
    }
    /* asyncio's retries send from memoryview(data). */
    PyObject *view = PyMemoryView_FromObject(a);
    if (view == NULL) {
        return NULL;
    }
    PyObject *rec = sockops_wait(self, op, sock, fd, view, NULL, sent);
    Py_DECREF(view);
    return rec;
}

/* _sock_start(op, sock, a[, b]): see above.  New reference. */
PyObject *
tl_sockops_start(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int op = nargs == 3 || nargs == 4 ? (int)PyLong_AsLong(args[0]) : -1;
    if (op == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int two = op == SOP_RECVFROM_INTO || op == SOP_SENDTO;
    if (op < 0 || op >= SOP_COUNT || nargs != 3 + two) {
        PyErr_SetString(PyExc_TypeError, "expected (op, sock, a[, b])");
        return NULL;
    }
    PyObject *sock = args[1];
    /* asyncio's checks, which an exact socket.socket outside debug mode
     * passes: not an SSLSocket, non-blocking in debug mode. */
    if ((Py_TYPE(sock) != (PyTypeObject *)self->st->socket_type ||
         self->debug) &&
        sockops_call_loop(self, self->st->str_sock_check, sock) < 0) {
        return NULL;
    }
    return sockops_first_try(self, op, sock, args[2], two ? args[3] : NULL);
}

/* _sock_end(rec): the operation is over (done, failed or cancelled):
 * out of _sock_waiters, its watch removed. */
PyObject *
tl_sockops_end(LoopObject *self, PyObject *rec)
{
    if (!PyList_CheckExact(rec) || PyList_GET_SIZE(rec) != R_LEN) {
        PyErr_SetString(PyExc_TypeError, "expected a sock_* record");
        return NULL;
    }
    PyObject *waiters = PyObject_GetAttr((PyObject *)self,
                                         self->st->str_sock_waiters);
    if (waiters == NULL) {
        return NULL;
    }
    int rc = PyDict_Check(waiters)
                 ? PyDict_DelItem(waiters, PyList_GET_ITEM(rec, R_FUT))
                 : 0;
    Py_DECREF(waiters);
    if (rc < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
            return NULL;
        }
        PyErr_Clear();           /* the sweep failed it and took it out */
    }
    if (sockops_unwatch(self, rec) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}
