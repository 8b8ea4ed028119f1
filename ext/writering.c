/* writering.c: the stream core's write ring and its writev() path.
 *
 * What a transport's write() could not send at once waits here, in
 * order: a ring of items holding strong references to what is queued and
 * the exports (Py_buffer) of it, sent with one writev() of up to
 * TL_IOV_MAX iovecs when the fd is writable.  stream.h says what each
 * field is and which bytes the ring counts (tl_wb_counted()); stream.c
 * decides when to send and what an error means. */
#include "stream.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* A new item at the tail holding a strong reference to obj, or NULL with
 * an exception set.  Its view is for the caller to fill. */
static tl_wb_item *
wb_append(tl_stream *s, PyObject *obj)
{
    if (s->wb_len == s->wb_cap) {
        Py_ssize_t cap = s->wb_cap ? s->wb_cap * 2 : 8;
        tl_wb_item *n = PyMem_Malloc(cap * sizeof(*n));
        if (n == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        for (Py_ssize_t i = 0; i < s->wb_len; i++) {
            n[i] = s->wb[(s->wb_head + i) % s->wb_cap];
        }
        PyMem_Free(s->wb);
        s->wb = n;
        s->wb_head = 0;
        s->wb_cap = cap;
    }
    tl_wb_item *it = &s->wb[(s->wb_head + s->wb_len) % s->wb_cap];
    it->obj = Py_NewRef(obj);
    it->off = 0;
    it->addr = NULL;
    it->live = 0;
    s->wb_len++;
    return it;
}

/* Queue obj with its export view (steals the export, also on failure),
 * off bytes of it already sent. */
int
tl_wb_push(tl_stream *s, PyObject *obj, Py_buffer *view, Py_ssize_t off)
{
    tl_wb_item *it = wb_append(s, obj);
    if (it == NULL) {
        PyBuffer_Release(view);
        return -1;
    }
    it->view = *view;
    it->off = off;
    s->wb_bytes += tl_wb_counted(it);
    return 0;
}

/* Queue an export of obj, which the queue owns (a copy, or our own
 * memoryview), off bytes of it already sent. */
int
tl_wb_push_object(tl_stream *s, PyObject *obj, Py_ssize_t off)
{
    Py_buffer view;
    if (tl_stream_view(obj, &view) < 0) {
        return -1;
    }
    return tl_wb_push(s, obj, &view, off);
}

#ifdef TL_WB_LIVE
/* Queue obj itself, len bytes long now, without an export. */
static int
wb_push_live(tl_stream *s, PyObject *obj, Py_ssize_t len)
{
    tl_wb_item *it = wb_append(s, obj);
    if (it == NULL) {
        return -1;
    }
    memset(&it->view, 0, sizeof(it->view));
    it->view.len = len;
    it->live = 1;
    s->wb_live++;
    s->wb_bytes += tl_wb_counted(it);
    return 0;
}
#endif

/* Queue what write() did not send of data (view is data's export, off
 * bytes of it sent), keeping of data what asyncio keeps (TL_WB_LIVE).
 * Takes over the export in every case. */
int
tl_wb_push_write(tl_stream *s, PyObject *data, Py_buffer *view,
              Py_ssize_t off)
{
    if (PyBytes_Check(data)) {
        return tl_wb_push(s, data, view, off);
    }
#ifdef TL_WB_LIVE
    if (off == 0) {
        /* Queued behind other data, or the send would block. */
        Py_ssize_t len = view->len;
        PyBuffer_Release(view);
        return wb_push_live(s, data, len);
    }
    if (!PyMemoryView_Check(data)) {
        return tl_wb_push(s, data, view, off);   /* memoryview(data)[n:] */
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
    int r = tl_wb_push_object(s, obj, off);
    Py_DECREF(obj);
    return r;
}

/* Drop the head item.  The ring is consistent before the item's export
 * and object are let go (which may run Python code). */
void
tl_wb_pop(tl_stream *s)
{
    tl_wb_item it = s->wb[s->wb_head];
    s->wb_head = (s->wb_head + 1) % s->wb_cap;
    s->wb_len--;
    if (it.live) {
        s->wb_live--;
    }
    else {
        PyBuffer_Release(&it.view);
    }
    Py_DECREF(it.obj);
    Py_XDECREF(it.addr);
}

void
tl_wb_clear(tl_stream *s)
{
    while (s->wb_len > 0) {
        tl_wb_pop(s);
    }
    s->wb_bytes = 0;
}

/* asyncio's get_write_buffer_size() of a socket transport. */
Py_ssize_t
tl_wb_size(tl_stream *s)
{
    Py_ssize_t n = s->wb_bytes;
#ifndef TL_WB_COUNTER
    /* O(queued items) while bytearrays are queued live, as asyncio's
     * sum(map(len, self._buffer)) always is. */
    for (Py_ssize_t i = 0; s->wb_live > 0 && i < s->wb_len; i++) {
        tl_wb_item *it = &s->wb[(s->wb_head + i) % s->wb_cap];
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
wb_gather(tl_stream *s, struct iovec *iov, Py_buffer *held,
          int nheld_max, int *nheld)
{
    int cnt = 0;
    *nheld = 0;
    for (Py_ssize_t i = 0; i < s->wb_len && cnt < TL_IOV_MAX; i++) {
        /* Re-entrancy: a bytearray subclass's __buffer__() may write to
         * us (and move the ring): find the item again each time. */
        tl_wb_item *it = &s->wb[(s->wb_head + i) % s->wb_cap];
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
wb_rest_of_live(tl_wb_item *it, const struct iovec *io, Py_ssize_t k,
                tl_wb_item *rest)
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
wb_consume(tl_stream *s, const struct iovec *iov, int cnt, Py_ssize_t n,
           tl_wb_item *rest)
{
#ifdef TL_WB_COUNTER
    s->wb_bytes -= n;
#endif
    PyObject *partial = NULL;    /* borrowed: the live item sent in part */
    for (int i = 0; i < cnt && s->wb_len > 0; i++) {
        /* Re-entrancy: tl_wb_pop() may run Python code, which may close us
         * (an empty ring) or write (at the tail). */
        tl_wb_item *it = &s->wb[s->wb_head];
        Py_ssize_t len = (Py_ssize_t)iov[i].iov_len;
        if (len > n) {
            if (n > 0 && !it->live) {
#ifndef TL_WB_COUNTER
                s->wb_bytes -= n;
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
        s->wb_bytes -= tl_wb_counted(it);
#endif
        tl_wb_pop(s);
    }
    if (rest->obj == NULL) {
        return;
    }
    tl_wb_item *it = &s->wb[s->wb_head];
    if (partial == NULL || s->wb_len == 0 || it->obj != partial) {
        PyBuffer_Release(&rest->view);
        Py_DECREF(rest->obj);
        return;
    }
    tl_wb_item old = *it;
    *it = *rest;
#ifndef TL_WB_COUNTER
    s->wb_bytes += tl_wb_counted(it) - tl_wb_counted(&old);
#endif
    s->wb_live--;
    Py_DECREF(old.obj);
}

/* If the send of n bytes ended inside a live item, fill rest with what is
 * left of it (see wb_rest_of_live()).  Returns 0 (rest->obj NULL if there
 * is nothing to replace) or -1 with an exception set. */
static int
wb_rest_prepare(tl_stream *s, const struct iovec *iov, int cnt,
                Py_ssize_t n, tl_wb_item *rest)
{
    rest->obj = NULL;
    for (int i = 0; i < cnt; i++) {
        Py_ssize_t len = (Py_ssize_t)iov[i].iov_len;
        if (len > n) {
            tl_wb_item *it = &s->wb[(s->wb_head + i) % s->wb_cap];
            if (n == 0 || !it->live) {
                return 0;
            }
            return wb_rest_of_live(it, &iov[i], n, rest);
        }
        n -= len;
    }
    return 0;
}

Py_ssize_t
tl_wb_send(tl_stream *s)
{
    struct iovec iov[TL_IOV_MAX];
    Py_buffer *held = NULL;
    int nheld = 0, nheld_max = (int)Py_MIN(s->wb_live, TL_IOV_MAX);
    if (nheld_max > 0) {
        held = PyMem_Malloc(nheld_max * sizeof(*held));
        if (held == NULL) {
            PyErr_NoMemory();
            return TL_WB_RAISED;
        }
    }
    Py_ssize_t head = s->wb_head;
    int cnt = wb_gather(s, iov, held, nheld_max, &nheld);
    Py_ssize_t n = cnt < 0 ? TL_WB_RAISED : TL_WB_AGAIN;
    int err = 0;
    /* Re-entrancy: a __buffer__() or a signal handler that took items
     * off the queue left iov pointing at released buffers: then send
     * nothing now. */
    while (cnt >= 0 && s->wb_head == head && s->wb_len >= cnt &&
           !s->conn_lost) {
        n = writev(s->fd, iov, cnt);
        err = errno;
        if (n >= 0) {
            break;
        }
        n = err == EAGAIN || err == EWOULDBLOCK ? TL_WB_AGAIN
                                                  : TL_WB_OSERROR;
        if (err != EINTR) {
            break;
        }
        /* As os.write() and socket.send() do (PEP 475). */
        n = TL_WB_AGAIN;
        if (PyErr_CheckSignals() < 0) {
            n = TL_WB_RAISED;
            break;
        }
    }
    tl_wb_item rest = {NULL};
    int failed = n > 0 && wb_rest_prepare(s, iov, cnt, n, &rest) < 0;
    while (nheld > 0) {
        PyBuffer_Release(&held[--nheld]);
    }
    PyMem_Free(held);
    if (n < 0) {
        errno = err;
        return n;
    }
    tl_stream_count_written(s, n);
    wb_consume(s, iov, cnt, n, &rest);
    return failed ? TL_WB_RAISED : n;
}
