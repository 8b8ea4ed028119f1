/* SocketTransport: asyncio's selector socket transport, in C.
 *
 * The type's real base is asyncio.transports._FlowControlMixin (so an
 * instance *is* an asyncio.Transport: get_extra_info(), the write buffer
 * limits and pause/resume_writing logic are asyncio's own).  Our fields
 * live after the base's layout, at Py_TYPE(self)->tp_base->tp_basicsize.
 *
 * Reading and writing follow asyncio's _SelectorSocketTransport: the fd is
 * watched through the loop's fd watchers (poll.c), readiness queues our
 * reusable read/write handle on the ready queue, and the handle calls
 * _read_ready()/_write_ready() here, which recv()/send() on the fd the
 * socket object owns.  Protocol callbacks therefore run in the same order
 * relative to other callbacks as in asyncio. */
#include "tideloop.h"

#include <errno.h>
#include <limits.h>
#include <structmember.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>

#define TL_READ_SIZE (256 * 1024)   /* asyncio's max_size */
#define TL_IOV_MAX 1024
#define TL_LOG_THRESHOLD_FOR_CONNLOST_WRITES 5

/* What asyncio's socket transport keeps of data that write() could not
 * send at once (selector_events.py):
 * - before 3.12, a copy in its bytearray;
 * - from 3.12, the object itself when it is queued behind other data or
 *   when the first send() would block: no export, so the caller may
 *   resize a bytearray, and what it holds when sendmsg() runs is sent;
 *   but memoryview(data)[n:] after a partial first send, and
 *   memoryview(item) of each writelines() item: exports, which lock the
 *   caller's bytearray until that data is sent.
 * A "live" item is the 3.12 object without an export: it is exported
 * only around the writev(), as sendmsg() exports it.  An export of bytes
 * is never observable, so bytes are held with their export, never
 * copied. */
#if PY_VERSION_HEX >= 0x030C0000
#define TL_WB_LIVE 1
#endif
/* get_write_buffer_size() of a socket transport: before 3.15 the sum of
 * the lengths of what is queued, at the time of asking; 3.15 counts bytes
 * as they are queued and as they are sent (_buffer_size). */
#if PY_VERSION_HEX >= 0x030F0000
#define TL_WB_COUNTER 1
#endif

typedef struct {
    PyObject *obj;               /* strong: what is sent */
    Py_buffer view;              /* obj's export; of a live item only
                                    view.len, its length when queued */
    Py_ssize_t off;              /* bytes of view already sent */
    PyObject *addr;              /* datagrams: strong destination or NULL */
    char live;                   /* no export held (TL_WB_LIVE) */
} wb_item;

/* Datagrams: the source of the last datagram received and the address
 * object handed to datagram_received() for it.  The next datagram from the
 * same peer reuses the object, and sendto(data, addr) with that very
 * object sends to the stored sockaddr without parsing the tuple again:
 * the request/response pattern of a UDP server. */
typedef struct {
    PyObject *addr;              /* strong or NULL */
    socklen_t len;
    struct sockaddr_storage ss;
} dgram_peer;

typedef struct {
    LoopObject *loop;            /* strong until connection lost */
    PyObject *sock;              /* strong; NULL once closed */
    PyObject *protocol;          /* strong; NULL once connection lost */
    PyObject *server;            /* strong or NULL */
    PyObject *empty_waiter;      /* strong or NULL (sendfile) */
    /* The contextvars.Context every protocol callback runs in (strong or
     * NULL): asyncio 3.15's, or on older Pythons a copy of the one current
     * at creation (tideloop/_transports.py).  Our read/write handles and
     * connection_lost() are scheduled in it. */
    PyObject *context;
    HandleObject *read_handle;   /* reusable; strong or NULL */
    HandleObject *write_handle;
    wb_item *wb;                 /* write buffer: a ring of items */
    Py_ssize_t wb_head, wb_len, wb_cap;
    Py_ssize_t wb_bytes;         /* see wb_counted() */
    Py_ssize_t wb_live;          /* live items queued */
    PyObject *address;           /* datagrams: connected address or NULL */
    dgram_peer *peer;            /* datagrams: allocated on first receive */
    int fd;
    int family;
    int conn_lost;
    char has_peer;               /* datagrams: _extra['peername'] is set */
    char closing;
    char paused;
    char eof;
    char buffered;               /* protocol is a BufferedProtocol */
    char protocol_connected;
    char reading;                /* read handle installed */
    char writing;                /* write handle installed */
    PyObject *weakreflist;
    PyObject *dict;
} tl_transport;

static inline tl_transport *
TR(PyObject *self)
{
    Py_ssize_t base_size = Py_TYPE(self)->tp_base->tp_basicsize;
    return (tl_transport *)((char *)self + base_size);
}

static tl_state *
tr_state(PyObject *self)
{
    return tl_state_from_type(Py_TYPE(self));
}

/* loop.stats() counters.  The loop is NULL once the connection is lost. */
static inline void
tr_count_read(tl_transport *t, Py_ssize_t n)
{
    if (t->loop != NULL) {
        t->loop->n_bytes_read += (uint64_t)n;
    }
}

static inline void
tr_count_written(tl_transport *t, Py_ssize_t n)
{
    if (t->loop != NULL) {
        t->loop->n_bytes_written += (uint64_t)n;
    }
}

/* Drop the loop reference: the transport no longer counts as live. */
static inline void
tr_release_loop(tl_transport *t)
{
    if (t->loop != NULL) {
        t->loop->n_transports--;
        Py_CLEAR(t->loop);
    }
}

/* ---- write buffer --------------------------------------------------- */

/* The bytes of an item that wb_bytes counts.  Before 3.15 that is what
 * is left of it, except for a live bytearray, whose length may change
 * while it is queued: wb_size() adds its length when asked.  On 3.15
 * wb_bytes is asyncio's counter: an item adds what it had when queued. */
static inline Py_ssize_t
wb_counted(const wb_item *it)
{
#ifndef TL_WB_COUNTER
    if (it->live && PyByteArray_Check(it->obj)) {
        return 0;
    }
#endif
    return it->view.len - it->off;
}

/* A new item at the tail holding a strong reference to obj, or NULL with
 * an exception set.  Its view is for the caller to fill. */
static wb_item *
wb_append(tl_transport *t, PyObject *obj)
{
    if (t->wb_len == t->wb_cap) {
        Py_ssize_t cap = t->wb_cap ? t->wb_cap * 2 : 8;
        wb_item *n = PyMem_Malloc(cap * sizeof(*n));
        if (n == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        for (Py_ssize_t i = 0; i < t->wb_len; i++) {
            n[i] = t->wb[(t->wb_head + i) % t->wb_cap];
        }
        PyMem_Free(t->wb);
        t->wb = n;
        t->wb_head = 0;
        t->wb_cap = cap;
    }
    wb_item *it = &t->wb[(t->wb_head + t->wb_len) % t->wb_cap];
    it->obj = Py_NewRef(obj);
    it->off = 0;
    it->addr = NULL;
    it->live = 0;
    t->wb_len++;
    return it;
}

/* Queue obj with its export view (steals the export, also on failure),
 * off bytes of it already sent. */
static int
wb_push(tl_transport *t, PyObject *obj, Py_buffer *view, Py_ssize_t off)
{
    wb_item *it = wb_append(t, obj);
    if (it == NULL) {
        PyBuffer_Release(view);
        return -1;
    }
    it->view = *view;
    it->off = off;
    t->wb_bytes += wb_counted(it);
    return 0;
}

/* Queue an export of obj, which the queue owns (a copy, or our own
 * memoryview), off bytes of it already sent. */
static int
wb_push_object(tl_transport *t, PyObject *obj, Py_ssize_t off)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    return wb_push(t, obj, &view, off);
}

