/* The accept loop of create_server() and create_unix_server().
 *
 * asyncio's _accept_connection() runs once per readiness event of a
 * listening socket and calls sock.accept() up to `backlog` times, then
 * conn.setblocking(False) for each connection.  _accept_batch() does those
 * accepts in one C call: accept4(SOCK_NONBLOCK | SOCK_CLOEXEC), so the fd
 * is non-blocking from the start, and a socket.socket built for it with
 * `type | SOCK_NONBLOCK`, which CPython's socket init takes as "timeout
 * 0" (and strips from sock.type) instead of a setblocking() syscall.  A
 * TCP batch stops at the length the listener's queue had as it started
 * (accept_queue_len()), not at a failed accept4().  The
 * address is made as socket.accept() makes it (pysock.c).  What to do
 * with the connections and with the error that stopped the batch stays in
 * tideloop/_loop.py, as in asyncio.
 *
 * One iteration later, as asyncio's accept tasks would, _accept_made()
 * (at the end of this file, in every build) makes a run of connections'
 * protocols, each in its own copy of the context, and their transports,
 * as asyncio's _SelectorSocketTransport.__init__ makes them, with
 * asyncio's Python steps (_FlowControlMixin.__init__, the TransportSocket,
 * the _transports entry) done in C. */
#include "transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef TL_HAVE_ACCEPT_BATCH

/* One accept4() on `lfd`: 1 with *fd and *addr (new reference) set, 0
 * with *err set to the errno that stopped it, -1 with an exception set
 * (a signal handler raised, or the address could not be made). */
static int
accept_one(int lfd, int *fd, PyObject **addr, int *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int c;
    for (;;) {
        memset(&ss, 0, sizeof(ss));
        len = sizeof(ss);
        c = accept4(lfd, (struct sockaddr *)&ss, &len,
                    SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0 || errno != EINTR) {
            break;
        }
        /* PEP 475, as socket.accept() does: retry unless a handler
         * raised. */
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
    }
    if (c < 0) {
        *err = errno;
        return 0;
    }
    *addr = tl_sockaddr_to_py((struct sockaddr *)&ss, len);
    if (*addr == NULL) {
        close(c);
        return -1;
    }
    *fd = c;
    return 1;
}

/* How many connections wait in the accept queue of the TCP listener
 * `lfd` (family `family`, protocol `proto`), or -1 where that is not
 * known.  A failed accept4() is not cheap: the kernel makes a socket (its
 * inode, file and dentry) before it looks at the queue and tears it down
 * on the way out, so the EAGAIN that ends a batch which accepts until the
 * queue is empty costs more than a successful accept; one getsockopt()
 * per batch spares it.  Linux reports a listener's queue length in
 * TCP_INFO's tcpi_unacked. */
static long
accept_queue_len(int lfd, long family, long proto)
{
#if defined(__linux__) && defined(TCP_INFO)
    if ((family != AF_INET && family != AF_INET6) ||
        (proto != 0 && proto != IPPROTO_TCP)) {
        return -1;
    }
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        len < offsetof(struct tcp_info, tcpi_unacked) +
                  sizeof(ti.tcpi_unacked) ||
        ti.tcpi_state != TCP_LISTEN) {
        return -1;
    }
    return (long)ti.tcpi_unacked;
#else
    (void)lfd;
    (void)family;
    (void)proto;
    return -1;
#endif
}

/* socket_cls(family, type, proto, fd), `type` with SOCK_NONBLOCK: the
 * accepted connection's socket object, in non-blocking mode; made in C
 * for socket.socket itself.  Closes `fd` if it fails.  New reference. */
static PyObject *
accept_wrap(tl_state *st, PyObject *const *spec, int fd)
{
    if (spec[0] == st->socket_type) {
        return tl_socket_from_fd(st, spec + 1, fd);
    }
    PyObject *fdobj = PyLong_FromLong(fd);
    PyObject *conn = NULL;
    if (fdobj != NULL) {
        PyObject *args[4] = {spec[1], spec[2], spec[3], fdobj};
        conn = PyObject_Vectorcall(spec[0], args, 4, NULL);
        Py_DECREF(fdobj);
    }
    if (conn == NULL) {
        close(fd);
    }
    return conn;
}

