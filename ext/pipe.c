/* Pipe transports: asyncio's _UnixReadPipeTransport and
 * _UnixWritePipeTransport in C.
 *
 * As with SocketTransport (transport.c), the types' real bases are
 * asyncio's classes: ReadPipeTransport extends asyncio.ReadTransport and
 * WritePipeTransport extends (_FlowControlMixin, WriteTransport), as
 * asyncio's classes do, so isinstance() checks, get_extra_info() and the
 * write buffer limits are asyncio's own.  Our fields live after the base's
 * layout.
 *
 * The fd is watched through the loop's fd watchers (poll.c) with reusable
 * handles; readiness queues the handle on the ready queue, which calls
 * _read_ready()/_write_ready() here, so protocol callbacks run in the same
 * order relative to other callbacks as in asyncio.  A write pipe is also
 * watched for reading, as asyncio does: the fd becomes "readable" (an
 * error or hang-up) when the reader goes away.
 *
 * Construction (the mode check with asyncio's messages, O_NONBLOCK) and the
 * rare paths (fatal error reporting, logging, the unclosed warning, repr)
 * are Python helpers in tideloop/_pipes.py. */
#include "tideloop.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <structmember.h>
#include <sys/uio.h>
#include <unistd.h>

#define TL_PIPE_READ_SIZE (256 * 1024)   /* asyncio's max_size */
#define TL_PIPE_DIRECT (64 * 1024)     /* read into the bytes object */
#define TL_PIPE_SMALL (8 * 1024)       /* ... unless the last read was small */
#define TL_PIPE_IOV_MAX 1024
#define TL_LOG_THRESHOLD_FOR_CONNLOST_WRITES 5

/* logging levels passed to the log helper */
#define TL_LOG_DEBUG 10
#define TL_LOG_INFO 20
#define TL_LOG_WARNING 30

/* One chunk of the write buffer: an immutable bytes object (the caller's
 * own bytes, or a copy of a mutable buffer, since asyncio copies into its
 * bytearray) and how much of it was written already. */
typedef struct {
    PyObject *data;              /* strong; exact bytes */
    Py_ssize_t off;
} pipe_item;

typedef struct {
    LoopObject *loop;            /* strong; NULL once connection lost */
    PyObject *pipe;              /* strong; NULL once closed */
    PyObject *protocol;          /* strong or NULL */
    /* The contextvars.Context every protocol callback runs in (strong or
     * NULL): a copy of the one current at creation, or the subprocess's
     * (tideloop/_pipes.py).  Our handles and the callbacks we schedule
     * run in it. */
    PyObject *context;
    HandleObject *read_handle;   /* reusable; strong or NULL */
    HandleObject *write_handle;
    pipe_item *wb;               /* write buffer: a ring of chunks */
    Py_ssize_t wb_head, wb_len, wb_cap;
    Py_ssize_t wb_bytes;         /* len(asyncio's _buffer) */
    int fd;
    int conn_lost;
    Py_ssize_t last_read;        /* bytes of the last read (pipe_read) */
    char closing;
    char paused;
    char reading;                /* read handle installed */
    char writing;                /* write handle installed */
    char is_write;               /* a WritePipeTransport */
    PyObject *weakreflist;
    PyObject *dict;
} tl_pipe;

static void Pipe_dealloc(PyObject *self);

/* Our fields follow the layout of the asyncio base of our own type (a
 * Python subclass adds its own fields after ours). */
static inline tl_pipe *
PP(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    while (tp->tp_dealloc != Pipe_dealloc) {
        tp = tp->tp_base;
    }
    return (tl_pipe *)((char *)self + tp->tp_base->tp_basicsize);
}

static tl_state *
pipe_state(PyObject *self)
{
    return tl_state_from_type(Py_TYPE(self));
}

/* ---- write buffer --------------------------------------------------- */

/* Steals `data` (an exact bytes object). */
static int
wb_push(tl_pipe *t, PyObject *data, Py_ssize_t off)
{
    if (t->wb_len == t->wb_cap) {
        Py_ssize_t cap = t->wb_cap ? t->wb_cap * 2 : 8;
        pipe_item *n = PyMem_Malloc(cap * sizeof(*n));
        if (n == NULL) {
            Py_DECREF(data);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < t->wb_len; i++) {
            n[i] = t->wb[(t->wb_head + i) % t->wb_cap];
        }
        PyMem_Free(t->wb);
        t->wb = n;
        t->wb_head = 0;
        t->wb_cap = cap;
    }
    pipe_item *it = &t->wb[(t->wb_head + t->wb_len) % t->wb_cap];
    it->data = data;
    it->off = off;
    t->wb_len++;
    t->wb_bytes += PyBytes_GET_SIZE(data) - off;
    return 0;
}

static void
wb_pop(tl_pipe *t)
{
    pipe_item *it = &t->wb[t->wb_head];
    PyObject *data = it->data;
    t->wb_bytes -= PyBytes_GET_SIZE(data) - it->off;
    it->data = NULL;
    t->wb_head = (t->wb_head + 1) % t->wb_cap;
    t->wb_len--;
    Py_DECREF(data);
}

static void
wb_clear(tl_pipe *t)
{
    while (t->wb_len > 0) {
        wb_pop(t);
    }
    t->wb_bytes = 0;
}

static void
wb_consume(tl_pipe *t, Py_ssize_t n)
{
    while (n > 0 && t->wb_len > 0) {
        pipe_item *it = &t->wb[t->wb_head];
        Py_ssize_t left = PyBytes_GET_SIZE(it->data) - it->off;
        if (left <= n) {
            n -= left;
            wb_pop(t);
        }
        else {
            it->off += n;
            t->wb_bytes -= n;
            n = 0;
        }
    }
}

