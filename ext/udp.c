/* DatagramTransport: asyncio's _SelectorDatagramTransport (UDP and Unix
 * datagram sockets), in C, on the stream core (stream.c) and sharing
 * close/abort/reading/construction with the socket transport
 * (transport.c, transport.h).
 *
 * A datagram transport is an asyncio.DatagramTransport (uvloop's is not,
 * its users filed bugs).  The write ring holds one datagram per item
 * (its destination in item->addr); a datagram goes whole or not at
 * all. */
#include "transport.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

static PyObject *Dgram_read_ready(PyObject *self, PyObject *unused);
static PyObject *Dgram_sendto_ready(PyObject *self, PyObject *unused);

tl_stream_kind tl_udp_kind =
    TL_TRANSPORT_KIND(Dgram_read_ready, Dgram_sendto_ready);

/* Calls protocol.error_received(exc) with the pending OSError. */
static PyObject *
dgram_error_received(PyObject *self)
{
    tl_transport *t = TR(self);
    PyObject *exc = tl_fetch_exception();
    /* From sendto() too: in the transport's context. */
    int joined = tl_context_join(t->s.context);
    PyObject *r = tl_transport_call_protocol(
        t, tr_state(self)->str_error_received, exc);
    tl_context_leave(t->s.context, joined);
    Py_DECREF(exc);
    return r;
}

/* What dgram_recv() returns when it raised. */
#define DGRAM_RAISED (-2)
/* Datagrams up to this size go straight into their bytes object. */
#define DGRAM_DIRECT_MAX (64 * 1024)

/* The bytes of a datagram read `direct` bytes into data, n long, the rest
 * (if any) in rbuf: data itself if it is n long, else of the right
 * length (shrunk in place, or a copy).  NULL with an exception set. */
static PyObject *
dgram_result(PyObject *data, Py_ssize_t n, Py_ssize_t direct,
             const char *rbuf)
{
    if (n <= direct) {
        return _PyBytes_Resize(&data, n) < 0 ? NULL : data;
    }
    PyObject *r = PyBytes_FromStringAndSize(NULL, n);
    if (r != NULL) {
        memcpy(PyBytes_AS_STRING(r), PyBytes_AS_STRING(data), direct);
        memcpy(PyBytes_AS_STRING(r) + direct, rbuf, n - direct);
    }
    Py_DECREF(data);
    return r;
}

/* One recvmsg() of a datagram of up to TL_READ_SIZE bytes (asyncio's
 * max_size), its source in *ss, *sl.  Straight into a bytes object the
 * size of the last datagram (an echo's, or a run of datagrams of one
 * size: no copy), what is longer into the loop's buffer; at first, and
 * after an empty or big datagram, all into the loop's buffer, then
 * copied.  The datagram's length and its bytes in *data, or -1 with
 * errno, or DGRAM_RAISED. */
static Py_ssize_t
dgram_recv(tl_transport *t, struct sockaddr_storage *ss, socklen_t *sl,
           PyObject **data)
{
    char *rbuf = tl_stream_rbuf(&t->s);
    if (rbuf == NULL) {
        return DGRAM_RAISED;
    }
    Py_ssize_t direct = t->s.last_read;
    struct iovec iov[2] = {{rbuf, TL_READ_SIZE}, {rbuf, 0}};
    *data = NULL;
    if (direct > 0 && direct <= DGRAM_DIRECT_MAX) {
        if ((*data = PyBytes_FromStringAndSize(NULL, direct)) == NULL) {
            return DGRAM_RAISED;
        }
        iov[0].iov_base = PyBytes_AS_STRING(*data);
        iov[0].iov_len = (size_t)direct;
        iov[1].iov_len = (size_t)(TL_READ_SIZE - direct);
    }
    struct msghdr msg = {.msg_name = ss, .msg_namelen = *sl,
                         .msg_iov = iov, .msg_iovlen = *data ? 2 : 1};
    ssize_t n = recvmsg(t->s.fd, &msg, 0);
    if (n < 0) {
        int err = errno;
        Py_CLEAR(*data);
        errno = err;
        return -1;
    }
    *sl = msg.msg_namelen;
    t->s.last_read = n;
    tl_stream_count_read(&t->s, n);
    *data = *data ? dgram_result(*data, n, direct, rbuf)
                  : PyBytes_FromStringAndSize(rbuf, n);
    return *data ? n : DGRAM_RAISED;
}