/* A socket object that could not be handed over (the list could not
 * grow): out of the list if it got in, and closed, as a failed
 * socket.accept() leaves no fd open.  Steals `conn` (may be NULL); called
 * with no exception pending. */
static void
accept_discard(PyObject *accepted, PyObject *conn)
{
    if (conn == NULL) {
        return;
    }
    Py_ssize_t n = PyList_GET_SIZE(accepted);
    if (n % 2 == 1) {
        /* Cannot fail: shrinking. */
        (void)PyList_SetSlice(accepted, n - 1, n, NULL);
    }
    PyObject *r = PyObject_CallMethod(conn, "close", NULL);
    if (r == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(r);
    Py_DECREF(conn);
}

/* _accept_batch(socket_cls, family, type, proto, fd, n, aborted_continues)
 * -> (accepted, exc, tries): up to `n` accepts on the listening fd, each
 * connection's socket object made as socket_cls(family, type, proto, fd)
 * (`type` with SOCK_NONBLOCK).  `accepted` is [conn, addr, conn, addr,
 * ...]; `exc` is None when the batch ended because no connection was
 * waiting (EAGAIN, or for TCP: it took as many as the listener's queue
 * held as it started), it ran out of tries, or (aborted_continues false, as
 * before 3.14) a connection was aborted before accept(); else what stopped
 * it: the OSError of accept4() (EMFILE & co.), or what building the socket
 * object or the address raised (that fd closed), or what a signal handler
 * raised, for _loop.py to handle as asyncio's loop handles what
 * sock.accept() raises.  `tries`: the accepts made, the failed one
 * included.  New reference. */
PyObject *
tl_accept_batch(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "_accept_batch(socket_cls, family, type, proto, fd, "
                        "n, aborted_continues)");
        return NULL;
    }
    long family = PyLong_AsLong(args[1]);
    long proto = PyLong_AsLong(args[3]);
    long lfd = PyLong_AsLong(args[4]);
    long n = PyLong_AsLong(args[5]);
    int aborted_continues = PyObject_IsTrue(args[6]);
    if ((family == -1 || proto == -1 || lfd == -1 || n == -1 ||
         aborted_continues == -1) &&
        PyErr_Occurred()) {
        return NULL;
    }
    if (lfd < 0 || lfd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fd out of range");
        return NULL;
    }
    long queued = n > 1 ? accept_queue_len((int)lfd, family, proto) : -1;
    if (queued > 0 && queued < n) {
        /* Stop when the queue is empty, without the accept4() that would
         * say so.  Connections that arrive meanwhile keep the listener
         * readable: the next iteration takes them.  An empty queue (0) is
         * tried as before, so an accept4() that fails for another reason
         * (EMFILE) is reported as asyncio reports it. */
        n = queued;
    }
    PyObject *accepted = PyList_New(0);
    if (accepted == NULL) {
        return NULL;
    }
    PyObject *exc = NULL;
    long tries = 0;
    while (tries < n) {
        int fd, err;
        PyObject *addr;
        tries++;
        int r = accept_one((int)lfd, &fd, &addr, &err);
        if (r < 0) {
            exc = tl_fetch_exception();
            break;
        }
        if (r == 0) {
            if (err == ECONNABORTED && aborted_continues) {
                continue;
            }
            if (err != EAGAIN && err != EWOULDBLOCK && err != ECONNABORTED) {
                tl_err_from_errno(err);
                exc = tl_fetch_exception();
            }
            break;
        }
        PyObject *conn = accept_wrap(self->st, args, fd);
        int ok = conn != NULL && PyList_Append(accepted, conn) == 0 &&
                 PyList_Append(accepted, addr) == 0;
        Py_DECREF(addr);
        if (!ok) {
            exc = tl_fetch_exception();
            accept_discard(accepted, conn);
            break;
        }
        Py_DECREF(conn);
    }
    return Py_BuildValue("(NNl)", accepted,
                         exc != NULL ? exc : Py_NewRef(Py_None), tries);
}

