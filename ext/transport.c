/* SocketTransport: asyncio's selector socket transport (TCP and Unix
 * stream sockets), in C, on the stream core (stream.c).
 *
 * The type's real base is asyncio.transports._FlowControlMixin (so an
 * instance *is* an asyncio.Transport: get_extra_info(), the write buffer
 * limits and pause/resume_writing logic are asyncio's own).
 *
 * Reading and writing follow asyncio's _SelectorSocketTransport: the fd is
 * watched through the loop's fd watchers (poll.c), readiness queues our
 * reusable read/write handle on the ready queue, and the handle calls
 * _read_ready()/_write_ready() here, which recv()/send() on the fd the
 * socket object owns.  Protocol callbacks therefore run in the same order
 * relative to other callbacks as in asyncio.  What this file shares with
 * the datagram transport (udp.c) is declared in transport.h; an accepted
 * connection's transport is made in accept.c. */
#include "transport.h"
#include "sslproto.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

static PyObject *Transport_read_ready(PyObject *self, PyObject *unused);
static PyObject *Transport_write_ready(PyObject *self, PyObject *unused);

static tl_stream_kind tcp_kind =
    TL_TRANSPORT_KIND(Transport_read_ready, Transport_write_ready);

/* ---- GC of the socket fields (both types) ---------------------------- */

int
tl_transport_traverse(PyObject *self, visitproc visit, void *arg)
{
    tl_transport *t = TR(self);
    Py_VISIT(t->server);
    Py_VISIT(t->empty_waiter);
    Py_VISIT(t->address);
    Py_VISIT(t->registry);
    if (t->peer != NULL) {
        Py_VISIT(t->peer->addr);
    }
    return 0;
}

void
tl_transport_clear(PyObject *self)
{
    tl_transport *t = TR(self);
    Py_CLEAR(t->server);
    Py_CLEAR(t->empty_waiter);
    Py_CLEAR(t->address);
    Py_CLEAR(t->registry);
    if (t->peer != NULL) {
        tl_udp_peer *peer = t->peer;
        t->peer = NULL;
        Py_CLEAR(peer->addr);
        PyMem_Free(peer);
    }
}

/* ---- connection teardown ------------------------------------------- */