/* ---- small helpers -------------------------------------------------- */

static int
call_helper(PyObject *fn, PyObject *a, PyObject *b, PyObject *c)
{
    if (fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "tideloop pipe helpers not installed");
        return -1;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(fn, a, b, c, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* logger.log(level, msg, self) when the loop is in debug mode (or always
 * with `always`), as asyncio's `if self._loop.get_debug(): logger...`. */
static int
pipe_log(PyObject *self, int level, const char *msg, int always)
{
    tl_pipe *t = PP(self);
    if (!always && (t->loop == NULL || !t->loop->debug)) {
        return 0;
    }
    tl_state *st = pipe_state(self);
    if (st == NULL) {
        return -1;
    }
    PyObject *lv = PyLong_FromLong(level);
    PyObject *m = PyUnicode_FromString(msg);
    int r = -1;
    if (lv != NULL && m != NULL) {
        r = call_helper(st->pipe_log, lv, m, always ? Py_None : self);
    }
    Py_XDECREF(lv);
    Py_XDECREF(m);
    return r;
}

/* _fatal_error(exc, message): reports (or logs) and closes.  Consumes the
 * pending exception if exc is NULL. */
static int
pipe_fatal(PyObject *self, PyObject *exc, const char *message)
{
    tl_state *st = pipe_state(self);
    int own = 0;
    if (exc == NULL) {
        exc = tl_fetch_exception();
        own = 1;
    }
    int r = -1;
    PyObject *msg = st ? PyUnicode_FromString(message) : NULL;
    if (msg != NULL) {
        r = call_helper(st->pipe_fatal_error, self, exc, msg);
        Py_DECREF(msg);
    }
    if (own) {
        Py_DECREF(exc);
    }
    return r;
}

/* ---- watching ------------------------------------------------------- */

/* Install (on) or remove our reusable handle for one side of the fd.
 * Adding on a closed loop raises as asyncio's _add_reader() does;
 * removing is then a no-op, as its _remove_reader(). */
static int
pipe_watch(PyObject *self, int writer, int on)
{
    tl_pipe *t = PP(self);
    char *flag = writer ? &t->writing : &t->reading;
    if (!on && !*flag) {
        return 0;
    }
    if (t->loop == NULL || t->loop->closed || t->loop->uv == NULL) {
        *flag = 0;
        if (on && t->loop != NULL) {
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
            return -1;
        }
        return 0;
    }
    HandleObject *h = NULL;
    if (on) {
        HandleObject **slot = writer ? &t->write_handle : &t->read_handle;
        /* loop.remove_reader(fd) by the user cancels our handle (a pipe's
         * fd is not guarded as a socket transport's is): make a new one. */
        if (*slot != NULL && (*slot)->cancelled) {
            Py_CLEAR(*slot);
        }
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
    /* Installing again is cheap (no epoll_ctl when nothing changes) and
     * puts our handle back if the user replaced it meanwhile. */
    if (tl_poll_set_handle(t->loop, t->fd, writer, h) < 0) {
        return -1;
    }
    *flag = (char)on;
    return 0;
}

/* ---- teardown (both types) ------------------------------------------ */

/* loop.call_soon(self._call_connection_lost, exc); returns None. */
static PyObject *
pipe_call_soon_lost(PyObject *self, PyObject *exc)
{
    tl_pipe *t = PP(self);
    PyObject *m = PyObject_GetAttrString(self, "_call_connection_lost");
    if (m == NULL) {
        return NULL;
    }
    PyObject *r = tl_call_soon_in(t->loop, m, exc, t->context);
    Py_DECREF(m);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* try: protocol.connection_lost(exc)
 * finally: pipe.close(); drop pipe, protocol and loop.
 * Both calls go through None once cleared, raising what asyncio raises
 * when called a second time. */
static PyObject *
Pipe_call_connection_lost(PyObject *self, PyObject *exc)
{
    tl_pipe *t = PP(self);
    PyObject *proto = t->protocol ? t->protocol : Py_None;
    Py_INCREF(proto);
    PyObject *res = PyObject_CallMethod(proto, "connection_lost", "O", exc);
    Py_DECREF(proto);
    PyObject *saved = res == NULL ? tl_fetch_exception() : NULL;
    Py_XDECREF(res);

    /* asyncio leaves the fd watched when a watch was (re)installed after
     * the close (3.9/3.10 read pipes, a write pipe closed in
     * connection_made()); the fd number is then reused by the next pipe
     * while the stale registration remains.  Stop watching here. */
    if (pipe_watch(self, 0, 0) < 0 || pipe_watch(self, 1, 0) < 0) {
        PyErr_Clear();
    }

    PyObject *pipe = t->pipe ? t->pipe : Py_None;
    Py_INCREF(pipe);
    PyObject *r = PyObject_CallMethod(pipe, "close", NULL);
    Py_DECREF(pipe);
    if (r == NULL) {
        /* An exception in `finally` replaces the first, chained to it. */
        tl_err_chain(saved);
        return NULL;
    }
    Py_DECREF(r);
    Py_CLEAR(t->pipe);
    Py_CLEAR(t->protocol);
    if (t->is_write &&
        PyObject_SetAttrString(self, "_loop", Py_None) < 0) {
        /* The _FlowControlMixin slot: cannot fail. */
        PyErr_Clear();
    }
    Py_CLEAR(t->read_handle);
    Py_CLEAR(t->write_handle);
    Py_CLEAR(t->loop);
    if (saved != NULL) {
        tl_restore_exception(saved);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- ReadPipeTransport ---------------------------------------------- */

static int
read_is_reading(tl_pipe *t)
{
    return !t->paused && !t->closing;
}

/* _close(exc): stop reading and schedule connection_lost(exc). */
static PyObject *
ReadPipe_close_impl(PyObject *self, PyObject *exc)
{
    tl_pipe *t = PP(self);
    t->closing = 1;
    if (t->loop == NULL) {
        return tl_err_none_has_no("_remove_reader");
    }
    if (pipe_watch(self, 0, 0) < 0) {
        return NULL;
    }
    return pipe_call_soon_lost(self, exc);
}

static PyObject *
ReadPipe_close_method(PyObject *self, PyObject *args)
{
    PyObject *exc = Py_None;
    if (!PyArg_UnpackTuple(args, "_close", 1, 1, &exc)) {
        return NULL;
    }
    return ReadPipe_close_impl(self, exc);
}

/* One read of up to max_size bytes, as asyncio's os.read(fd, max_size).
 * Returns n > 0 with *out a new bytes object, 0 at EOF, -1 with errno
 * set, or -2 with an exception set.
 *
 * After a big read the next one goes straight into the bytes object that
 * data_received() gets for its first TL_PIPE_DIRECT bytes (a pipe holds
 * 64 KiB by default, so usually all of it) and into the loop's buffer for
 * the rest: no copy in the common case, one in the rare bigger read.
 * After a small read it goes into the loop's buffer and is copied out:
 * for a few bytes a copy costs less than allocating 64 KiB and shrinking
 * it. */
static ssize_t
pipe_read(tl_pipe *t, char *rbuf, PyObject **out)
{
    *out = NULL;
    PyObject *data = NULL;
    struct iovec iov[2];
    int cnt = 1;
    iov[0].iov_base = rbuf;
    iov[0].iov_len = TL_PIPE_READ_SIZE;
    if (t->last_read > TL_PIPE_SMALL) {
        data = PyBytes_FromStringAndSize(NULL, TL_PIPE_DIRECT);
        if (data == NULL) {
            return -2;
        }
        iov[0].iov_base = PyBytes_AS_STRING(data);
        iov[0].iov_len = TL_PIPE_DIRECT;
        iov[1].iov_base = rbuf;
        iov[1].iov_len = TL_PIPE_READ_SIZE - TL_PIPE_DIRECT;
        cnt = 2;
    }
    ssize_t n;
    for (;;) {
        n = readv(t->fd, iov, cnt);
        if (n >= 0 || errno != EINTR) {
            break;
        }
        /* os.read() retries after running the signal handlers. */
        if (PyErr_CheckSignals() < 0) {
            Py_XDECREF(data);
            return -2;
        }
    }
    if (n <= 0) {
        int err = errno;
        Py_XDECREF(data);
        errno = err;
        return n < 0 ? -1 : 0;
    }
    t->last_read = n;
    if (t->loop != NULL) {
        t->loop->n_bytes_read += (uint64_t)n;     /* loop.stats() */
    }
    if (data == NULL) {
        data = PyBytes_FromStringAndSize(rbuf, n);
        if (data == NULL) {
            return -2;
        }
    }
    else if (n > TL_PIPE_DIRECT) {
        PyObject *big = PyBytes_FromStringAndSize(NULL, n);
        if (big == NULL) {
            Py_DECREF(data);
            return -2;
        }
        memcpy(PyBytes_AS_STRING(big), PyBytes_AS_STRING(data),
               TL_PIPE_DIRECT);
        memcpy(PyBytes_AS_STRING(big) + TL_PIPE_DIRECT, rbuf,
               n - TL_PIPE_DIRECT);
        Py_SETREF(data, big);
    }
    else if (n < TL_PIPE_DIRECT && _PyBytes_Resize(&data, n) < 0) {
        return -2;
    }
    *out = data;
    return n;
}

static PyObject *
ReadPipe_read_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    /* asyncio cancels its reader handle when it stops reading; a call
     * queued before that must not run. */
    if (!t->reading || t->loop == NULL) {
        Py_RETURN_NONE;
    }
    LoopObject *loop = t->loop;
    if (loop->rbuf == NULL &&
        (loop->rbuf = PyMem_Malloc(TL_PIPE_READ_SIZE)) == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *data;
    ssize_t n = pipe_read(t, loop->rbuf, &data);
    if (n == -2) {
        return NULL;
    }
    if (n < 0) {
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            Py_RETURN_NONE;
        }
        tl_err_from_errno(err);
        if (pipe_fatal(self, NULL, "Fatal read error on pipe transport") <
            0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (n > 0) {
        /* Exceptions of data_received() reach the handle's report, as in
         * asyncio (which does not catch them here). */
        PyObject *args[2] = {t->protocol ? t->protocol : Py_None, data};
        PyObject *r = PyObject_VectorcallMethod(
            loop->st->str_data_received, args,
            2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(data);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    /* EOF. */
    if (pipe_log(self, TL_LOG_INFO, "%r was closed by peer", 0) < 0) {
        return NULL;
    }
    t->closing = 1;
    if (pipe_watch(self, 0, 0) < 0) {
        return NULL;
    }
    PyObject *proto = t->protocol ? t->protocol : Py_None;
    PyObject *eof = PyObject_GetAttrString(proto, "eof_received");
    if (eof == NULL) {
        return NULL;
    }
    PyObject *r = tl_call_soon_in(t->loop, eof, NULL, t->context);
    Py_DECREF(eof);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    return pipe_call_soon_lost(self, Py_None);
}

#if PY_VERSION_HEX >= 0x030B0000
static PyObject *
ReadPipe_is_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(read_is_reading(PP(self)));
}
#endif

static PyObject *
ReadPipe_pause_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    if (!read_is_reading(t)) {
        Py_RETURN_NONE;
    }
    t->paused = 1;
    if (pipe_watch(self, 0, 0) < 0 ||
        pipe_log(self, TL_LOG_DEBUG, "%r pauses reading", 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
ReadPipe_resume_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    if (t->closing || !t->paused) {
        Py_RETURN_NONE;
    }
    t->paused = 0;
    if (pipe_watch(self, 0, 1) < 0 ||
        pipe_log(self, TL_LOG_DEBUG, "%r resumes reading", 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The first watch, scheduled with call_soon() at creation so that reading
 * starts after connection_made().  3.11+ skip it when the protocol paused
 * or closed the transport meanwhile; 3.9/3.10 install the reader anyway
 * (their call_soon(self._loop._add_reader, ...)). */
static PyObject *
ReadPipe_start_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
#if PY_VERSION_HEX >= 0x030B0000
    if (!read_is_reading(t)) {
        Py_RETURN_NONE;
    }
#endif
    if (t->loop == NULL) {
        return tl_err_none_has_no("_add_reader");
    }
    if (pipe_watch(self, 0, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
ReadPipe_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    if (PP(self)->closing) {
        Py_RETURN_NONE;
    }
    return ReadPipe_close_impl(self, Py_None);
}

/* ---- WritePipeTransport --------------------------------------------- */

/* _close(exc=None): drop the buffer, stop watching, schedule
 * connection_lost(exc).  Like asyncio's, not guarded against a second
 * call. */
static PyObject *
WritePipe_close_impl(PyObject *self, PyObject *exc)
{
    tl_pipe *t = PP(self);
    t->closing = 1;
    if (t->wb_len > 0) {
        if (t->loop == NULL) {
            return tl_err_none_has_no("_remove_writer");
        }
        if (pipe_watch(self, 1, 0) < 0) {
            return NULL;
        }
    }
    wb_clear(t);
    if (t->loop == NULL) {
        return tl_err_none_has_no("_remove_reader");
    }
    if (pipe_watch(self, 0, 0) < 0) {
        return NULL;
    }
    return pipe_call_soon_lost(self, exc);
}

static PyObject *
WritePipe_close_method(PyObject *self, PyObject *args)
{
    PyObject *exc = Py_None;
    if (!PyArg_UnpackTuple(args, "_close", 0, 1, &exc)) {
        return NULL;
    }
    return WritePipe_close_impl(self, exc);
}

/* The pipe became readable: the reader went away. */
static PyObject *
WritePipe_read_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    if (!t->reading || t->loop == NULL) {
        Py_RETURN_NONE;
    }
    if (pipe_log(self, TL_LOG_INFO, "%r was closed by peer", 0) < 0) {
        return NULL;
    }
    if (t->wb_len > 0) {
        PyObject *exc = PyObject_CallNoArgs(PyExc_BrokenPipeError);
        if (exc == NULL) {
            return NULL;
        }
        PyObject *r = WritePipe_close_impl(self, exc);
        Py_DECREF(exc);
        return r;
    }
    return WritePipe_close_impl(self, Py_None);
}

/* write(2) that retries EINTR after running the signal handlers, as
 * os.write() does.  Returns the count, -1 with errno set, or -2 with a
 * Python exception set (a signal handler raised). */
static Py_ssize_t
pipe_write_fd(int fd, const char *buf, Py_ssize_t len)
{
    for (;;) {
        ssize_t n = write(fd, buf, (size_t)len);
        if (n >= 0) {
            return n;
        }
        if (errno != EINTR) {
            return -1;
        }
        if (PyErr_CheckSignals() < 0) {
            return -2;
        }
    }
}

static int pipe_write_warn(PyObject *self);

/* write() of a memoryview that has no contiguous buffer (the pending
 * exception): asyncio's own checks run first, then its os.write() fails
 * (a fatal write error) or, with data buffered, its bytearray += fails. */
static PyObject *
write_unbufferable(PyObject *self, PyObject *data)
{
    tl_pipe *t = PP(self);
    if (tl_err_stops_loop()) {
        return NULL;
    }
    PyObject *exc = tl_fetch_exception();
    Py_ssize_t len = PyObject_Size(data);
    if (len <= 0) {
        Py_DECREF(exc);
        if (len < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (t->conn_lost || t->closing) {
        Py_DECREF(exc);
        if (pipe_write_warn(self) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (t->wb_len > 0) {
        Py_DECREF(exc);
        PyErr_Format(PyExc_TypeError, "can't concat %.100s to bytearray",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    t->conn_lost++;
    int r = pipe_fatal(self, exc, "Fatal write error on pipe transport");
    Py_DECREF(exc);
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* A write after the connection was lost or closed: dropped, counted, and
 * from the LOG_THRESHOLD_FOR_CONNLOST_WRITES-th on logged. */
static int
pipe_write_warn(PyObject *self)
{
    tl_pipe *t = PP(self);
    if (t->conn_lost >= TL_LOG_THRESHOLD_FOR_CONNLOST_WRITES &&
        pipe_log(self, TL_LOG_WARNING,
                 "pipe closed by peer or os.write(pipe, data) raised "
                 "exception.", 1) < 0) {
        return -1;
    }
    t->conn_lost++;
    return 0;
}

static PyObject *
WritePipe_write(PyObject *self, PyObject *data)
{
    tl_pipe *t = PP(self);
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) &&
        !PyMemoryView_Check(data)) {
        /* asyncio: assert isinstance(data, (bytes, bytearray,
         * memoryview)), repr(data) */
        PyObject *r = PyObject_Repr(data);
        if (r != NULL) {
            PyErr_SetObject(PyExc_AssertionError, r);
            Py_DECREF(r);
        }
        return NULL;
    }
    Py_buffer view;
    const char *buf;
    Py_ssize_t len;
    int have_view = 0;
    if (PyBytes_Check(data)) {
        buf = PyBytes_AS_STRING(data);
        len = PyBytes_GET_SIZE(data);
    }
    else {
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            return write_unbufferable(self, data);
        }
        have_view = 1;
        buf = view.buf;
        len = view.len;
    }
    PyObject *chunk = NULL;
    if (len == 0) {
        goto done;
    }
    if (t->conn_lost || t->closing) {
        if (pipe_write_warn(self) < 0) {
            goto error;
        }
        goto done;
    }
    Py_ssize_t off = 0;
    if (t->wb_len == 0) {
        /* Attempt to write it right away first. */
        Py_ssize_t n = pipe_write_fd(t->fd, buf, len);
        if (n > 0 && t->loop != NULL) {
            t->loop->n_bytes_written += (uint64_t)n;  /* loop.stats() */
        }
        if (n < 0) {
            if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                n = 0;
            }
            else {
                if (n == -1) {
                    tl_err_from_errno(errno);
                }
                else if (tl_err_stops_loop()) {
                    goto error;
                }
                if (have_view) {
                    PyBuffer_Release(&view);
                    have_view = 0;
                }
                t->conn_lost++;
                if (pipe_fatal(self, NULL,
                               "Fatal write error on pipe transport") < 0) {
                    return NULL;
                }
                Py_RETURN_NONE;
            }
        }
        if (n == len) {
            goto done;
        }
        off = n;
        if (pipe_watch(self, 1, 1) < 0) {
            goto error;
        }
    }
    /* Buffer the rest.  asyncio copies into its bytearray; an exact bytes
     * object is immutable, so holding it is the same and saves the copy. */
    if (PyBytes_CheckExact(data)) {
        Py_INCREF(data);
        chunk = data;
    }
    else {
        chunk = PyBytes_FromStringAndSize(buf + off, len - off);
        if (chunk == NULL) {
            goto error;
        }
        off = 0;
    }
    if (have_view) {
        PyBuffer_Release(&view);
        have_view = 0;
    }
    if (wb_push(t, chunk, off) < 0) {
        return NULL;
    }
    /* pause_writing() in the transport's context, not the caller's. */
    int joined = tl_context_join(t->context);
    PyObject *r = PyObject_CallMethod(self, "_maybe_pause_protocol", NULL);
    tl_context_leave(t->context, joined);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;

done:
    if (have_view) {
        PyBuffer_Release(&view);
    }
    Py_RETURN_NONE;
error:
    if (have_view) {
        PyBuffer_Release(&view);
    }
    return NULL;
}

static PyObject *
WritePipe_write_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    /* A call queued before the writer was removed must not run. */
    if (!t->writing || t->loop == NULL) {
        Py_RETURN_NONE;
    }
    if (t->wb_len == 0) {
        PyErr_SetString(PyExc_AssertionError, "Data should not be empty");
        return NULL;
    }
    /* asyncio writes its whole buffer with one os.write(); a vectored
     * write of the chunks is the same for the kernel. */
    struct iovec iov[TL_PIPE_IOV_MAX];
    int cnt = 0;
    for (Py_ssize_t i = 0; i < t->wb_len && cnt < TL_PIPE_IOV_MAX; i++) {
        pipe_item *it = &t->wb[(t->wb_head + i) % t->wb_cap];
        iov[cnt].iov_base = PyBytes_AS_STRING(it->data) + it->off;
        iov[cnt].iov_len = (size_t)(PyBytes_GET_SIZE(it->data) - it->off);
        cnt++;
    }
    ssize_t n;
    for (;;) {
        n = writev(t->fd, iov, cnt);
        if (n >= 0 || errno != EINTR) {
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            if (tl_err_stops_loop()) {
                return NULL;
            }
            n = -2;
            break;
        }
    }
    if (n > 0 && t->loop != NULL) {
        t->loop->n_bytes_written += (uint64_t)n;  /* loop.stats() */
    }
    if (n < 0) {
        if (n == -1) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                Py_RETURN_NONE;
            }
            tl_err_from_errno(err);
        }
        PyObject *exc = tl_fetch_exception();
        wb_clear(t);
        t->conn_lost++;
        /* Remove the writer here: _fatal_error() doesn't, the buffer
         * being empty. */
        if (pipe_watch(self, 1, 0) < 0) {
            Py_DECREF(exc);
            return NULL;
        }
        int r = pipe_fatal(self, exc, "Fatal write error on pipe transport");
        Py_DECREF(exc);
        if (r < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (n == t->wb_bytes) {
        wb_clear(t);
        if (pipe_watch(self, 1, 0) < 0) {
            return NULL;
        }
        /* Re-entrancy: resume_writing() may write (and buffer) again. */
        PyObject *r = PyObject_CallMethod(self, "_maybe_resume_protocol",
                                          NULL);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
        if (t->closing) {
            if (t->loop == NULL) {
                return tl_err_none_has_no("_remove_reader");
            }
            if (pipe_watch(self, 0, 0) < 0) {
                return NULL;
            }
            return Pipe_call_connection_lost(self, Py_None);
        }
        Py_RETURN_NONE;
    }
    wb_consume(t, n);
    Py_RETURN_NONE;
}

static PyObject *
WritePipe_write_eof(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    if (t->closing) {
        Py_RETURN_NONE;
    }
    if (t->pipe == NULL) {
        /* asyncio: assert self._pipe */
        PyErr_SetNone(PyExc_AssertionError);
        return NULL;
    }
    t->closing = 1;
    if (t->wb_len == 0) {
        if (t->loop == NULL) {
            return tl_err_none_has_no("_remove_reader");
        }
        if (pipe_watch(self, 0, 0) < 0) {
            return NULL;
        }
        return pipe_call_soon_lost(self, Py_None);
    }
    Py_RETURN_NONE;
}

static PyObject *
WritePipe_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    if (t->pipe != NULL && !t->closing) {
        /* write_eof is all that is needed to close the write pipe. */
        return WritePipe_write_eof(self, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *
WritePipe_abort(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return WritePipe_close_impl(self, Py_None);
}

static PyObject *
WritePipe_can_write_eof(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_TRUE;
}

static PyObject *
WritePipe_get_write_buffer_size(PyObject *self,
                                PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(PP(self)->wb_bytes);
}

/* Watch for the reader going away, scheduled with call_soon() at
 * creation (pipes and sockets only, as asyncio). */
static PyObject *
WritePipe_start_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    if (t->loop == NULL) {
        return tl_err_none_has_no("_add_reader");
    }
    if (pipe_watch(self, 0, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- common methods ------------------------------------------------- */

static PyObject *
Pipe_is_closing(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(PP(self)->closing);
}

static PyObject *
Pipe_set_protocol(PyObject *self, PyObject *protocol)
{
    Py_INCREF(protocol);
    Py_XSETREF(PP(self)->protocol, protocol);
    Py_RETURN_NONE;
}

static PyObject *
Pipe_get_protocol(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *p = PP(self)->protocol;
    return Py_NewRef(p ? p : Py_None);
}

/* _new(loop, pipe, fileno, protocol[, context]): the C part of
 * construction, after tideloop/_pipes.py checked the file's mode and made
 * it non-blocking.  `context` (a contextvars.Context or None) is the one
 * the protocol's callbacks run in. */
static PyObject *
Pipe_new_impl(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 && nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "_new(loop, pipe, fileno, protocol[, context])");
        return NULL;
    }
    PyObject *ctx;
    if (tl_context_arg(nargs == 5 ? args[4] : NULL, &ctx) < 0) {
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
    long fd = PyLong_AsLong(args[2]);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return NULL;
    }
    PyObject *self = tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    tl_pipe *t = PP(self);
    t->loop = (LoopObject *)Py_NewRef(args[0]);
    t->pipe = Py_NewRef(args[1]);
    t->fd = (int)fd;
    t->protocol = Py_NewRef(args[3]);
    Py_XINCREF(ctx);
    t->context = ctx;
    t->is_write = st->WritePipeType != NULL &&
                  PyType_IsSubtype(tp, st->WritePipeType);
    return self;
}

static PyObject *
Pipe_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyErr_Format(PyExc_TypeError, "cannot create '%s' instances directly",
                 type->tp_name);
    return NULL;
}

static int
Pipe_traverse(PyObject *self, visitproc visit, void *arg)
{
    tl_pipe *t = PP(self);
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(t->loop);
    Py_VISIT(t->pipe);
    Py_VISIT(t->protocol);
    Py_VISIT(t->context);
    Py_VISIT(t->read_handle);
    Py_VISIT(t->write_handle);
    Py_VISIT(t->dict);
    for (Py_ssize_t i = 0; i < t->wb_len; i++) {
        Py_VISIT(t->wb[(t->wb_head + i) % t->wb_cap].data);
    }
    return tl_base_slots_visit(self, visit, arg);
}

static int
Pipe_clear(PyObject *self)
{
    tl_pipe *t = PP(self);
    /* The watchers hold our handles, which hold bound methods of us: stop
     * watching first (needs the loop). */
    if (t->loop != NULL && t->loop->uv != NULL) {
        if (t->reading) {
            (void)tl_poll_set_handle(t->loop, t->fd, 0, NULL);
        }
        if (t->writing) {
            (void)tl_poll_set_handle(t->loop, t->fd, 1, NULL);
        }
    }
    t->reading = t->writing = 0;
    wb_clear(t);
    Py_CLEAR(t->read_handle);
    Py_CLEAR(t->write_handle);
    Py_CLEAR(t->protocol);
    Py_CLEAR(t->context);
    Py_CLEAR(t->pipe);
    Py_CLEAR(t->dict);
    Py_CLEAR(t->loop);
    tl_base_slots_clear(self);
    return 0;
}

/* asyncio's __del__: warn about an unclosed transport and close the
 * pipe. */
static void
Pipe_finalize(PyObject *self)
{
    tl_pipe *t = PP(self);
    if (t->pipe == NULL) {
        return;
    }
    PyObject *exc = PyErr_Occurred() ? tl_fetch_exception() : NULL;
    tl_state *st = pipe_state(self);
    if (st == NULL || call_helper(st->pipe_finalize, self, NULL, NULL) < 0) {
        PyErr_WriteUnraisable(self);
    }
    if (exc != NULL) {
        tl_restore_exception(exc);
    }
}

static void
Pipe_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc(self) < 0) {
        return;  /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    tl_pipe *t = PP(self);
    if (t->weakreflist != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    Pipe_clear(self);
    PyMem_Free(t->wb);
    t->wb = NULL;
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
Pipe_repr(PyObject *self)
{
    tl_state *st = pipe_state(self);
    if (st == NULL || st->pipe_repr == NULL) {
        PyErr_Clear();
        return PyUnicode_FromFormat("<%s>", Py_TYPE(self)->tp_name);
    }
    return PyObject_CallOneArg(st->pipe_repr, self);
}

/* ---- attributes ----------------------------------------------------- */

static PyObject *
Pipe_get_pipe(PyObject *self, void *c)
{
    PyObject *p = PP(self)->pipe;
    return Py_NewRef(p ? p : Py_None);
}

static PyObject *
Pipe_get_context(PyObject *self, void *c)
{
    PyObject *ctx = PP(self)->context;
    return Py_NewRef(ctx ? ctx : Py_None);
}

/* Tests and programs set _pipe = None to silence the unclosed warning of
 * a transport left open (CPython's test_unclosed_pipe_transport). */
static int
Pipe_set_pipe(PyObject *self, PyObject *v, void *c)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _pipe");
        return -1;
    }
    Py_XSETREF(PP(self)->pipe, v == Py_None ? NULL : Py_NewRef(v));
    return 0;
}

static PyObject *
Pipe_get_protocol_attr(PyObject *self, void *c)
{
    return Pipe_get_protocol(self, NULL);
}

static int
Pipe_set_protocol_attr(PyObject *self, PyObject *v, void *c)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _protocol");
        return -1;
    }
    Py_XSETREF(PP(self)->protocol, v == Py_None ? NULL : Py_NewRef(v));
    return 0;
}

static PyObject *
Pipe_get_fileno(PyObject *self, void *c)
{
    return PyLong_FromLong(PP(self)->fd);
}

static PyObject *
Pipe_get_closing(PyObject *self, void *c)
{
    return PyBool_FromLong(PP(self)->closing);
}

static PyObject *
Pipe_get_paused(PyObject *self, void *c)
{
    return PyBool_FromLong(PP(self)->paused);
}

static PyObject *
Pipe_get_conn_lost(PyObject *self, void *c)
{
    return PyLong_FromLong(PP(self)->conn_lost);
}

static PyObject *
Pipe_get_loop(PyObject *self, void *c)
{
    PyObject *l = (PyObject *)PP(self)->loop;
    return Py_NewRef(l ? l : Py_None);
}

static PyObject *
Pipe_get_reading(PyObject *self, void *c)
{
    return PyBool_FromLong(PP(self)->reading);
}

static PyObject *
Pipe_get_writing(PyObject *self, void *c)
{
    return PyBool_FromLong(PP(self)->writing);
}

static PyGetSetDef ReadPipe_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL,
     NULL},
    {"_pipe", (getter)Pipe_get_pipe, (setter)Pipe_set_pipe, NULL, NULL},
    {"_protocol", (getter)Pipe_get_protocol_attr,
     (setter)Pipe_set_protocol_attr, NULL, NULL},
    {"_fileno", (getter)Pipe_get_fileno, NULL, NULL, NULL},
    {"_closing", (getter)Pipe_get_closing, NULL, NULL, NULL},
    {"_context", (getter)Pipe_get_context, NULL, NULL, NULL},
    {"_paused", (getter)Pipe_get_paused, NULL, NULL, NULL},
    {"_loop", (getter)Pipe_get_loop, NULL, NULL, NULL},
    {"_reading_watched", (getter)Pipe_get_reading, NULL, NULL, NULL},
    {NULL}};

static PyGetSetDef WritePipe_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL,
     NULL},
    {"_pipe", (getter)Pipe_get_pipe, (setter)Pipe_set_pipe, NULL, NULL},
    {"_protocol", (getter)Pipe_get_protocol_attr,
     (setter)Pipe_set_protocol_attr, NULL, NULL},
    {"_fileno", (getter)Pipe_get_fileno, NULL, NULL, NULL},
    {"_closing", (getter)Pipe_get_closing, NULL, NULL, NULL},
    {"_context", (getter)Pipe_get_context, NULL, NULL, NULL},
    {"_conn_lost", (getter)Pipe_get_conn_lost, NULL, NULL, NULL},
    {"_reading_watched", (getter)Pipe_get_reading, NULL, NULL, NULL},
    {"_writing_watched", (getter)Pipe_get_writing, NULL, NULL, NULL},
    {NULL}};

static PyMethodDef ReadPipe_methods[] = {
#if PY_VERSION_HEX >= 0x030B0000
    /* 3.9/3.10 inherit ReadTransport.is_reading(), which raises
     * NotImplementedError. */
    {"is_reading", (PyCFunction)ReadPipe_is_reading, METH_NOARGS, NULL},
#endif
    {"pause_reading", (PyCFunction)ReadPipe_pause_reading, METH_NOARGS,
     NULL},
    {"resume_reading", (PyCFunction)ReadPipe_resume_reading, METH_NOARGS,
     NULL},
    {"set_protocol", (PyCFunction)Pipe_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)Pipe_get_protocol, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)Pipe_is_closing, METH_NOARGS, NULL},
    {"close", (PyCFunction)ReadPipe_close, METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)ReadPipe_read_ready, METH_NOARGS, NULL},
    {"_close", (PyCFunction)ReadPipe_close_method, METH_VARARGS, NULL},
    {"_call_connection_lost", (PyCFunction)Pipe_call_connection_lost,
     METH_O, NULL},
    {"_start_reading", (PyCFunction)ReadPipe_start_reading, METH_NOARGS,
     NULL},
    {"_new", (PyCFunction)(void (*)(void))Pipe_new_impl,
     METH_FASTCALL | METH_CLASS, NULL},
    {NULL}};

static PyMethodDef WritePipe_methods[] = {
    {"write", (PyCFunction)WritePipe_write, METH_O,
     "Write data to the pipe; never blocks, buffers what does not fit."},
    {"write_eof", (PyCFunction)WritePipe_write_eof, METH_NOARGS, NULL},
    {"can_write_eof", (PyCFunction)WritePipe_can_write_eof, METH_NOARGS,
     NULL},
    {"get_write_buffer_size", (PyCFunction)WritePipe_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"set_protocol", (PyCFunction)Pipe_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)Pipe_get_protocol, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)Pipe_is_closing, METH_NOARGS, NULL},
    {"close", (PyCFunction)WritePipe_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)WritePipe_abort, METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)WritePipe_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)WritePipe_write_ready, METH_NOARGS, NULL},
    {"_close", (PyCFunction)WritePipe_close_method, METH_VARARGS, NULL},
    {"_call_connection_lost", (PyCFunction)Pipe_call_connection_lost,
     METH_O, NULL},
    {"_start_reading", (PyCFunction)WritePipe_start_reading, METH_NOARGS,
     NULL},
    {"_new", (PyCFunction)(void (*)(void))Pipe_new_impl,
     METH_FASTCALL | METH_CLASS, NULL},
    {NULL}};