#endif

/* ---- the transport of an accepted connection ------------------------ */

/* asyncio's _FlowControlMixin._set_write_buffer_limits() defaults. */
#define TL_FLOW_HIGH_WATER (64 * 1024)
#define TL_FLOW_LOW_WATER (TL_FLOW_HIGH_WATER / 4)

int
tl_accept_init(tl_state *st)
{
    PyObject *weakref = PyImport_ImportModule("weakref");
    if (weakref == NULL) {
        return -1;
    }
    st->KeyedRefType = PyObject_GetAttrString(weakref, "KeyedRef");
    st->WeakValueDictType =
        PyObject_GetAttrString(weakref, "WeakValueDictionary");
    Py_DECREF(weakref);
    if (st->KeyedRefType == NULL || st->WeakValueDictType == NULL) {
        return -1;
    }
    if (!PyType_Check(st->KeyedRefType)) {
        PyErr_SetString(PyExc_TypeError, "weakref.KeyedRef is not a type");
        return -1;
    }
    return 0;
}

/* _FlowControlMixin.__init__(self, extra, loop) (with BaseTransport's and
 * the default _set_write_buffer_limits()), then extra['socket'] =
 * TransportSocket(sock) (its __init__: self._sock = sock) and
 * extra['sockname'] (None if getsockname() fails); the peername is in
 * `extra` already.  0, or -1 with an exception set. */
static int
accepted_init_extra(PyObject *self, tl_state *st, PyObject *sock,
                    PyObject *extra)
{
    tl_transport *t = TR(self);
    PyObject *high = PyLong_FromLong(TL_FLOW_HIGH_WATER);
    PyObject *low = high == NULL ? NULL : PyLong_FromLong(TL_FLOW_LOW_WATER);
    int rc = low == NULL ||
             tl_slot_set(st, self, TL_SLOT_EXTRA, st->str_extra, extra) ||
             tl_slot_set(st, self, TL_SLOT_LOOP, st->str_loop_slot,
                         (PyObject *)t->s.loop) ||
             tl_slot_set(st, self, TL_SLOT_PROTOCOL_PAUSED,
                         st->str_protocol_paused, Py_False) ||
             tl_slot_set(st, self, TL_SLOT_HIGH_WATER, st->str_high_water,
                         high) ||
             tl_slot_set(st, self, TL_SLOT_LOW_WATER, st->str_low_water,
                         low);
    Py_XDECREF(high);
    Py_XDECREF(low);
    if (rc) {
        return -1;
    }
    PyTypeObject *tstype = (PyTypeObject *)st->TransportSocket;
    PyObject *tsock = tstype->tp_alloc(tstype, 0);
    if (tsock == NULL ||
        tl_slot_set(st, tsock, TL_SLOT_TSOCK_SOCK, st->str_sock, sock) < 0 ||
        PyDict_SetItem(extra, st->str_socket, tsock) < 0) {
        Py_XDECREF(tsock);
        return -1;
    }
    Py_DECREF(tsock);
    PyObject *name = tl_socket_sockname(st, sock, t->s.fd, t->family);
    if (name == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_OSError)) {
            return -1;
        }
        PyErr_Clear();
        name = Py_NewRef(Py_None);
    }
    rc = PyDict_SetItem(extra, st->str_sockname, name);
    Py_DECREF(name);
    return rc;
}

/* The truth of a WeakValueDictionary's `_pending_removals` or
 * `_iterating`: 1 or 0, or -1 with an exception set.  0 where the
 * dictionary has no such attribute: from 3.14 its callback removes the
 * entry at once, iterating or not, and __setitem__ has nothing to
 * commit. */