static PyObject *
Dgram_read_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (t->s.conn_lost || !t->s.reading || t->s.protocol == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *data, *addr;
    if (t->family == AF_INET || t->family == AF_INET6 ||
        t->family == AF_UNIX) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (t->family == AF_UNIX) {
            /* A path is read up to its NUL, which the kernel may leave
             * out of sl: zeroed first, as the socket module does (an IP
             * address is read within sl). */
            memset(&ss, 0, sizeof(ss));
        }
        Py_ssize_t n = dgram_recv(t, &ss, &sl, &data);
        if (n == DGRAM_RAISED) {
            return NULL;
        }
        if (n < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
                Py_RETURN_NONE;
            }
            tl_err_from_errno(err);
            return dgram_error_received(self);
        }
        tl_udp_peer *peer = t->peer;
        if (peer != NULL && peer->len == sl &&
            memcmp(&peer->ss, &ss, sl) == 0) {
            addr = peer->addr;
            Py_INCREF(addr);
        }
        else {
            addr = tl_sockaddr_to_py((struct sockaddr *)&ss, sl);
            if (addr == NULL) {
                Py_DECREF(data);
                return NULL;
            }
            if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
                if (peer == NULL) {
                    peer = t->peer = PyMem_Calloc(1, sizeof(tl_udp_peer));
                }
                if (peer != NULL) {
                    Py_INCREF(addr);
                    Py_XSETREF(peer->addr, addr);
                    peer->len = sl;
                    memcpy(&peer->ss, &ss, sl);
                }
            }
        }
    }
    else {
        /* Other families: let the socket module decode the address. */
        PyObject *r = PyObject_CallMethod(t->s.file, "recvfrom", "i",
                                          TL_READ_SIZE);
        if (r == NULL) {
            if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
                PyErr_ExceptionMatches(PyExc_InterruptedError)) {
                PyErr_Clear();
                Py_RETURN_NONE;
            }
            if (PyErr_ExceptionMatches(PyExc_OSError)) {
                return dgram_error_received(self);
            }
            return tl_stream_fail(self,
                                  "Fatal read error on datagram transport");
        }
        if (!PyArg_ParseTuple(r, "OO", &data, &addr)) {
            Py_DECREF(r);
            return NULL;
        }
        Py_INCREF(data);
        Py_INCREF(addr);
        Py_DECREF(r);
        if (PyBytes_Check(data)) {
            tl_stream_count_read(&t->s, PyBytes_GET_SIZE(data));
        }
    }
    PyObject *cargs[3] = {t->s.protocol, data, addr};
    PyObject *res = PyObject_VectorcallMethod(
        tr_state(self)->str_datagram_received, cargs,
        3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(data);
    Py_DECREF(addr);
    if (res == NULL) {
        return NULL;  /* asyncio lets it reach the handle's report */
    }
    Py_DECREF(res);
    Py_RETURN_NONE;
}

/* One send of a datagram.  Returns 1 sent, 0 would block, -1 with an
 * exception set. */