/* One pipe type over `bases` (asyncio classes); our struct goes after the
 * first base's layout. */
static PyTypeObject *
make_pipe_type(PyObject *module, const char *name, const char *short_name,
               PyObject *bases, PyMethodDef *methods, PyGetSetDef *getset,
               const char *doc)
{
    PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(bases, 0);
    Py_ssize_t base_size = base->tp_basicsize;
    PyMemberDef members[] = {
        {"__weaklistoffset__", T_PYSSIZET,
         base_size + offsetof(tl_pipe, weakreflist), READONLY},
        {"__dictoffset__", T_PYSSIZET,
         base_size + offsetof(tl_pipe, dict), READONLY},
        {NULL}};
    PyType_Slot slots[] = {
        {Py_tp_new, Pipe_tp_new},
        {Py_tp_dealloc, Pipe_dealloc},
        {Py_tp_traverse, Pipe_traverse},
        {Py_tp_clear, Pipe_clear},
        {Py_tp_finalize, Pipe_finalize},
        {Py_tp_repr, Pipe_repr},
        {Py_tp_methods, methods},
        {Py_tp_getset, getset},
        {Py_tp_members, members},
        {Py_tp_doc, (void *)doc},
        {0, NULL}};
    PyType_Spec spec = {
        .name = name,
        .basicsize = (int)(base_size + sizeof(tl_pipe)),
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
        .slots = slots,
    };
    PyTypeObject *tp =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, bases);
    if (tp == NULL) {
        return NULL;
    }
    tp->tp_name = short_name;
    if (PyModule_AddObjectRef(module, short_name, (PyObject *)tp) < 0) {
        Py_DECREF(tp);
        return NULL;
    }
    return tp;
}