#ifdef TL_WB_LIVE
/* Queue obj itself, len bytes long now, without an export. */
static int
wb_push_live(tl_transport *t, PyObject *obj, Py_ssize_t len)
{
    wb_item *it = wb_append(t, obj);
    if (it == NULL) {
        return -1;
    }
    memset(&it->view, 0, sizeof(it->view));
    it->view.len = len;
    it->live = 1;
    t->wb_live++;
    t->wb_bytes += wb_counted(it);
    return 0;
}
#endif

/* Queue what write() did not send of data (view is data's export, off
 * bytes of it sent), keeping of data what asyncio keeps (TL_WB_LIVE).
 * Takes over the export in every case. */
static int
wb_push_write(tl_transport *t, PyObject *data, Py_buffer *view,
              Py_ssize_t off)
{
    if (PyBytes_Check(data)) {
        return wb_push(t, data, view, off);
    }
#ifdef TL_WB_LIVE
    if (off == 0) {
        /* Queued behind other data, or the send would block. */
        Py_ssize_t len = view->len;
        PyBuffer_Release(view);
        return wb_push_live(t, data, len);
    }
    if (!PyMemoryView_Check(data)) {
        return wb_push(t, data, view, off);   /* memoryview(data)[n:] */
    }
    /* memoryview(data)[n:] of a memoryview shares its buffer without
     * exporting it: the caller may still release() its own. */
    PyBuffer_Release(view);
    PyObject *obj = PyMemoryView_FromObject(data);
#else
    /* asyncio's bytearray: self._buffer.extend(data[n:]). */
    PyObject *obj = PyBytes_FromStringAndSize((char *)view->buf + off,
                                              view->len - off);
    PyBuffer_Release(view);
    off = 0;
#endif
    if (obj == NULL) {
        return -1;
    }
    int r = wb_push_object(t, obj, off);
    Py_DECREF(obj);
    return r;
}

/* Drop the head item.  The ring is consistent before the item's export
 * and object are let go (which may run Python code). */
static void
wb_pop(tl_transport *t)
{
    wb_item it = t->wb[t->wb_head];
    t->wb_head = (t->wb_head + 1) % t->wb_cap;
    t->wb_len--;
    if (it.live) {
        t->wb_live--;
    }
    else {
        PyBuffer_Release(&it.view);
    }
    Py_DECREF(it.obj);
    Py_XDECREF(it.addr);
}

static void
wb_clear(tl_transport *t)
{
    while (t->wb_len > 0) {
        wb_pop(t);
    }
    t->wb_bytes = 0;
}

/* asyncio's get_write_buffer_size() of a socket transport. */
static Py_ssize_t
wb_size(tl_transport *t)
{
    Py_ssize_t n = t->wb_bytes;
#ifndef TL_WB_COUNTER
    /* O(queued items) while bytearrays are queued live, as asyncio's
     * sum(map(len, self._buffer)) always is. */
    for (Py_ssize_t i = 0; t->wb_live > 0 && i < t->wb_len; i++) {
        wb_item *it = &t->wb[(t->wb_head + i) % t->wb_cap];
        if (it->live && PyByteArray_Check(it->obj)) {
            n += PyByteArray_GET_SIZE(it->obj);
        }
    }
#endif
    return n;
}

/* The queued bytes as iovecs, at most TL_IOV_MAX items and nheld_max live
 * ones.  A live item is exported into held[] for the send, as sendmsg()
 * exports it; the caller releases them.  Returns the count of items, or
 * -1 with an exception set (a memoryview released while queued: asyncio's
 * sendmsg() raises ValueError) and nothing held. */
static int
wb_gather(tl_transport *t, struct iovec *iov, Py_buffer *held,
          int nheld_max, int *nheld)
{
    int cnt = 0;
    *nheld = 0;
    for (Py_ssize_t i = 0; i < t->wb_len && cnt < TL_IOV_MAX; i++) {
        /* Re-entrancy: a bytearray subclass's __buffer__() may write to
         * us (and move the ring): find the item again each time. */
        wb_item *it = &t->wb[(t->wb_head + i) % t->wb_cap];
        Py_buffer *v = &it->view;
        if (it->live) {
            if (*nheld == nheld_max) {
                break;
            }
            v = &held[*nheld];
            if (PyObject_GetBuffer(it->obj, v, PyBUF_SIMPLE) < 0) {
                while (*nheld > 0) {
                    PyBuffer_Release(&held[--*nheld]);
                }
                return -1;
            }
            (*nheld)++;
        }
        iov[cnt].iov_base = (char *)v->buf + it->off;
        iov[cnt].iov_len = (size_t)(v->len - it->off);
        cnt++;
    }
    return cnt;
}

/* What is left of a live item after its first k bytes were sent, made
 * while the item is exported at io: asyncio's b[k:], a copy of a
 * bytearray's rest, a view of a memoryview's.  Fills rest (its object a
 * new reference) or returns -1 with an exception set. */