static int
weakvalue_flag(PyObject *map, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(map, name);
    if (v == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    int rc = PyObject_IsTrue(v);
    Py_DECREF(v);
    return rc;
}

/* map[key] = value for the loop's WeakValueDictionary, as its
 * __setitem__ does (pending removals committed, then data[key] =
 * KeyedRef(value, map._remove, key)) without its Python frames; another
 * mapping gets PyObject_SetItem().  0, or -1 with an exception set. */
static int
accept_weakvalue_set(tl_state *st, PyObject *map, PyObject *key,
                     PyObject *value)
{
    if (Py_TYPE(map) != (PyTypeObject *)st->WeakValueDictType) {
        return PyObject_SetItem(map, key, value);
    }
    int some = weakvalue_flag(map, st->str_pending_removals);
    if (some > 0) {
        PyObject *args[1] = {map};
        PyObject *r = tl_call_method(st->str_commit_removals, args, 1);
        some = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    PyObject *remove = some < 0 ? NULL : PyObject_GetAttr(map, st->str_remove);
    PyObject *args = remove == NULL ? NULL : PyTuple_Pack(2, value, remove);
    Py_XDECREF(remove);
    if (args == NULL) {
        return -1;
    }
    /* KeyedRef.__new__: ref.__new__(KeyedRef, value, callback), then
     * self.key = key; its __init__ (ref.__init__) only checks the
     * arguments. */
    PyTypeObject *kr = (PyTypeObject *)st->KeyedRefType;
    PyObject *ref = kr->tp_base->tp_new(kr, args, NULL);
    Py_DECREF(args);
    if (ref == NULL || tl_slot_set(st, ref, TL_SLOT_KEY, st->str_key, key) < 0) {
        Py_XDECREF(ref);
        return -1;
    }
    PyObject *data = PyObject_GetAttr(map, st->str_data);
    int rc = data == NULL ? -1 : PyObject_SetItem(data, key, ref);
    Py_XDECREF(data);
    Py_DECREF(ref);
    if (rc == 0) {
        Py_XSETREF(TR(value)->registry, Py_NewRef(map));
    }
    return rc;
}

/* What the entry's callback (the WeakValueDictionary's _remove) would do
 * once the transport is gone, done while it dies: data[fd] deleted if it
 * is still the transport's KeyedRef, unless the dictionary is being
 * iterated (then the callback queues the key in _pending_removals: 1).
 * 0, 1, or -1 with an exception set. */
static int
accept_forget_entry(tl_state *st, PyObject *self, PyObject *map)
{
    int busy = weakvalue_flag(map, st->str_iterating);
    if (busy != 0) {
        return busy;
    }
    PyObject *data = PyObject_GetAttr(map, st->str_data);
    PyObject *key = data == NULL || !PyDict_Check(data)
                        ? NULL
                        : PyLong_FromLong(TR(self)->s.fd);
    PyObject *ref = key == NULL ? NULL : PyDict_GetItemWithError(data, key);
    int rc = ref == NULL && PyErr_Occurred() ? -1 : 0;
    if (ref != NULL && PyWeakref_Check(ref) &&
        ((PyWeakReference *)ref)->wr_object == self) {
        rc = PyDict_DelItem(data, key);
    }
    Py_XDECREF(key);
    Py_XDECREF(data);
    return data == NULL ? -1 : rc;
}

void
tl_accept_forget(PyObject *self)
{
    tl_transport *t = TR(self);
    PyObject *map = t->registry;
    if (map == NULL) {
        return;
    }
    t->registry = NULL;
    PyObject *exc = PyErr_Occurred() ? tl_fetch_exception() : NULL;
    tl_state *st = tr_state(self);
    if (st == NULL || accept_forget_entry(st, self, map) < 0) {
        /* The callback is still there to do it. */
        PyErr_Clear();
    }
    if (exc != NULL) {
        tl_restore_exception(exc);
    }
    Py_DECREF(map);
}

/* server._attach(transport) (3.13+) or server._attach(), then the
 * transport records its server, then loop._transports[fd] = transport:
 * the order of tideloop/_transports.py's make_socket_transport().  0, or
 * -1 with an exception set. */
static int
accepted_register(PyObject *self, tl_state *st, PyObject *server)
{
    tl_transport *t = TR(self);
    if (server != Py_None) {
        if (tl_transport_server_call(server, st->str_attach, self) < 0) {
            return -1;
        }
        Py_XSETREF(t->server, Py_NewRef(server));
    }
    PyObject *map = PyObject_GetAttr((PyObject *)t->s.loop,
                                     st->str_transports);
    PyObject *key = map != NULL ? PyLong_FromLong(t->s.fd) : NULL;
    int rc = key != NULL ? accept_weakvalue_set(st, map, key, self) : -1;
    Py_XDECREF(key);
    Py_XDECREF(map);
    return rc;
}

/* loop.call_soon(obj.<name>, arg) (arg NULL: no argument) in the
 * transport's context: 0, or -1 with an exception set. */
static int
accepted_soon(tl_transport *t, PyObject *obj, PyObject *name, PyObject *arg)
{
    PyObject *fn = PyObject_GetAttr(obj, name);
    if (fn == NULL) {
        return -1;
    }
    PyObject *h = tl_loop_call_soon(t->s.loop, fn, arg, t->s.context);
    Py_DECREF(fn);
    Py_XDECREF(h);
    return h == NULL ? -1 : 0;
}

/* TCP_NODELAY if asked, then connection_made(transport) and
 * _start_reading() scheduled in the transport's context.  0, or -1 with
 * an exception set. */
static int
accepted_start(PyObject *self, tl_state *st, PyObject *protocol, int nodelay)
{
    tl_transport *t = TR(self);
    int one = 1;
    if (nodelay &&
        setsockopt(t->s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) <
            0) {
        tl_err_from_errno(errno);
        return -1;
    }
    if (accepted_soon(t, protocol, st->str_connection_made, self) < 0 ||
        accepted_soon(t, self, st->str_start_reading, NULL) < 0) {
        return -1;
    }
    return 0;
}

/* The transport of an accepted connection, made as tideloop/_transports.py's
 * make_socket_transport(loop, sock, protocol, extra={'peername': peer},
 * server=server, context=ctx, nodelay=nodelay) makes it, step for step,
 * without its Python frames.  `ctx`: the connection's copy of the
 * context.  New reference, or NULL with an exception set (the transport
 * made so far is dropped, as the Python factory's would be). */
static PyObject *
accepted_transport(tl_state *st, PyObject *loop, PyObject *sock,
                   PyObject *protocol, PyObject *peer, PyObject *server,
                   PyObject *ctx, int nodelay)
{
#if PY_VERSION_HEX >= 0x030C0000
    /* 3.12+ refuse an fd that a live transport still owns. */
    PyObject *r = PyObject_CallMethodOneArg(
        loop, st->str_ensure_fd_no_transport, sock);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
#endif
    PyObject *self = tl_transport_new(st->SocketTransportType, loop, sock,
                                      protocol, ctx);
    if (self == NULL) {
        return NULL;
    }
    PyObject *extra = PyDict_New();
    if (extra == NULL || PyDict_SetItem(extra, st->str_peername, peer) ||
        accepted_init_extra(self, st, sock, extra) < 0 ||
        accepted_register(self, st, server) < 0 ||
        accepted_start(self, st, protocol, nodelay) < 0) {
        Py_XDECREF(extra);
        Py_DECREF(self);
        return NULL;
    }
    Py_DECREF(extra);
    return self;
}

/* One connection of _accept_made(): its protocol made in `ctx`
 * (ctx.run(protocol_factory)), then its transport: ours, or for a socket
 * subclass (nodelay None) the Python factory's, whose asyncio
 * _set_nodelay() checks the socket.  0, or -1 with an exception set. */
static int
accept_made_one(LoopObject *loop, PyObject *const *args, PyObject *conn,
                PyObject *peer, PyObject *ctx, int nodelay)
{
    tl_state *st = loop->st;
    if (PyContext_Enter(ctx) < 0) {
        return -1;
    }
    PyObject *protocol = PyObject_CallNoArgs(args[0]);
    if (PyContext_Exit(ctx) < 0 || protocol == NULL) {
        Py_XDECREF(protocol);
        return -1;
    }
    PyObject *tr;
    if (args[2] == Py_None) {
        PyObject *fn = st->helpers[TL_H_TR_ACCEPTED];
        PyObject *margs[6] = {(PyObject *)loop, conn, protocol, peer,
                              args[1], ctx};
        tr = fn != NULL ? PyObject_Vectorcall(fn, margs, 6, NULL)
                        : PyErr_Format(PyExc_RuntimeError,
                                       "tideloop helpers not installed");
    }
    else {
        tr = accepted_transport(st, (PyObject *)loop, conn, protocol, peer,
                                args[1], ctx, nodelay);
    }
    Py_DECREF(protocol);
    Py_XDECREF(tr);
    return tr == NULL ? -1 : 0;
}

/* A connection of _accept_made() failed (the exception is pending): it
 * is closed.  SystemExit and KeyboardInterrupt propagate (-1), after the
 * connections after it, from run[i + 2], are handed to a later
 * _accept_made(); anything else is dropped (0).  What conn.close() or
 * call_soon() raise propagates, with the first exception as its
 * context. */
static int
accept_made_failed(LoopObject *loop, PyObject *const *args, PyObject *conn,
                   Py_ssize_t i)
{
    tl_state *st = loop->st;
    int stop = PyErr_ExceptionMatches(PyExc_SystemExit) ||
               PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
    PyObject *exc = tl_fetch_exception();
    if (tl_socket_close(st, conn) < 0) {
        tl_err_chain(exc);
        return -1;
    }
    if (!stop) {
        Py_DECREF(exc);
        return 0;
    }
    PyObject *run = args[4];
    Py_ssize_t n = PyList_GET_SIZE(run);
    if (i + 2 < n) {
        PyObject *again = PyObject_GetAttr((PyObject *)loop,
                                           st->str_accept_made);
        PyObject *rest = again == NULL ? NULL
                                       : PyList_GetSlice(run, i + 2, n);
        PyObject *r = NULL;
        if (rest != NULL) {
            PyObject *cargs[7] = {(PyObject *)loop, again, args[0], args[1],
                                  args[2], args[3], rest};
            r = tl_call_method(st->str_call_soon, cargs, 7);
        }
        Py_XDECREF(again);
        Py_XDECREF(rest);
        if (r == NULL) {
            tl_err_chain(exc);
            return -1;
        }
        Py_DECREF(r);
    }
    tl_restore_exception(exc);
    return -1;
}

PyObject *
tl_accept_made(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyList_Check(args[4]) ||
        (args[3] != Py_None && !PyContext_CheckExact(args[3]))) {
        PyErr_SetString(PyExc_TypeError,
                        "_accept_made(protocol_factory, server, nodelay, "
                        "context, run)");
        return NULL;
    }
    int nodelay = args[2] != Py_None ? PyObject_IsTrue(args[2]) : 0;
    if (nodelay < 0) {
        return NULL;
    }
    PyObject *run = args[4];
    for (Py_ssize_t i = 0; i + 1 < PyList_GET_SIZE(run); i += 2) {
        PyObject *ctx = args[3] != Py_None ? PyContext_Copy(args[3])
                                           : PyContext_CopyCurrent();
        if (ctx == NULL) {
            return NULL;
        }
        PyObject *conn = Py_NewRef(PyList_GET_ITEM(run, i));
        PyObject *peer = Py_NewRef(PyList_GET_ITEM(run, i + 1));
        int rc = accept_made_one(self, args, conn, peer, ctx, nodelay);
        Py_DECREF(ctx);
        Py_DECREF(peer);
        if (rc < 0 && accept_made_failed(self, args, conn, i) < 0) {
            Py_DECREF(conn);
            return NULL;
        }
        Py_DECREF(conn);
    }
    Py_RETURN_NONE;
}