int
tl_pipe_init_types(PyObject *module, tl_state *st)
{
    PyObject *transports = PyImport_ImportModule("asyncio.transports");
    PyObject *rbase = NULL, *mixin = NULL, *wbase = NULL, *bases = NULL;
    PyObject *maxsize = NULL;
    int rc = -1;
    if (transports == NULL) {
        goto done;
    }
    rbase = PyObject_GetAttrString(transports, "ReadTransport");
    mixin = PyObject_GetAttrString(transports, "_FlowControlMixin");
    wbase = PyObject_GetAttrString(transports, "WriteTransport");
    if (rbase == NULL || mixin == NULL || wbase == NULL) {
        goto done;
    }
    bases = PyTuple_Pack(1, rbase);
    if (bases == NULL) {
        goto done;
    }
    st->ReadPipeType = make_pipe_type(
        module, "tideloop._core.ReadPipeTransport", "ReadPipeTransport",
        bases, ReadPipe_methods, ReadPipe_getset,
        "The read end of a pipe, socket or character device, in C.");
    maxsize = PyLong_FromLong(TL_PIPE_READ_SIZE);
    if (st->ReadPipeType == NULL || maxsize == NULL ||
        PyObject_SetAttrString((PyObject *)st->ReadPipeType, "max_size",
                               maxsize) < 0) {
        goto done;
    }
    Py_DECREF(bases);
    bases = PyTuple_Pack(2, mixin, wbase);
    if (bases == NULL) {
        goto done;
    }
    st->WritePipeType = make_pipe_type(
        module, "tideloop._core.WritePipeTransport", "WritePipeTransport",
        bases, WritePipe_methods, WritePipe_getset,
        "The write end of a pipe, socket or character device, in C.");
    if (st->WritePipeType == NULL) {
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(transports);
    Py_XDECREF(rbase);
    Py_XDECREF(mixin);
    Py_XDECREF(wbase);
    Py_XDECREF(bases);
    Py_XDECREF(maxsize);
    return rc;
}