static int
wb_rest_of_live(wb_item *it, const struct iovec *io, Py_ssize_t k,
                wb_item *rest)
{
    PyObject *obj;
    Py_ssize_t off = 0;
    if (PyMemoryView_Check(it->obj)) {
        obj = PyMemoryView_FromObject(it->obj);
        off = k;
    }
    else {
        obj = PyBytes_FromStringAndSize((char *)io->iov_base + k,
                                        (Py_ssize_t)io->iov_len - k);
    }
    if (obj == NULL) {
        return -1;
    }
    if (PyObject_GetBuffer(obj, &rest->view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(obj);
        return -1;
    }
    rest->obj = obj;
    rest->off = off;
    rest->addr = NULL;
    rest->live = 0;
    return 0;
}

/* Account for n bytes sent of the cnt items sent as iov.  Items with
 * nothing left go, zero-length ones too (a bytearray emptied while
 * queued: asyncio 3.12+ keeps one at the head while nothing follows it,
 * and polls for ever).  The item sent in part advances, or, if live,
 * gives way to rest (made by wb_rest_of_live(); rest->obj NULL: none). */
static void
wb_consume(tl_transport *t, const struct iovec *iov, int cnt, Py_ssize_t n,
           wb_item *rest)
{
#ifdef TL_WB_COUNTER
    t->wb_bytes -= n;
#endif
    PyObject *partial = NULL;    /* borrowed: the live item sent in part */
    for (int i = 0; i < cnt && t->wb_len > 0; i++) {
        /* Re-entrancy: wb_pop() may run Python code, which may close us
         * (an empty ring) or write (at the tail). */
        wb_item *it = &t->wb[t->wb_head];
        Py_ssize_t len = (Py_ssize_t)iov[i].iov_len;
        if (len > n) {
            if (n > 0 && !it->live) {
#ifndef TL_WB_COUNTER
                t->wb_bytes -= n;
#endif
                it->off += n;
            }
            else if (n > 0) {
                partial = it->obj;
            }
            break;
        }
        n -= len;
#ifndef TL_WB_COUNTER
        t->wb_bytes -= wb_counted(it);
#endif
        wb_pop(t);
    }
    if (rest->obj == NULL) {
        return;
    }
    wb_item *it = &t->wb[t->wb_head];
    if (partial == NULL || t->wb_len == 0 || it->obj != partial) {
        PyBuffer_Release(&rest->view);
        Py_DECREF(rest->obj);
        return;
    }
    wb_item old = *it;
    *it = *rest;
#ifndef TL_WB_COUNTER
    t->wb_bytes += wb_counted(it) - wb_counted(&old);
#endif
    t->wb_live--;
    Py_DECREF(old.obj);
}

/* If the send of n bytes ended inside a live item, fill rest with what is
 * left of it (see wb_rest_of_live()).  Returns 0 (rest->obj NULL if there
 * is nothing to replace) or -1 with an exception set. */
static int
wb_rest_prepare(tl_transport *t, const struct iovec *iov, int cnt,
                Py_ssize_t n, wb_item *rest)
{
    rest->obj = NULL;
    for (int i = 0; i < cnt; i++) {
        Py_ssize_t len = (Py_ssize_t)iov[i].iov_len;
        if (len > n) {
            wb_item *it = &t->wb[(t->wb_head + i) % t->wb_cap];
            if (n == 0 || !it->live) {
                return 0;
            }
            return wb_rest_of_live(it, &iov[i], n, rest);
        }
        n -= len;
    }
    return 0;
}

/* What wb_send() returns when it sent nothing. */
#define TL_WB_AGAIN (-1)         /* would block: wait until writable */
#define TL_WB_OSERROR (-2)       /* writev() failed: errno says why */
#define TL_WB_RAISED (-3)        /* a Python exception is set */

/* One writev() of the head of the queue, which then advances past what
 * was sent.  Returns the count of bytes sent or a TL_WB_ code. */
static Py_ssize_t
wb_send(tl_transport *t)
{
    struct iovec iov[TL_IOV_MAX];
    Py_buffer *held = NULL;
    int nheld = 0, nheld_max = (int)Py_MIN(t->wb_live, TL_IOV_MAX);
    if (nheld_max > 0) {
        held = PyMem_Malloc(nheld_max * sizeof(*held));
        if (held == NULL) {
            PyErr_NoMemory();
            return TL_WB_RAISED;
        }
    }
    Py_ssize_t head = t->wb_head;
    int cnt = wb_gather(t, iov, held, nheld_max, &nheld);
    Py_ssize_t n = cnt < 0 ? TL_WB_RAISED : TL_WB_AGAIN;
    int err = 0;
    /* Re-entrancy: a __buffer__() that took items off the queue left iov
     * pointing at released buffers: then send nothing now. */
    if (cnt >= 0 && t->wb_head == head && t->wb_len >= cnt &&
        !t->conn_lost) {
        n = writev(t->fd, iov, cnt);
        err = errno;
        if (n < 0) {
            n = err == EAGAIN || err == EWOULDBLOCK || err == EINTR
                    ? TL_WB_AGAIN : TL_WB_OSERROR;
        }
    }
    wb_item rest = {NULL};
    int failed = n > 0 && wb_rest_prepare(t, iov, cnt, n, &rest) < 0;
    while (nheld > 0) {
        PyBuffer_Release(&held[--nheld]);
    }
    PyMem_Free(held);
    if (n < 0) {
        errno = err;
        return n;
    }
    tr_count_written(t, n);
    wb_consume(t, iov, cnt, n, &rest);
    return failed ? TL_WB_RAISED : n;
}

/* ---- watching ------------------------------------------------------- */

static int
tr_watch(PyObject *self, int writer, int on)
{
    tl_transport *t = TR(self);
    char *flag = writer ? &t->writing : &t->reading;
    if (!!*flag == !!on) {
        return 0;
    }
    if (t->loop == NULL || t->loop->uv == NULL) {
        *flag = 0;
        return 0;
    }
    HandleObject *h = NULL;
    if (on) {
        HandleObject **slot = writer ? &t->write_handle : &t->read_handle;
        if (*slot == NULL) {
            PyObject *m = PyObject_GetAttrString(
                self, writer ? "_write_ready" : "_read_ready");
            if (m == NULL) {
                return -1;
            }
            *slot = tl_handle_new(t->loop->st, t->loop, m, NULL, 0,
                                  t->context);
            Py_DECREF(m);
            if (*slot == NULL) {
                return -1;
            }
        }
        h = *slot;
    }
    if (tl_poll_set_handle(t->loop, t->fd, writer, h) < 0) {
        return -1;
    }
    *flag = (char)on;
    return 0;
}

/* ---- slow paths in Python ------------------------------------------ */

static int
call_helper(tl_state *st, PyObject *fn, PyObject *a, PyObject *b,
            PyObject *c)
{
    if (fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "tideloop transport helpers not installed");
        return -1;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(fn, a, b, c, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* _fatal_error(exc, message): logs or reports, then _force_close(exc).
 * Consumes the pending exception if exc is NULL. */
static int
tr_fatal(PyObject *self, PyObject *exc, const char *message)
{
    tl_state *st = tr_state(self);
    int own = 0;
    if (exc == NULL) {
        exc = tl_fetch_exception();
        own = 1;
    }
    PyObject *msg = PyUnicode_FromString(message);
    int r = -1;
    if (msg != NULL) {
        r = call_helper(st, st->tr_fatal_error, self, exc, msg);
        Py_DECREF(msg);
    }
    if (own) {
        Py_DECREF(exc);
    }
    return r;
}

static int tr_debug_log(PyObject *self, const char *fmt);

/* ---- connection teardown ------------------------------------------- */

static PyObject *
tr_call_soon_lost(PyObject *self, PyObject *exc)
{
    tl_transport *t = TR(self);
    PyObject *m = PyObject_GetAttrString(self, "_call_connection_lost");
    if (m == NULL) {
        return NULL;
    }
    PyObject *r = tl_call_soon_in(t->loop, m, exc ? exc : Py_None,
                                  t->context);
    Py_DECREF(m);
    return r;
}

static PyObject *
Transport_force_close(PyObject *self, PyObject *exc)
{
    tl_transport *t = TR(self);
    if (t->conn_lost) {
        Py_RETURN_NONE;
    }
    if (t->wb_len > 0) {
        wb_clear(t);
        if (tr_watch(self, 1, 0) < 0) {
            return NULL;
        }
    }
    if (!t->closing) {
        t->closing = 1;
        if (tr_watch(self, 0, 0) < 0) {
            return NULL;
        }
    }
    t->conn_lost++;
    PyObject *r = tr_call_soon_lost(self, exc == Py_None ? NULL : exc);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
Transport_abort(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return Transport_force_close(self, Py_None);
}

static PyObject *
Transport_call_connection_lost(PyObject *self, PyObject *exc)
{
    tl_transport *t = TR(self);
    tl_state *st = tr_state(self);
    PyObject *res = Py_None;
    Py_INCREF(res);
    if (t->protocol_connected && t->protocol != NULL) {
        Py_DECREF(res);
        res = PyObject_CallMethod(t->protocol, "connection_lost", "O", exc);
    }
    PyObject *saved = res == NULL ? tl_fetch_exception() : NULL;
    /* finally: close the socket and drop everything. */
    int ok = 1;
    if (t->sock != NULL) {
        PyObject *r = PyObject_CallMethod(t->sock, "close", NULL);
        if (r == NULL) {
            PyErr_Clear();
            ok = 0;
        }
        Py_XDECREF(r);
        Py_CLEAR(t->sock);
    }
    Py_CLEAR(t->protocol);
    if (PyObject_SetAttrString(self, "_loop", Py_None) < 0) {
        PyErr_Clear();
    }
    PyObject *server = t->server;
    t->server = NULL;
    if (server != NULL) {
        if (call_helper(st, st->tr_server_detach, server, self, NULL) < 0) {
            PyErr_Clear();
        }
        Py_DECREF(server);
    }
    Py_CLEAR(t->read_handle);
    Py_CLEAR(t->write_handle);
    tr_release_loop(t);
    if (saved != NULL) {
        tl_restore_exception(saved);
    }
    (void)ok;
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

static PyObject *
Transport_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (t->closing) {
        Py_RETURN_NONE;
    }
    t->closing = 1;
    if (tr_watch(self, 0, 0) < 0) {
        return NULL;
    }
    if (t->wb_len == 0) {
        t->conn_lost++;
        if (tr_watch(self, 1, 0) < 0) {
            return NULL;
        }
        PyObject *r = tr_call_soon_lost(self, NULL);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

/* ---- reading -------------------------------------------------------- */

static PyObject *
tr_on_eof(PyObject *self)
{
    tl_transport *t = TR(self);
    tl_state *st = tr_state(self);
    (void)st;
    if (tr_debug_log(self, "%r received EOF") < 0) {
        return NULL;
    }
    PyObject *keep = PyObject_CallMethod(t->protocol, "eof_received", NULL);
    if (keep == NULL) {
        if (tl_err_stops_loop()) {
            return NULL;
        }
        if (tr_fatal(self, NULL,
                     "Fatal error: protocol.eof_received() call failed.")
            < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    int k = PyObject_IsTrue(keep);
    Py_DECREF(keep);
    if (k < 0) {
        return NULL;
    }
    if (k) {
        if (tr_watch(self, 0, 0) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return Transport_close(self, NULL);
}

static PyObject *
Transport_read_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    /* asyncio cancels the reader handle when it stops reading; a read
     * queued before that must not run. */
    if (t->conn_lost || !t->reading || t->protocol == NULL) {
        Py_RETURN_NONE;
    }
    ssize_t n;
    if (t->buffered) {
        PyObject *buf = PyObject_CallMethod(t->protocol, "get_buffer", "i",
                                            -1);
        Py_buffer view;
        if (buf == NULL) {
            goto get_buffer_failed;
        }
        if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
            Py_DECREF(buf);
            goto get_buffer_failed;
        }
        if (view.len == 0) {
            PyBuffer_Release(&view);
            Py_DECREF(buf);
            PyErr_SetString(PyExc_RuntimeError,
                            "get_buffer() returned an empty buffer");
            goto get_buffer_failed;
        }
        do {
            n = recv(t->fd, view.buf, view.len, 0);
        } while (0);
        int err = errno;
        PyBuffer_Release(&view);
        Py_DECREF(buf);
        if (n < 0) {
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
                Py_RETURN_NONE;
            }
            tl_err_from_errno(err);
            if (tr_fatal(self, NULL, "Fatal read error on socket transport")
                < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        if (n == 0) {
            return tr_on_eof(self);
        }
        tr_count_read(t, n);
        PyObject *r = PyObject_CallMethod(t->protocol, "buffer_updated", "n",
                                          (Py_ssize_t)n);
        if (r == NULL) {
            if (tl_err_stops_loop()) {
                return NULL;
            }
            if (tr_fatal(self, NULL,
                         "Fatal error: protocol.buffer_updated() call "
                         "failed.") < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        Py_DECREF(r);
        Py_RETURN_NONE;

    get_buffer_failed:
        if (tl_err_stops_loop()) {
            return NULL;
        }
        if (tr_fatal(self, NULL,
                     "Fatal error: protocol.get_buffer() call failed.") < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }

    LoopObject *loop = t->loop;
    if (loop->rbuf == NULL) {
        loop->rbuf = PyMem_Malloc(TL_READ_SIZE);
        if (loop->rbuf == NULL) {
            return PyErr_NoMemory();
        }
    }
    n = recv(t->fd, loop->rbuf, TL_READ_SIZE, 0);
    if (n < 0) {
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
            Py_RETURN_NONE;
        }
        tl_err_from_errno(err);
        if (tr_fatal(self, NULL, "Fatal read error on socket transport") <
            0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (n == 0) {
        return tr_on_eof(self);
    }
    loop->n_bytes_read += (uint64_t)n;
    PyObject *data = PyBytes_FromStringAndSize(loop->rbuf, n);
    if (data == NULL) {
        return NULL;
    }
    PyObject *args[2] = {t->protocol, data};
    PyObject *r = PyObject_VectorcallMethod(
        loop->st->str_data_received, args,
        2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(data);
    if (r == NULL) {
        if (tl_err_stops_loop()) {
            return NULL;
        }
        if (tr_fatal(self, NULL,
                     "Fatal error: protocol.data_received() call failed.") <
            0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* ---- writing -------------------------------------------------------- */

/* _maybe_pause_protocol() / _maybe_resume_protocol(): write() calls the
 * protocol's pause_writing() from the caller's context, which is then
 * entered as the transport's. */
static int
tr_maybe(PyObject *self, const char *method)
{
    PyObject *ctx = TR(self)->context;
    int joined = tl_context_join(ctx);
    PyObject *r = PyObject_CallMethod(self, method, NULL);
    tl_context_leave(ctx, joined);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* Send what the buffer holds: asyncio's _write_sendmsg(). */
static PyObject *
tr_flush(PyObject *self)
{
    tl_transport *t = TR(self);
    if (t->conn_lost || t->wb_len == 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = wb_send(t);
    if (n == TL_WB_AGAIN) {
        Py_RETURN_NONE;
    }
    if (n < 0) {
        if (n == TL_WB_OSERROR) {
            tl_err_from_errno(errno);
        }
        else if (tl_err_stops_loop()) {
            return NULL;
        }
        PyObject *exc = tl_fetch_exception();
        if (tr_watch(self, 1, 0) < 0) {
            Py_DECREF(exc);
            return NULL;
        }
        wb_clear(t);
        if (tr_fatal(self, exc, "Fatal write error on socket transport") <
            0) {
            Py_DECREF(exc);
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
    if (tr_maybe(self, "_maybe_resume_protocol") < 0) {
        return NULL;
    }
    if (t->wb_len == 0) {
        if (tr_watch(self, 1, 0) < 0) {
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
        if (t->closing) {
            return Transport_call_connection_lost(self, Py_None);
        }
        if (t->eof && shutdown(t->fd, SHUT_WR) < 0) {
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
    if (!TR(self)->writing) {
        Py_RETURN_NONE;
    }
    return tr_flush(self);
}

/* The running Python's messages: 3.14 reworded the socket transport's
 * write() (not the datagram transport's sendto()). */
#define TL_NOT_BYTES_LIKE \
    "data argument must be a bytes-like object, not '%.200s'"
#if PY_VERSION_HEX >= 0x030E0000
#define TL_WRITE_NOT_BYTES_LIKE \
    "data argument must be a bytes, bytearray, or memoryview object, " \
    "not '%.200s'"
#else
#define TL_WRITE_NOT_BYTES_LIKE TL_NOT_BYTES_LIKE
#endif

static int
check_bytes_like(PyObject *data, const char *msg)
{
    if (PyBytes_Check(data) || PyByteArray_Check(data) ||
        PyMemoryView_Check(data)) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, msg, Py_TYPE(data)->tp_name);
    return -1;
}

static PyObject *
Transport_write(PyObject *self, PyObject *data)
{
    tl_transport *t = TR(self);
    if (check_bytes_like(data, TL_WRITE_NOT_BYTES_LIKE) < 0) {
        return NULL;
    }
    if (t->eof) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot call write() after write_eof()");
        return NULL;
    }
    if (t->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "unable to write; sendfile is in progress");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    if (t->conn_lost) {
        PyBuffer_Release(&view);
        if (t->conn_lost >= TL_LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
            tl_state *st = tr_state(self);
            if (call_helper(st, st->tr_warn_send, self, NULL, NULL) < 0) {
                return NULL;
            }
        }
        t->conn_lost++;
        Py_RETURN_NONE;
    }
    Py_ssize_t off = 0;
    if (t->wb_len == 0) {
        ssize_t n = send(t->fd, view.buf, view.len, 0);
        if (n < 0) {
            int err = errno;
            if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
                PyBuffer_Release(&view);
                tl_err_from_errno(err);
                if (tr_fatal(self, NULL,
                             "Fatal write error on socket transport") < 0) {
                    return NULL;
                }
                Py_RETURN_NONE;
            }
            n = 0;
        }
        tr_count_written(t, n);
        if (n == view.len) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
        off = n;
        if (tr_watch(self, 1, 1) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    if (wb_push_write(t, data, &view, off) < 0) {
        return NULL;
    }
    if (tr_maybe(self, "_maybe_pause_protocol") < 0) {
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
    if (t->eof) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot call writelines() after write_eof()");
        return NULL;
    }
    if (t->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "unable to writelines; sendfile is in progress");
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
        int r = wb_push(t, mv, &view, 0);
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
    if (t->wb_len > 0 && !t->conn_lost && tr_watch(self, 1, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
#endif
}

static PyObject *
Transport_write_eof(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (t->closing || t->eof) {
        Py_RETURN_NONE;
    }
    t->eof = 1;
    if (t->wb_len == 0 && shutdown(t->fd, SHUT_WR) < 0) {
        return tl_err_from_errno(errno);
    }
    Py_RETURN_NONE;
}

static PyObject *
Transport_can_write_eof(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_TRUE;
}

static PyObject *
Transport_get_write_buffer_size(PyObject *self,
                                PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(wb_size(TR(self)));
}

/* ---- reading state -------------------------------------------------- */

static int
tr_is_reading(tl_transport *t)
{
    return !t->closing && !t->paused;
}

static PyObject *
Transport_is_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(tr_is_reading(TR(self)));
}

static PyObject *
Transport_is_closing(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(TR(self)->closing);
}

static int
tr_debug_log(PyObject *self, const char *fmt)
{
    tl_transport *t = TR(self);
    if (t->loop == NULL || !t->loop->debug) {
        return 0;
    }
    tl_state *st = tr_state(self);
    PyObject *f = PyUnicode_FromString(fmt);
    if (f == NULL) {
        return -1;
    }
    int r = call_helper(st, st->tr_debug_log, self, f, NULL);
    Py_DECREF(f);
    return r;
}

static PyObject *
Transport_pause_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (!tr_is_reading(t)) {
        Py_RETURN_NONE;
    }
    t->paused = 1;
    if (tr_watch(self, 0, 0) < 0 ||
        tr_debug_log(self, "%r pauses reading") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Transport_resume_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (t->closing || !t->paused) {
        Py_RETURN_NONE;
    }
    t->paused = 0;
    if (tr_watch(self, 0, 1) < 0 ||
        tr_debug_log(self, "%r resumes reading") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The first watch, scheduled with call_soon() at creation like asyncio's
 * call_soon(self._add_reader, ...): only if still reading then. */
static PyObject *
Transport_start_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (tr_is_reading(t) && tr_watch(self, 0, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- protocol ------------------------------------------------------- */

static PyObject *
Transport_set_protocol(PyObject *self, PyObject *protocol)
{
    tl_transport *t = TR(self);
    tl_state *st = tr_state(self);
    int b = PyObject_IsInstance(protocol, st->BufferedProtocolType);
    if (b < 0) {
        return NULL;
    }
    t->buffered = (char)b;
    Py_INCREF(protocol);
    Py_XSETREF(t->protocol, protocol);
    t->protocol_connected = 1;
    Py_RETURN_NONE;
}

static PyObject *
Transport_get_protocol(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *p = TR(self)->protocol;
    if (p == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(p);
    return p;
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
    if (t->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "transport is closed");
        return NULL;
    }
    PyObject *f = PyObject_CallMethod((PyObject *)t->loop, "create_future",
                                      NULL);
    if (f == NULL) {
        return NULL;
    }
    t->empty_waiter = f;
    if (t->wb_len == 0) {
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

/* _new(loop, sock, protocol[, context]): the C part of construction;
 * the Python factory (tideloop/_transports.py) does the rest as asyncio's
 * __init__ does.  `context` (a contextvars.Context or None) is the one
 * the protocol's callbacks run in. */
static PyObject *
Transport_new_impl(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 && nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "_new(loop, sock, protocol[, context])");
        return NULL;
    }
    PyObject *ctx;
    if (tl_context_arg(nargs == 4 ? args[3] : NULL, &ctx) < 0) {
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    tl_state *st = tl_state_from_type(tp);
    if (st == NULL) {
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], st->LoopBaseType)) {
        PyErr_SetString(PyExc_TypeError, "a tideloop loop was expected");
        return NULL;
    }
    PyObject *fdo = PyObject_CallMethod(args[1], "fileno", NULL);
    if (fdo == NULL) {
        return NULL;
    }
    long fd = PyLong_AsLong(fdo);
    Py_DECREF(fdo);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return NULL;
    }
    PyObject *famo = PyObject_GetAttrString(args[1], "family");
    if (famo == NULL) {
        return NULL;
    }
    long family = PyLong_AsLong(famo);
    Py_DECREF(famo);
    if (family == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *self = tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    tl_transport *t = TR(self);
    t->family = (int)family;
    Py_INCREF(args[0]);
    t->loop = (LoopObject *)args[0];
    t->loop->n_transports++;
    Py_INCREF(args[1]);
    t->sock = args[1];
    t->fd = (int)fd;
    Py_XINCREF(ctx);
    t->context = ctx;
    PyObject *r = Transport_set_protocol(self, args[2]);
    if (r == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    Py_DECREF(r);
    return self;
}

static PyObject *
Transport_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyErr_Format(PyExc_TypeError, "cannot create '%s' instances directly",
                 type->tp_name);
    return NULL;
}

/* The base classes' __slots__ (asyncio's _extra, _loop, ...); pipe.c
 * uses them too. */
int
tl_base_slots_visit(PyObject *self, visitproc visit, void *arg)
{
    for (PyTypeObject *tp = Py_TYPE(self)->tp_base; tp != NULL;
         tp = tp->tp_base) {
        if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) || tp->tp_members == NULL) {
            continue;
        }
        for (PyMemberDef *m = tp->tp_members; m->name != NULL; m++) {
            if (m->type == T_OBJECT_EX) {
                Py_VISIT(*(PyObject **)((char *)self + m->offset));
            }
        }
    }
    return 0;
}

void
tl_base_slots_clear(PyObject *self)
{
    for (PyTypeObject *tp = Py_TYPE(self)->tp_base; tp != NULL;
         tp = tp->tp_base) {
        if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) || tp->tp_members == NULL) {
            continue;
        }
        for (PyMemberDef *m = tp->tp_members; m->name != NULL; m++) {
            if (m->type == T_OBJECT_EX) {
                Py_CLEAR(*(PyObject **)((char *)self + m->offset));
            }
        }
    }
}

static int
Transport_traverse(PyObject *self, visitproc visit, void *arg)
{
    tl_transport *t = TR(self);
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(t->loop);
    Py_VISIT(t->sock);
    Py_VISIT(t->protocol);
    Py_VISIT(t->server);
    Py_VISIT(t->empty_waiter);
    Py_VISIT(t->context);
    Py_VISIT(t->address);
    if (t->peer != NULL) {
        Py_VISIT(t->peer->addr);
    }
    Py_VISIT(t->read_handle);
    Py_VISIT(t->write_handle);
    Py_VISIT(t->dict);
    for (Py_ssize_t i = 0; i < t->wb_len; i++) {
        Py_VISIT(t->wb[(t->wb_head + i) % t->wb_cap].obj);
        Py_VISIT(t->wb[(t->wb_head + i) % t->wb_cap].addr);
    }
    return tl_base_slots_visit(self, visit, arg);
}

static int
Transport_clear(PyObject *self)
{
    tl_transport *t = TR(self);
    /* The watchers hold our handles, which hold bound methods of us: stop
     * watching first (needs the loop). */
    if (t->loop != NULL && t->loop->uv != NULL) {
        if (t->reading) {
            (void)tl_poll_set_handle(t->loop, t->fd, 0, NULL);
            t->reading = 0;
        }
        if (t->writing) {
            (void)tl_poll_set_handle(t->loop, t->fd, 1, NULL);
            t->writing = 0;
        }
    }
    wb_clear(t);
    Py_CLEAR(t->read_handle);
    Py_CLEAR(t->write_handle);
    Py_CLEAR(t->protocol);
    Py_CLEAR(t->server);
    Py_CLEAR(t->empty_waiter);
    Py_CLEAR(t->context);
    Py_CLEAR(t->address);
    if (t->peer != NULL) {
        dgram_peer *peer = t->peer;
        t->peer = NULL;
        Py_CLEAR(peer->addr);
        PyMem_Free(peer);
    }
    Py_CLEAR(t->sock);
    Py_CLEAR(t->dict);
    tr_release_loop(t);
    tl_base_slots_clear(self);
    return 0;
}

static void
Transport_finalize(PyObject *self)
{
    tl_transport *t = TR(self);
    if (t->sock == NULL) {
        return;
    }
    tl_state *st = tr_state(self);
    PyObject *exc = PyErr_Occurred() ? tl_fetch_exception() : NULL;
    if (st != NULL && call_helper(st, st->tr_finalize, self, NULL, NULL) < 0) {
        PyErr_WriteUnraisable(self);
    }
    if (exc != NULL) {
        tl_restore_exception(exc);
    }
}

static void
Transport_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc(self) < 0) {
        return;  /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    tl_transport *t = TR(self);
    if (t->weakreflist != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    Transport_clear(self);
    PyMem_Free(t->wb);
    t->wb = NULL;
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
Transport_repr(PyObject *self)
{
    tl_state *st = tr_state(self);
    if (st == NULL || st->tr_repr == NULL) {
        return PyUnicode_FromFormat("<%s>", Py_TYPE(self)->tp_name);
    }
    return PyObject_CallOneArg(st->tr_repr, self);
}

/* ---- attributes ----------------------------------------------------- */

#define TR_GET_OBJ(name, field)                                             \
    static PyObject *Transport_get_##name(PyObject *self, void *c)         \
    {                                                                       \
        PyObject *v = (PyObject *)TR(self)->field;                          \
        if (v == NULL) {                                                    \
            Py_RETURN_NONE;                                                 \
        }                                                                   \
        Py_INCREF(v);                                                       \
        return v;                                                           \
    }

TR_GET_OBJ(sock, sock)
TR_GET_OBJ(protocol_attr, protocol)
TR_GET_OBJ(server, server)
TR_GET_OBJ(empty_waiter, empty_waiter)
TR_GET_OBJ(context, context)

static int
Transport_set_server(PyObject *self, PyObject *v, void *c)
{
    tl_transport *t = TR(self);
    if (v == Py_None) {
        v = NULL;
    }
    Py_XINCREF(v);
    Py_XSETREF(t->server, v);
    return 0;
}

static PyObject *
Transport_get_sock_fd(PyObject *self, void *c)
{
    return PyLong_FromLong(TR(self)->fd);
}

static PyObject *
Transport_get_closing(PyObject *self, void *c)
{
    return PyBool_FromLong(TR(self)->closing);
}

static PyObject *
Transport_get_conn_lost(PyObject *self, void *c)
{
    return PyLong_FromLong(TR(self)->conn_lost);
}

static PyObject *
Transport_get_paused(PyObject *self, void *c)
{
    return PyBool_FromLong(TR(self)->paused);
}

static PyObject *
Transport_get_eof(PyObject *self, void *c)
{
    return PyBool_FromLong(TR(self)->eof);
}

static PyObject *
Transport_get_reading(PyObject *self, void *c)
{
    return PyBool_FromLong(TR(self)->reading);
}

static PyObject *
Transport_get_writing(PyObject *self, void *c)
{
    return PyBool_FromLong(TR(self)->writing);
}

static PyObject *
Transport_get_protocol_connected(PyObject *self, void *c)
{
    return PyBool_FromLong(TR(self)->protocol_connected);
}

static PyGetSetDef Transport_getset[] = {
    {"_sock", (getter)Transport_get_sock, NULL, NULL, NULL},
    {"_sock_fd", (getter)Transport_get_sock_fd, NULL, NULL, NULL},
    {"_protocol", (getter)Transport_get_protocol_attr, NULL, NULL, NULL},
    {"_server", (getter)Transport_get_server, (setter)Transport_set_server,
     NULL, NULL},
    {"_empty_waiter", (getter)Transport_get_empty_waiter, NULL, NULL, NULL},
    {"_context", (getter)Transport_get_context, NULL, NULL, NULL},
    {"_closing", (getter)Transport_get_closing, NULL, NULL, NULL},
    {"_conn_lost", (getter)Transport_get_conn_lost, NULL, NULL, NULL},
    {"_paused", (getter)Transport_get_paused, NULL, NULL, NULL},
    {"_eof", (getter)Transport_get_eof, NULL, NULL, NULL},
    {"_reading_watched", (getter)Transport_get_reading, NULL, NULL, NULL},
    {"_writing_watched", (getter)Transport_get_writing, NULL, NULL, NULL},
    {"_protocol_connected", (getter)Transport_get_protocol_connected, NULL,
     NULL, NULL},
    {NULL}};

static PyMethodDef Transport_methods[] = {
    {"write", (PyCFunction)Transport_write, METH_O,
     "Write some data bytes to the transport (never blocks)."},
    {"writelines", (PyCFunction)Transport_writelines, METH_O,
     "Write a list (or any iterable) of data bytes to the transport."},
    {"write_eof", (PyCFunction)Transport_write_eof, METH_NOARGS,
     "Close the write end after flushing buffered data."},
    {"can_write_eof", (PyCFunction)Transport_can_write_eof, METH_NOARGS,
     NULL},
    {"close", (PyCFunction)Transport_close, METH_NOARGS,
     "Close the transport after flushing buffered data."},
    {"abort", (PyCFunction)Transport_abort, METH_NOARGS,
     "Close the transport immediately, dropping buffered data."},
    {"is_closing", (PyCFunction)Transport_is_closing, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)Transport_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)Transport_pause_reading, METH_NOARGS,
     NULL},
    {"resume_reading", (PyCFunction)Transport_resume_reading, METH_NOARGS,
     NULL},
    {"set_protocol", (PyCFunction)Transport_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)Transport_get_protocol, METH_NOARGS,
     NULL},
    {"get_write_buffer_size", (PyCFunction)Transport_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)Transport_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)Transport_write_ready, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)Transport_force_close, METH_O, NULL},
    {"_call_connection_lost", (PyCFunction)Transport_call_connection_lost,
     METH_O, NULL},
    {"_start_reading", (PyCFunction)Transport_start_reading, METH_NOARGS,
     NULL},
    {"_make_empty_waiter", (PyCFunction)Transport_make_empty_waiter,
     METH_NOARGS, NULL},
    {"_reset_empty_waiter", (PyCFunction)Transport_reset_empty_waiter,
     METH_NOARGS, NULL},
    {"_new", (PyCFunction)(void (*)(void))Transport_new_impl,
     METH_FASTCALL | METH_CLASS, NULL},
    {NULL}};

/* ---- DatagramTransport --------------------------------------------- */

/* The address of a received datagram, as socket.recvfrom() returns it
 * (CPython's makesockaddr) for the families handled here. */
static PyObject *
dgram_make_addr(struct sockaddr_storage *ss, socklen_t len)
{
    if (len == 0) {
        Py_RETURN_NONE;
    }
    char host[NI_MAXHOST];
    switch (ss->ss_family) {
    case AF_INET: {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (getnameinfo((struct sockaddr *)ss, len, host, sizeof(host), NULL,
                        0, NI_NUMERICHOST) != 0) {
            break;
        }
        return Py_BuildValue("(si)", host, ntohs(a->sin_port));
    }
    case AF_INET6: {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        if (getnameinfo((struct sockaddr *)ss, len, host, sizeof(host), NULL,
                        0, NI_NUMERICHOST) != 0) {
            break;
        }
        return Py_BuildValue("(siII)", host, ntohs(a->sin6_port),
                             ntohl(a->sin6_flowinfo), a->sin6_scope_id);
    }
    case AF_UNIX: {
        struct sockaddr_un *a = (struct sockaddr_un *)ss;
        size_t n = len - offsetof(struct sockaddr_un, sun_path);
        if (len > offsetof(struct sockaddr_un, sun_path) &&
            a->sun_path[0] == 0) {
            return PyBytes_FromStringAndSize(a->sun_path, n);
        }
        return PyUnicode_DecodeFSDefault(a->sun_path);
    }
    }
    PyErr_SetString(PyExc_OSError, "unsupported address family");
    return NULL;
}

/* Calls protocol.error_received(exc) with the pending OSError. */
static PyObject *
dgram_error_received(tl_transport *t)
{
    PyObject *exc = tl_fetch_exception();
    /* From sendto() too: in the transport's context. */
    int joined = tl_context_join(t->context);
    PyObject *r = PyObject_CallMethod(t->protocol, "error_received", "O",
                                      exc);
    tl_context_leave(t->context, joined);
    Py_DECREF(exc);
    return r;
}

static PyObject *
Dgram_read_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (t->conn_lost || !t->reading || t->protocol == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *data, *addr;
    if (t->family == AF_INET || t->family == AF_INET6 ||
        t->family == AF_UNIX) {
        LoopObject *loop = t->loop;
        if (loop->rbuf == NULL &&
            (loop->rbuf = PyMem_Malloc(TL_READ_SIZE)) == NULL) {
            return PyErr_NoMemory();
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        memset(&ss, 0, sizeof(ss));
        ssize_t n = recvfrom(t->fd, loop->rbuf, TL_READ_SIZE, 0,
                             (struct sockaddr *)&ss, &sl);
        if (n < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
                Py_RETURN_NONE;
            }
            tl_err_from_errno(err);
            return dgram_error_received(t);
        }
        loop->n_bytes_read += (uint64_t)n;
        data = PyBytes_FromStringAndSize(loop->rbuf, n);
        if (data == NULL) {
            return NULL;
        }
        dgram_peer *peer = t->peer;
        if (peer != NULL && peer->len == sl &&
            memcmp(&peer->ss, &ss, sl) == 0) {
            addr = peer->addr;
            Py_INCREF(addr);
        }
        else {
            addr = dgram_make_addr(&ss, sl);
            if (addr == NULL) {
                Py_DECREF(data);
                return NULL;
            }
            if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
                if (peer == NULL) {
                    peer = t->peer = PyMem_Calloc(1, sizeof(dgram_peer));
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
        PyObject *r = PyObject_CallMethod(t->sock, "recvfrom", "i",
                                          TL_READ_SIZE);
        if (r == NULL) {
            if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
                PyErr_ExceptionMatches(PyExc_InterruptedError)) {
                PyErr_Clear();
                Py_RETURN_NONE;
            }
            if (PyErr_ExceptionMatches(PyExc_OSError)) {
                return dgram_error_received(t);
            }
            if (tl_err_stops_loop()) {
                return NULL;
            }
            if (tr_fatal(self, NULL,
                         "Fatal read error on datagram transport") < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        if (!PyArg_ParseTuple(r, "OO", &data, &addr)) {
            Py_DECREF(r);
            return NULL;
        }
        Py_INCREF(data);
        Py_INCREF(addr);
        Py_DECREF(r);
        if (PyBytes_Check(data)) {
            tr_count_read(t, PyBytes_GET_SIZE(data));
        }
    }
    PyObject *cargs[3] = {t->protocol, data, addr};
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
dgram_send_one(tl_transport *t, PyObject *data, Py_buffer *view,
               PyObject *addr)
{
    /* Sent here with sendto(2): to the connected peer, or to the address
     * object datagram_received() was given, whose sockaddr is known.
     * Any other address goes through socket.sendto(), which parses it. */
    const struct sockaddr *to = NULL;
    socklen_t tolen = 0;
    dgram_peer *peer = t->peer;
    if (!t->has_peer && addr != NULL && peer != NULL && addr == peer->addr) {
        /* socket.sendto() would raise this audit event. */
        if (PySys_Audit("socket.sendto", "OO", t->sock, addr) < 0) {
            return -1;
        }
        to = (const struct sockaddr *)&peer->ss;
        tolen = peer->len;
    }
    if (t->has_peer || to != NULL) {
        if (sendto(t->fd, view->buf, view->len, 0, to, tolen) < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
                return 0;
            }
            tl_err_from_errno(err);
            return -1;
        }
        tr_count_written(t, view->len);
        return 1;
    }
    PyObject *r = PyObject_CallMethod(t->sock, "sendto", "OO", data,
                                      addr ? addr : Py_None);
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
    tr_count_written(t, view->len);
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

static PyObject *
Dgram_sendto(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data", "addr", NULL};
    PyObject *data, *addr = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:sendto", kwlist,
                                     &data, &addr)) {
        return NULL;
    }
    tl_transport *t = TR(self);
    if (check_bytes_like(data, TL_NOT_BYTES_LIKE) < 0) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
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
    if (t->conn_lost && t->address != NULL) {
        PyBuffer_Release(&view);
        if (t->conn_lost >= TL_LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
            tl_state *st = tr_state(self);
            if (call_helper(st, st->tr_warn_send, self, NULL, NULL) < 0) {
                return NULL;
            }
        }
        t->conn_lost++;
        Py_RETURN_NONE;
    }
    if (t->wb_len == 0) {
        int r = dgram_send_one(t, data, &view, addr);
        if (r == 1) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
        if (r < 0) {
            PyBuffer_Release(&view);
            if (PyErr_ExceptionMatches(PyExc_OSError)) {
                return dgram_error_received(t);
            }
            if (tl_err_stops_loop()) {
                return NULL;
            }
            if (tr_fatal(self, NULL,
                         "Fatal write error on datagram transport") < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        if (tr_watch(self, 1, 1) < 0) {
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
    int r = wb_push_object(t, copy, 0);
    Py_DECREF(copy);
    if (r < 0) {
        return NULL;
    }
    wb_item *it = &t->wb[(t->wb_head + t->wb_len - 1) % t->wb_cap];
    Py_INCREF(addr);
    it->addr = addr;
    t->wb_bytes += TL_DGRAM_HEADER;
    if (tr_maybe(self, "_maybe_pause_protocol") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Dgram_sendto_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_transport *t = TR(self);
    if (!t->writing) {
        Py_RETURN_NONE;
    }
    while (t->wb_len > 0) {
        wb_item *it = &t->wb[t->wb_head];
        int r = dgram_send_one(t, it->obj, &it->view, it->addr);
        if (r == 0) {
            break;  /* try again later */
        }
        t->wb_bytes -= it->view.len + TL_DGRAM_HEADER_SENT;
        wb_pop(t);
        if (r < 0) {
            if (PyErr_ExceptionMatches(PyExc_OSError)) {
                return dgram_error_received(t);
            }
            if (tl_err_stops_loop()) {
                return NULL;
            }
            if (tr_fatal(self, NULL,
                         "Fatal write error on datagram transport") < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    if (tr_maybe(self, "_maybe_resume_protocol") < 0) {
        return NULL;
    }
    if (t->wb_len == 0) {
        if (tr_watch(self, 1, 0) < 0) {
            return NULL;
        }
        if (t->closing) {
            return Transport_call_connection_lost(self, Py_None);
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
    {"_sock", (getter)Transport_get_sock, NULL, NULL, NULL},
    {"_sock_fd", (getter)Transport_get_sock_fd, NULL, NULL, NULL},
    {"_protocol", (getter)Transport_get_protocol_attr, NULL, NULL, NULL},
    {"_closing", (getter)Transport_get_closing, NULL, NULL, NULL},
    {"_conn_lost", (getter)Transport_get_conn_lost, NULL, NULL, NULL},
    {"_paused", (getter)Transport_get_paused, NULL, NULL, NULL},
    {"_address", (getter)Dgram_get_address, NULL, NULL, NULL},
    {"_context", (getter)Transport_get_context, NULL, NULL, NULL},
    {"_server", (getter)Transport_get_server, (setter)Transport_set_server,
     NULL, NULL},
    {"_reading_watched", (getter)Transport_get_reading, NULL, NULL, NULL},
    {"_writing_watched", (getter)Transport_get_writing, NULL, NULL, NULL},
    {"_protocol_connected", (getter)Transport_get_protocol_connected, NULL,
     NULL, NULL},
    {NULL}};

static PyMethodDef Dgram_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))Dgram_sendto,
     METH_VARARGS | METH_KEYWORDS,
     "Send data to addr (or the connected address); never blocks."},
    {"close", (PyCFunction)Transport_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)Transport_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)Transport_is_closing, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)Transport_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)Transport_pause_reading, METH_NOARGS,
     NULL},
    {"resume_reading", (PyCFunction)Transport_resume_reading, METH_NOARGS,
     NULL},
    {"set_protocol", (PyCFunction)Transport_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)Transport_get_protocol, METH_NOARGS,
     NULL},
    {"get_write_buffer_size", (PyCFunction)Transport_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)Dgram_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)Dgram_sendto_ready, METH_NOARGS, NULL},
    {"_sendto_ready", (PyCFunction)Dgram_sendto_ready, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)Transport_force_close, METH_O, NULL},
    {"_call_connection_lost", (PyCFunction)Transport_call_connection_lost,
     METH_O, NULL},
    {"_start_reading", (PyCFunction)Transport_start_reading, METH_NOARGS,
     NULL},
    {"_dgram_setup", (PyCFunction)Dgram_setup, METH_VARARGS, NULL},
    {"_new", (PyCFunction)(void (*)(void))Transport_new_impl,
     METH_FASTCALL | METH_CLASS, NULL},
    {NULL}};

/* Build one transport type over `bases` (asyncio classes); our struct
 * goes after the best base's layout. */
static PyTypeObject *
make_transport_type(PyObject *module, const char *name, const char *short_name,
                    PyObject *bases, PyMethodDef *methods,
                    PyGetSetDef *getset, const char *doc)
{
    PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(bases, 0);
    Py_ssize_t base_size = base->tp_basicsize;
    PyMemberDef members[] = {
        {"__weaklistoffset__", T_PYSSIZET,
         base_size + offsetof(tl_transport, weakreflist), READONLY},
        {"__dictoffset__", T_PYSSIZET,
         base_size + offsetof(tl_transport, dict), READONLY},
        {NULL}};
    PyType_Slot slots[] = {
        {Py_tp_new, Transport_tp_new},
        {Py_tp_dealloc, Transport_dealloc},
        {Py_tp_traverse, Transport_traverse},
        {Py_tp_clear, Transport_clear},
        {Py_tp_finalize, Transport_finalize},
        {Py_tp_repr, Transport_repr},
        {Py_tp_methods, methods},
        {Py_tp_getset, getset},
        {Py_tp_members, members},
        {Py_tp_doc, (void *)doc},
        {0, NULL}};
    PyType_Spec spec = {
        .name = name,
        .basicsize = (int)(base_size + sizeof(tl_transport)),
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
        .slots = slots,
    };
    PyTypeObject *tp =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, bases);
    if (tp == NULL) {
        return NULL;
    }
    tp->tp_name = short_name;
    PyObject *maxsize = PyLong_FromLong(TL_READ_SIZE);
    if (maxsize == NULL ||
        PyObject_SetAttrString((PyObject *)tp, "max_size", maxsize) < 0 ||
        PyModule_AddObjectRef(module, short_name, (PyObject *)tp) < 0) {
        Py_XDECREF(maxsize);
        Py_DECREF(tp);
        return NULL;
    }
    Py_DECREF(maxsize);
    return tp;
}

int
tl_transport_init_types(PyObject *module, tl_state *st)
{
    PyObject *transports = PyImport_ImportModule("asyncio.transports");
    PyObject *protocols = PyImport_ImportModule("asyncio.protocols");
    PyObject *mixin = NULL, *dgbase = NULL, *bases = NULL;
    int rc = -1;
    if (transports == NULL || protocols == NULL) {
        goto done;
    }
    mixin = PyObject_GetAttrString(transports, "_FlowControlMixin");
    dgbase = PyObject_GetAttrString(transports, "DatagramTransport");
    st->BufferedProtocolType =
        PyObject_GetAttrString(protocols, "BufferedProtocol");
    if (mixin == NULL || dgbase == NULL || st->BufferedProtocolType == NULL) {
        goto done;
    }
    bases = PyTuple_Pack(1, mixin);
    if (bases == NULL) {
        goto done;
    }
    st->SocketTransportType = make_transport_type(
        module, "tideloop._core.SocketTransport", "SocketTransport", bases,
        Transport_methods, Transport_getset,
        "A socket transport (TCP or Unix) in C.");
    if (st->SocketTransportType == NULL ||
        PyObject_SetAttrString((PyObject *)st->SocketTransportType,
                               "_start_tls_compatible", Py_True) < 0) {
        goto done;
    }
    Py_DECREF(bases);
    /* A datagram transport is an asyncio.DatagramTransport (uvloop's is
     * not, its users filed bugs). */
    bases = PyTuple_Pack(2, mixin, dgbase);
    if (bases == NULL) {
        goto done;
    }
    st->DatagramTransportType = make_transport_type(
        module, "tideloop._core.DatagramTransport", "DatagramTransport",
        bases, Dgram_methods, Dgram_getset,
        "A datagram transport (UDP or Unix datagram) in C.");
    if (st->DatagramTransportType == NULL) {
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(transports);
    Py_XDECREF(protocols);
    Py_XDECREF(mixin);
    Py_XDECREF(dgbase);
    Py_XDECREF(bases);
    return rc;
}