PyObject *
tl_transport_force_close(PyObject *self, PyObject *exc)
{
    tl_transport *t = TR(self);
    if (t->s.conn_lost) {
        Py_RETURN_NONE;
    }
    if (t->s.wb_len > 0) {
        tl_wb_clear(&t->s);
    }
    t->s.closing = 1;
    if (tl_stream_unwatch_closing(self) < 0) {
        return NULL;
    }
    t->s.conn_lost++;
    if (tl_stream_call_soon_lost(self, exc == Py_None ? NULL : exc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
tl_transport_abort(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return tl_transport_force_close(self, Py_None);
}

PyObject *
tl_transport_lost(PyObject *self, PyObject *exc)
{
    tl_transport *t = TR(self);
    tl_state *st = tr_state(self);
    PyObject *res = Py_None;
    Py_INCREF(res);
    if (t->protocol_connected && t->s.protocol != NULL) {
        Py_DECREF(res);
        res = tl_transport_call_protocol(t, st->str_connection_lost, exc);
    }
    PyObject *saved = res == NULL ? tl_fetch_exception() : NULL;
    /* finally: close the socket and drop everything. */
    if (t->s.file != NULL) {
        if (t->s.loop != NULL) {
            tl_poll_close_forget(t->s.loop, t->s.fd, self);
        }
        if (tl_socket_close(st, t->s.file) < 0) {
            PyErr_Clear();
        }
        Py_CLEAR(t->s.file);
    }
    Py_CLEAR(t->s.protocol);
    if (tl_slot_set(st, self, TL_SLOT_LOOP, st->str_loop_slot, Py_None) < 0) {
        PyErr_Clear();
    }
    PyObject *server = t->server;
    t->server = NULL;
    if (server != NULL) {
        if (tl_transport_server_call(server, st->str_detach, self) < 0) {
            PyErr_Clear();
        }
        Py_DECREF(server);
    }
    Py_CLEAR(t->s.read_handle);
    Py_CLEAR(t->s.write_handle);
    tl_stream_release_loop(&t->s);
    if (saved != NULL) {
        tl_restore_exception(saved);
    }
    if (t->empty_waiter != NULL && res != NULL) {
        PyObject *err = PyObject_CallFunction(
            PyExc_ConnectionError, "s", "Connection is closed by peer");
        if (err == NULL) {
            Py_DECREF(res);
            return NULL;
        }
        PyObject *r = PyObject_CallMethod(t->empty_waiter, "set_exception",
                                          "O", err);
        Py_DECREF(err);
        if (r == NULL) {
            Py_DECREF(res);
            return NULL;
        }
        Py_DECREF(r);
    }
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    Py_RETURN_NONE;
}

PyObject *
tl_transport_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (t->s.closing) {
        Py_RETURN_NONE;
    }
    t->s.closing = 1;
    if (t->s.wb_len > 0) {
        if (tl_stream_watch(self, 0, 0) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    t->s.conn_lost++;
    if (tl_stream_unwatch_closing(self) < 0 ||
        tl_stream_call_soon_lost(self, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- reading -------------------------------------------------------- */

static PyObject *
tr_on_eof(PyObject *self)
{
    tl_transport *t = TR(self);
    tl_state *st = tr_state(self);
    if (tl_stream_debug_log(self, "%r received EOF") < 0) {
        return NULL;
    }
    PyObject *keep = tl_transport_call_protocol(t, st->str_eof_received,
                                                NULL);
    if (keep == NULL) {
        return tl_stream_fail(
            self, "Fatal error: protocol.eof_received() call failed.");
    }
    int k = PyObject_IsTrue(keep);
    Py_DECREF(keep);
    if (k < 0) {
        return NULL;
    }
    if (k) {
        if (tl_stream_watch(self, 0, 0) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return tl_transport_close(self, NULL);
}

/* recv() returned n <= 0 (errno err): EOF, would block (EINTR too: the
 * fd stays readable, the signal handlers run before the next wait), or
 * a read error. */
static PyObject *
tr_recv_ended(PyObject *self, ssize_t n, int err)
{
    if (n == 0) {
        return tr_on_eof(self);
    }
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
        Py_RETURN_NONE;
    }
    tl_err_from_errno(err);
    return tl_stream_fail(self, "Fatal read error on socket transport");
}

#define TR_GET_BUFFER_FAILED \
    "Fatal error: protocol.get_buffer() call failed."
#define TR_BUFFER_UPDATED_FAILED \
    "Fatal error: protocol.buffer_updated() call failed."

/* protocol.<name>(n): new reference, or NULL with an exception set. */
static PyObject *
tr_call_protocol_n(tl_transport *t, PyObject *name, Py_ssize_t n)
{
    PyObject *arg = PyLong_FromSsize_t(n);
    if (arg == NULL) {
        return NULL;
    }
    PyObject *r = tl_transport_call_protocol(t, name, arg);
    Py_DECREF(arg);
    return r;
}

/* BufferedProtocol: recv() into protocol.get_buffer(-1), then
 * protocol.buffer_updated(n). */
static PyObject *
tr_read_buffered(PyObject *self)
{
    tl_transport *t = TR(self);
    tl_state *st = tr_state(self);
    PyObject *buf = tr_call_protocol_n(t, st->str_get_buffer, -1);
    Py_buffer view;
    if (buf == NULL) {
        return tl_stream_fail(self, TR_GET_BUFFER_FAILED);
    }
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
        Py_DECREF(buf);
        return tl_stream_fail(self, TR_GET_BUFFER_FAILED);
    }
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_DECREF(buf);
        PyErr_SetString(PyExc_RuntimeError,
                        "get_buffer() returned an empty buffer");
        return tl_stream_fail(self, TR_GET_BUFFER_FAILED);
    }
    ssize_t n = recv(t->s.fd, view.buf, view.len, 0);
    int err = errno;
    PyBuffer_Release(&view);
    Py_DECREF(buf);
    if (n <= 0) {
        return tr_recv_ended(self, n, err);
    }
    tl_stream_count_read(&t->s, n);
    PyObject *r = tr_call_protocol_n(t, st->str_buffer_updated, n);
    if (r == NULL) {
        return tl_stream_fail(self, TR_BUFFER_UPDATED_FAILED);
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* The protocol is our C SSLProtocol: recv() straight into its buffer and
 * hand the count over, without the method calls.  The hooks do what
 * get_buffer(-1) and buffer_updated(n) do (sslproto.h), so the
 * behaviour, errors and messages are those of tr_read_buffered(). */
static PyObject *
tr_read_ssl(PyObject *self)
{
    tl_transport *t = TR(self);
    char *mem;
    Py_ssize_t cap;
    if (tl_ssl_recv_buffer(t->s.protocol, &mem, &cap) < 0) {
        return tl_stream_fail(self, TR_GET_BUFFER_FAILED);
    }
    ssize_t n = recv(t->s.fd, mem, (size_t)cap, 0);
    if (n <= 0) {
        return tr_recv_ended(self, n, errno);
    }
    tl_stream_count_read(&t->s, n);
    /* buffer_updated() may close the transport and drop its protocol. */
    PyObject *proto = Py_NewRef(t->s.protocol);
    int rc = tl_ssl_buffer_updated(proto, n);
    Py_DECREF(proto);
    if (rc < 0) {
        return tl_stream_fail(self, TR_BUFFER_UPDATED_FAILED);
    }
    Py_RETURN_NONE;
}

/* data_received() reads: tl_stream_read() of up to max_size, straight
 * into the bytes object after a read of TR_READ_SMALL bytes or more. */
#define TR_READ_SMALL (8 * 1024)

static PyObject *
Transport_read_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    /* asyncio cancels the reader handle when it stops reading; a read
     * queued before that must not run. */
    if (t->s.conn_lost || !t->s.reading || t->s.protocol == NULL) {
        Py_RETURN_NONE;
    }
    if (t->buffered) {
        if (tl_ssl_is_protocol(tr_state(self), t->s.protocol)) {
            return tr_read_ssl(self);
        }
        return tr_read_buffered(self);
    }
    LoopObject *loop = t->s.loop;
    PyObject *data;
    Py_ssize_t n = tl_stream_read(&t->s, TL_READ_SIZE, TR_READ_SMALL, &data);
    if (n == TL_READ_RAISED) {
        return NULL;
    }
    if (n <= 0) {
        return tr_recv_ended(self, n, errno);
    }
    PyObject *args[2] = {t->s.protocol, data};
    PyObject *r = PyObject_VectorcallMethod(
        loop->st->str_data_received, args,
        2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(data);
    if (r == NULL) {
        return tl_stream_fail(
            self, "Fatal error: protocol.data_received() call failed.");
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* ---- writing -------------------------------------------------------- */

/* Send what the buffer holds: asyncio's _write_sendmsg(). */
static PyObject *
tr_flush(PyObject *self)
{
    tl_transport *t = TR(self);
    if (t->s.conn_lost || t->s.wb_len == 0) {
        Py_RETURN_NONE;
    }
    PyObject *exc;
    Py_ssize_t n = tl_stream_send(
        self, "Fatal write error on socket transport", 0, &exc);
    if (n == TL_WB_AGAIN) {
        Py_RETURN_NONE;
    }
    if (n == TL_WB_RAISED) {
        if (exc == NULL) {
            return NULL;
        }
        if (t->empty_waiter != NULL) {
            PyObject *r = PyObject_CallMethod(t->empty_waiter,
                                              "set_exception", "O", exc);
            if (r == NULL) {
                Py_DECREF(exc);
                return NULL;
            }
            Py_DECREF(r);
        }
        Py_DECREF(exc);
        Py_RETURN_NONE;
    }
    /* May append to the buffer. */
    if (tl_stream_call_in_context(self, tr_state(self)->maybe_resume) < 0) {
        return NULL;
    }
    if (t->s.wb_len == 0) {
        /* Closing (and no waiter to wake, which could raise): the socket
         * is closed below, its registration left lingering until then
         * (poll.c). */
        if ((t->s.closing && t->empty_waiter == NULL
                 ? tl_stream_unwatch_closing(self)
                 : tl_stream_watch(self, 1, 0)) < 0) {
            return NULL;
        }
        if (t->empty_waiter != NULL) {
            PyObject *r = PyObject_CallMethod(t->empty_waiter, "set_result",
                                              "O", Py_None);
            if (r == NULL) {
                return NULL;
            }
            Py_DECREF(r);
        }
        if (t->s.closing) {
            return tl_transport_lost(self, Py_None);
        }
        if (t->eof && shutdown(t->s.fd, SHUT_WR) < 0) {
            return tl_err_from_errno(errno);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
Transport_write_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    /* asyncio cancels the writer handle when it stops writing; a call
     * queued before that must not run. */
    if (!TR(self)->s.writing) {
        Py_RETURN_NONE;
    }
    return tr_flush(self);
}

/* The running Python's message for write(): 3.14 reworded it. */
#if PY_VERSION_HEX >= 0x030E0000
#define TL_WRITE_NOT_BYTES_LIKE \
    "data argument must be a bytes, bytearray, or memoryview object, " \
    "not '%.200s'"
#else
#define TL_WRITE_NOT_BYTES_LIKE TL_NOT_BYTES_LIKE
#endif

int
tl_transport_check_bytes_like(PyObject *data, const char *msg)
{
    if (PyBytes_Check(data) || PyByteArray_Check(data) ||
        PyMemoryView_Check(data)) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, msg, Py_TYPE(data)->tp_name);
    return -1;
}

/* asyncio's checks of write() and writelines() (`what`). */
static int
tr_check_writable(tl_transport *t, const char *what)
{
    if (t->eof) {
        PyErr_Format(PyExc_RuntimeError,
                     "Cannot call %s() after write_eof()", what);
        return -1;
    }
    if (t->empty_waiter != NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "unable to %s; sendfile is in progress", what);
        return -1;
    }
    return 0;
}

static PyObject *
Transport_write(PyObject *self, PyObject *data)
{
    tl_transport *t = TR(self);
    if (tl_transport_check_bytes_like(data, TL_WRITE_NOT_BYTES_LIKE) < 0) {
        return NULL;
    }
    if (tr_check_writable(t, "write") < 0) {
        return NULL;
    }
    Py_buffer view;
    if (tl_stream_view(data, &view) < 0) {
        return NULL;
    }
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    if (t->s.conn_lost) {
        PyBuffer_Release(&view);
        return tl_transport_drop_write(self);
    }
    Py_ssize_t off = 0;
    if (t->s.wb_len == 0) {
        ssize_t n = send(t->s.fd, view.buf, view.len, 0);
        if (n < 0) {
            int err = errno;
            if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
                PyBuffer_Release(&view);
                tl_err_from_errno(err);
                return tl_stream_fail(
                    self, "Fatal write error on socket transport");
            }
            n = 0;
        }
        tl_stream_count_written(&t->s, n);
        if (n == view.len) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
        off = n;
        if (tl_stream_watch(self, 1, 1) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    if (tl_wb_push_write(&t->s, data, &view, off) < 0) {
        return NULL;
    }
    if (tl_stream_call_in_context(self, tr_state(self)->maybe_pause) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Transport_writelines(PyObject *self, PyObject *list)
{
#if PY_VERSION_HEX < 0x030C0000
    /* Before 3.12 asyncio's socket transport inherits
     * WriteTransport.writelines(): write(b''.join(list_of_data)). */
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    if (empty == NULL) {
        return NULL;
    }
    PyObject *joined = PyObject_CallMethod(empty, "join", "O", list);
    Py_DECREF(empty);
    if (joined == NULL) {
        return NULL;
    }
    PyObject *res = Transport_write(self, joined);
    Py_DECREF(joined);
    return res;
#else
    tl_transport *t = TR(self);
    if (tr_check_writable(t, "writelines") < 0) {
        return NULL;
    }
    PyObject *it = PyObject_GetIter(list);
    if (it == NULL) {
        return NULL;
    }
    PyObject *item;
    int any = 0;
    while ((item = PyIter_Next(it)) != NULL) {
        /* asyncio queues memoryview(data) of each item. */
        PyObject *mv = PyMemoryView_FromObject(item);
        Py_DECREF(item);
        Py_buffer view;
        if (mv == NULL ||
            PyObject_GetBuffer(mv, &view, PyBUF_SIMPLE) < 0) {
            Py_XDECREF(mv);
            Py_DECREF(it);
            return NULL;
        }
        if (view.len == 0) {
            /* An empty chunk never drains, so close() would wait forever
             * (CPython gh-155888, fixed in 3.14.10): never queue one. */
            PyBuffer_Release(&view);
            Py_DECREF(mv);
            continue;
        }
        int r = tl_wb_push(&t->s, mv, &view, 0);
        Py_DECREF(mv);
        if (r < 0) {
            Py_DECREF(it);
            return NULL;
        }
        any = 1;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (!any) {
        Py_RETURN_NONE;
    }
    /* asyncio calls _write_ready() at once, then watches what is left. */
    PyObject *r = tr_flush(self);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    if (t->s.wb_len > 0 && !t->s.conn_lost &&
        tl_stream_watch(self, 1, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
#endif
}

static PyObject *
Transport_write_eof(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (t->s.closing || t->eof) {
        Py_RETURN_NONE;
    }
    t->eof = 1;
    if (t->s.wb_len == 0 && shutdown(t->s.fd, SHUT_WR) < 0) {
        return tl_err_from_errno(errno);
    }
    Py_RETURN_NONE;
}

static PyObject *
Transport_can_write_eof(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_TRUE;
}

PyObject *
tl_transport_drop_write(PyObject *self)
{
    tl_transport *t = TR(self);
    if (t->s.conn_lost >= TL_LOG_THRESHOLD_FOR_CONNLOST_WRITES &&
        tl_stream_helper(tr_state(self), TL_H_TR_WARN_SEND, self, NULL,
                         NULL) < 0) {
        return NULL;
    }
    t->s.conn_lost++;
    Py_RETURN_NONE;
}

PyObject *
tl_transport_get_write_buffer_size(PyObject *self,
                                PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(tl_wb_size(&TR(self)->s));
}

/* ---- reading state -------------------------------------------------- */

/* The first watch, scheduled with call_soon() at creation like asyncio's
 * call_soon(self._add_reader, ...): only if still reading then. */
PyObject *
tl_transport_start_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (tl_stream_reading_wanted(&t->s) && tl_stream_watch(self, 0, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- protocol ------------------------------------------------------- */

PyObject *
tl_transport_set_protocol(PyObject *self, PyObject *protocol)
{
    tl_transport *t = TR(self);
    tl_state *st = tr_state(self);
    int b = PyObject_IsInstance(protocol, st->BufferedProtocolType);
    if (b < 0) {
        return NULL;
    }
    t->buffered = (char)b;
    Py_INCREF(protocol);
    Py_XSETREF(t->s.protocol, protocol);
    t->protocol_connected = 1;
    Py_RETURN_NONE;
}

/* ---- sendfile support (loop.sendfile's native path) ----------------- */

static PyObject *
Transport_make_empty_waiter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (t->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
        return NULL;
    }
    if (t->s.loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "transport is closed");
        return NULL;
    }
    PyObject *f = tl_loop_create_future(t->s.loop);
    if (f == NULL) {
        return NULL;
    }
    t->empty_waiter = f;
    if (t->s.wb_len == 0) {
        PyObject *r = PyObject_CallMethod(f, "set_result", "O", Py_None);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_INCREF(f);
    return f;
}

static PyObject *
Transport_reset_empty_waiter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(TR(self)->empty_waiter);
    Py_RETURN_NONE;
}

/* ---- creation ------------------------------------------------------- */

/* The socket's address family: the one a socket object holds, a plain
 * int read without a syscall; else from the kernel (SO_DOMAIN) where
 * there is one; else sock.family, which builds an AddressFamily enum
 * member.  -1 with an exception set on failure. */
static long
transport_family(tl_state *st, PyObject *sock, int fd)
{
    int held = tl_socket_family(st, sock);
    if (held >= 0) {
        return held;
    }
#ifdef SO_DOMAIN
    int domain;
    socklen_t len = sizeof(domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0) {
        return domain;
    }
#endif
    PyObject *famo = PyObject_GetAttrString(sock, "family");
    long family = famo == NULL ? -1 : PyLong_AsLong(famo);
    Py_XDECREF(famo);
    return family;
}

PyObject *
tl_transport_new(PyTypeObject *tp, PyObject *loop, PyObject *sock,
                 PyObject *protocol, PyObject *ctx)
{
    tl_state *st = tl_state_from_type(tp);
    if (st == NULL) {
        return NULL;
    }
    int fd;
    if (tl_stream_fd_arg(PyObject_CallMethodNoArgs(sock, st->str_fileno),
                         &fd) < 0) {
        return NULL;
    }
    long family = transport_family(st, sock, fd);
    if (family == -1 && PyErr_Occurred()) {
        return NULL;
    }
    tl_stream_kind *kind =
        tp == st->DatagramTransportType ? &tl_udp_kind : &tcp_kind;
    PyObject *self = tl_stream_alloc(tp, kind, loop, sock, fd, ctx);
    if (self == NULL) {
        return NULL;
    }
    tl_transport *t = TR(self);
    t->family = (int)family;
    t->s.counted = 1;
    t->s.loop->n_transports++;
    PyObject *r = tl_transport_set_protocol(self, protocol);
    if (r == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    Py_DECREF(r);
    return self;
}

/* _new(loop, sock, protocol[, context]): the C part of construction;
 * the Python factory (tideloop/_transports.py) does the rest as asyncio's
 * __init__ does.  `context` (a contextvars.Context or None) is the one
 * the protocol's callbacks run in. */
PyObject *
tl_transport_new_method(PyObject *cls, PyObject *const *args,
                        Py_ssize_t nargs)
{
    PyObject *ctx;
    if (tl_stream_new_args(args, nargs, 3,
                           "_new(loop, sock, protocol[, context])",
                           &ctx) < 0) {
        return NULL;
    }
    return tl_transport_new((PyTypeObject *)cls, args[0], args[1], args[2],
                            ctx);
}

/* ---- attributes ----------------------------------------------------- */

PyObject *
tl_transport_get_server(PyObject *self, void *c)
{
    PyObject *v = TR(self)->server;
    return Py_NewRef(v ? v : Py_None);
}

int
tl_transport_set_server(PyObject *self, PyObject *v, void *c)
{
    tl_transport *t = TR(self);
    if (v == Py_None) {
        v = NULL;
    }
    Py_XINCREF(v);
    Py_XSETREF(t->server, v);
    return 0;
}

PyObject *
tl_transport_get_protocol_connected(PyObject *self, void *c)
{
    return PyBool_FromLong(TR(self)->protocol_connected);
}

static PyObject *
Transport_get_empty_waiter(PyObject *self, void *c)
{
    PyObject *v = TR(self)->empty_waiter;
    return Py_NewRef(v ? v : Py_None);
}

static PyObject *
Transport_get_eof(PyObject *self, void *c)
{
    return PyBool_FromLong(TR(self)->eof);
}

static PyGetSetDef Transport_getset[] = {
    TL_TRANSPORT_COMMON_GETSET,
    {"_empty_waiter", (getter)Transport_get_empty_waiter, NULL, NULL, NULL},
    {"_eof", (getter)Transport_get_eof, NULL, NULL, NULL},
    {NULL}};

static PyMethodDef Transport_methods[] = {
    TL_TRANSPORT_COMMON_METHODS,
    {"write", (PyCFunction)Transport_write, METH_O,
     "Write some data bytes to the transport (never blocks)."},
    {"writelines", (PyCFunction)Transport_writelines, METH_O,
     "Write a list (or any iterable) of data bytes to the transport."},
    {"write_eof", (PyCFunction)Transport_write_eof, METH_NOARGS,
     "Close the write end after flushing buffered data."},
    {"can_write_eof", (PyCFunction)Transport_can_write_eof, METH_NOARGS,
     NULL},
    {"_read_ready", (PyCFunction)Transport_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)Transport_write_ready, METH_NOARGS, NULL},
    {"_make_empty_waiter", (PyCFunction)Transport_make_empty_waiter,
     METH_NOARGS, NULL},
    {"_reset_empty_waiter", (PyCFunction)Transport_reset_empty_waiter,
     METH_NOARGS, NULL},
    {NULL}};

static const tl_stream_spec tcp_spec = {
    "tideloop._core.SocketTransport", {"_FlowControlMixin", NULL},
    Transport_methods, Transport_getset,
    "A socket transport (TCP or Unix) in C.", sizeof(tl_transport), 1};

int
tl_transport_init_types(PyObject *module, tl_state *st)
{
    PyObject *protocols = PyImport_ImportModule("asyncio.protocols");
    PyObject *transports = PyImport_ImportModule("asyncio.transports");
    if (protocols == NULL || transports == NULL) {
        goto error;
    }
    st->BufferedProtocolType =
        PyObject_GetAttrString(protocols, "BufferedProtocol");
    /* asyncio's flow control, called as functions (no lookup). */
    PyObject *mixin = PyObject_GetAttrString(transports, "_FlowControlMixin");
    if (mixin != NULL) {
        st->maybe_pause = PyObject_GetAttrString(mixin,
                                                 "_maybe_pause_protocol");
        st->maybe_resume = PyObject_GetAttrString(mixin,
                                                  "_maybe_resume_protocol");
        Py_DECREF(mixin);
    }
    PyObject *trsock = PyImport_ImportModule("asyncio.trsock");
    if (trsock != NULL) {
        st->TransportSocket = PyObject_GetAttrString(trsock,
                                                     "TransportSocket");
        Py_DECREF(trsock);
    }
    if (st->BufferedProtocolType == NULL || st->maybe_pause == NULL ||
        st->maybe_resume == NULL || st->TransportSocket == NULL ||
        !PyType_Check(st->TransportSocket)) {
        goto error;
    }
    st->SocketTransportType = tl_stream_make_type(module, &tcp_spec);
    if (st->SocketTransportType == NULL ||
        PyObject_SetAttrString((PyObject *)st->SocketTransportType,
                               "_start_tls_compatible", Py_True) < 0) {
        goto error;
    }
    Py_DECREF(protocols);
    Py_DECREF(transports);
    return 0;
error:
    Py_XDECREF(protocols);
    Py_XDECREF(transports);
    return -1;
}