static int
dgram_send_one(PyObject *self, PyObject *data, Py_buffer *view,
               PyObject *addr)
{
    tl_transport *t = TR(self);
    /* Sent here with sendto(2): to the connected peer, or to the address
     * object datagram_received() was given, whose sockaddr is known.
     * Any other address goes through socket.sendto(), which parses it. */
    const struct sockaddr *to = NULL;
    socklen_t tolen = 0;
    tl_udp_peer *peer = t->peer;
    if (!t->has_peer && addr != NULL && peer != NULL && addr == peer->addr) {
        /* socket.sendto() would raise this audit event. */
        if (PySys_Audit("socket.sendto", "OO", t->s.file, addr) < 0) {
            return -1;
        }
        to = (const struct sockaddr *)&peer->ss;
        tolen = peer->len;
    }
    if (t->has_peer || to != NULL) {
        if (sendto(t->s.fd, view->buf, view->len, 0, to, tolen) < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
                return 0;
            }
            tl_err_from_errno(err);
            return -1;
        }
        tl_stream_count_written(&t->s, view->len);
        return 1;
    }
    /* After the connection is lost the socket is None, as in asyncio. */
    PyObject *args[3] = {t->s.file ? t->s.file : Py_None, data,
                         addr ? addr : Py_None};
    PyObject *r = tl_call_method(tr_state(self)->str_sendto, args, 3);
    if (r == NULL) {
        if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
            PyErr_ExceptionMatches(PyExc_InterruptedError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    Py_DECREF(r);
    /* A datagram goes whole or not at all. */
    tl_stream_count_written(&t->s, view->len);
    return 1;
}

#if PY_VERSION_HEX >= 0x030D0000
#define TL_DGRAM_HEADER 8        /* 3.13 counts 8 header bytes per item */
#else
#define TL_DGRAM_HEADER 0
#endif
/* 3.13 does not take the header bytes off again when a datagram goes;
 * 3.14 does. */
#if PY_VERSION_HEX >= 0x030E0000
#define TL_DGRAM_HEADER_SENT TL_DGRAM_HEADER
#else
#define TL_DGRAM_HEADER_SENT 0
#endif

/* The other calls of sendto(): keywords, a wrong count.  What
 * PyArg_ParseTupleAndKeywords() accepts and says, from an argument tuple
 * and a keyword dict made for it.  *data and *addr are borrowed from
 * args (the caller's).  0, or -1 with an exception set. */
static int
dgram_sendto_parse(PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames, PyObject **data, PyObject **addr)
{
    static char *kwlist[] = {"data", "addr", NULL};
    PyObject *tuple = PyTuple_New(nargs);
    PyObject *kwds = kwnames != NULL ? PyDict_New() : NULL;
    int ok = tuple != NULL && (kwnames == NULL || kwds != NULL);
    for (Py_ssize_t i = 0; ok && i < nargs; i++) {
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    }
    for (Py_ssize_t i = 0; ok && kwnames != NULL &&
                           i < PyTuple_GET_SIZE(kwnames); i++) {
        ok = PyDict_SetItem(kwds, PyTuple_GET_ITEM(kwnames, i),
                            args[nargs + i]) == 0;
    }
    ok = ok && PyArg_ParseTupleAndKeywords(tuple, kwds, "O|O:sendto",
                                           kwlist, data, addr);
    Py_XDECREF(tuple);
    Py_XDECREF(kwds);
    return ok ? 0 : -1;
}

/* sendto(data, addr=None).  The usual calls, one or two positional
 * arguments, make no argument tuple (METH_VARARGS made one and parsed
 * it: about 600 instructions per call, a 1 KiB echo's round trip of two
 * sendto() went from 10,000 to 8,800). */
static PyObject *
Dgram_sendto(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    PyObject *data, *addr = Py_None;
    if (kwnames == NULL && (nargs == 1 || nargs == 2)) {
        data = args[0];
        if (nargs == 2) {
            addr = args[1];
        }
    }
    else if (dgram_sendto_parse(args, nargs, kwnames, &data, &addr) < 0) {
        return NULL;
    }
    tl_transport *t = TR(self);
    if (tl_transport_check_bytes_like(data, TL_NOT_BYTES_LIKE) < 0) {
        return NULL;
    }
    Py_buffer view;
    if (tl_stream_view(data, &view) < 0) {
        return NULL;
    }
#if PY_VERSION_HEX < 0x030D0000
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
#endif
    if (t->address != NULL) {
        int ok = addr == Py_None;
        if (!ok) {
            ok = PyObject_RichCompareBool(addr, t->address, Py_EQ);
            if (ok < 0) {
                PyBuffer_Release(&view);
                return NULL;
            }
        }
        if (!ok) {
            PyBuffer_Release(&view);
            PyErr_Format(PyExc_ValueError,
                         "Invalid address: must be None or %S", t->address);
            return NULL;
        }
        addr = t->address;
    }
    if (t->s.conn_lost && t->address != NULL) {
        PyBuffer_Release(&view);
        return tl_transport_drop_write(self);
    }
    if (t->s.wb_len == 0) {
        int r = dgram_send_one(self, data, &view, addr);
        if (r == 1) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
        if (r < 0) {
            PyBuffer_Release(&view);
            if (PyErr_ExceptionMatches(PyExc_OSError)) {
                return dgram_error_received(self);
            }
            return tl_stream_fail(self,
                                  "Fatal write error on datagram transport");
        }
        if (tl_stream_watch(self, 1, 1) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    /* Queue a copy, as asyncio does (bytes(data)). */
    PyObject *copy = PyBytes_FromStringAndSize(view.buf, view.len);
    PyBuffer_Release(&view);
    if (copy == NULL) {
        return NULL;
    }
    int r = tl_wb_push_object(&t->s, copy, 0);
    Py_DECREF(copy);
    if (r < 0) {
        return NULL;
    }
    tl_wb_item *it = &t->s.wb[(t->s.wb_head + t->s.wb_len - 1) % t->s.wb_cap];
    Py_INCREF(addr);
    it->addr = addr;
    t->s.wb_bytes += TL_DGRAM_HEADER;
    if (tl_stream_call_in_context(self, tr_state(self)->maybe_pause) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Dgram_sendto_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (!t->s.writing) {
        Py_RETURN_NONE;
    }
    while (t->s.wb_len > 0) {
        tl_wb_item *it = &t->s.wb[t->s.wb_head];
        int r = dgram_send_one(self, it->obj, &it->view, it->addr);
        if (r == 0) {
            break;  /* try again later */
        }
        t->s.wb_bytes -= it->view.len + TL_DGRAM_HEADER_SENT;
        tl_wb_pop(&t->s);
        if (r < 0) {
            if (PyErr_ExceptionMatches(PyExc_OSError)) {
                return dgram_error_received(self);
            }
            return tl_stream_fail(self,
                                  "Fatal write error on datagram transport");
        }
    }
    if (tl_stream_call_in_context(self, tr_state(self)->maybe_resume) < 0) {
        return NULL;
    }
    if (t->s.wb_len == 0) {
        if (tl_stream_watch(self, 1, 0) < 0) {
            return NULL;
        }
        if (t->s.closing) {
            return tl_transport_lost(self, Py_None);
        }
    }
    Py_RETURN_NONE;
}

/* _dgram_setup(address, has_peer): the rest of construction. */
static PyObject *
Dgram_setup(PyObject *self, PyObject *args)
{
    PyObject *address;
    int has_peer;
    if (!PyArg_ParseTuple(args, "Op:_dgram_setup", &address, &has_peer)) {
        return NULL;
    }
    tl_transport *t = TR(self);
    int truth = PyObject_IsTrue(address);
    if (truth < 0) {
        return NULL;
    }
    /* asyncio tests `if self._address:`: a falsy address is none. */
    Py_XSETREF(t->address, truth ? Py_NewRef(address) : NULL);
    t->has_peer = (char)has_peer;
    Py_RETURN_NONE;
}

static PyObject *
Dgram_get_address(PyObject *self, void *c)
{
    PyObject *a = TR(self)->address;
    if (a == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(a);
    return a;
}


static PyGetSetDef Dgram_getset[] = {
    TL_TRANSPORT_COMMON_GETSET,
    {"_address", (getter)Dgram_get_address, NULL, NULL, NULL},
    {NULL}};

static PyMethodDef Dgram_methods[] = {
    TL_TRANSPORT_COMMON_METHODS,
    {"sendto", (PyCFunction)(void (*)(void))Dgram_sendto,
     METH_FASTCALL | METH_KEYWORDS,
     "Send data to addr (or the connected address); never blocks."},
    {"_read_ready", (PyCFunction)Dgram_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)Dgram_sendto_ready, METH_NOARGS, NULL},
    {"_sendto_ready", (PyCFunction)Dgram_sendto_ready, METH_NOARGS, NULL},
    {"_dgram_setup", (PyCFunction)Dgram_setup, METH_VARARGS, NULL},
    {NULL}};

/* A datagram transport is an asyncio.DatagramTransport (uvloop's is
 * not, its users filed bugs). */
static const tl_stream_spec udp_spec = {
    "tideloop._core.DatagramTransport",
    {"_FlowControlMixin", "DatagramTransport"}, Dgram_methods, Dgram_getset,
    "A datagram transport (UDP or Unix datagram) in C.",
    sizeof(tl_transport), 1};

int
tl_udp_init_types(PyObject *module, tl_state *st)
{
    st->DatagramTransportType = tl_stream_make_type(module, &udp_spec);
    return st->DatagramTransportType == NULL ? -1 : 0;
}
