/* Pipe transports: asyncio's _UnixReadPipeTransport and
 * _UnixWritePipeTransport in C, on the stream core (stream.c).
 *
 * As with SocketTransport (transport.c), the types' real bases are
 * asyncio's classes: ReadPipeTransport extends asyncio.ReadTransport and
 * WritePipeTransport extends (_FlowControlMixin, WriteTransport), as
 * asyncio's classes do, so isinstance() checks, get_extra_info() and the
 * write buffer limits are asyncio's own.
 *
 * The fd is watched through the loop's fd watchers (poll.c) with reusable
 * handles; readiness queues the handle on the ready queue, which calls
 * _read_ready()/_write_ready() here, so protocol callbacks run in the same
 * order relative to other callbacks as in asyncio.  A write pipe is also
 * watched for reading, as asyncio does: the fd becomes "readable" (an
 * error or hang-up) when the reader goes away.  What pipes do their own
 * way: read() into the data's bytes object, EOF closes the transport
 * (no half-close), the write buffer keeps bytes (asyncio's bytearray),
 * and fatal errors close with _close(exc).
 *
 * Construction (the mode check with asyncio's messages, O_NONBLOCK) and the
 * rare paths (fatal error reporting, logging, the unclosed warning, repr)
 * are Python helpers in tideloop/_pipes.py. */
#include "stream.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* tl_stream_read()'s sizes: up to 64 KiB straight into the bytes object
 * after a read of 8 KiB or more. */
#define TL_PIPE_DIRECT (64 * 1024)
#define TL_PIPE_SMALL (8 * 1024)

/* logging levels passed to the log helper */
#define TL_LOG_INFO 20
#define TL_LOG_WARNING 30

typedef struct {
    tl_stream s;                 /* s.file is the pipe object */
    char is_write;               /* a WritePipeTransport */
} tl_pipe;

static inline tl_pipe *
PP(PyObject *self)
{
    return (tl_pipe *)tl_stream_of(self);
}

static PyObject *Pipe_call_connection_lost(PyObject *self, PyObject *exc);
static PyObject *ReadPipe_read_ready(PyObject *self, PyObject *unused);
static PyObject *ReadPipe_close_impl(PyObject *self, PyObject *exc);
static PyObject *WritePipe_read_ready(PyObject *self, PyObject *unused);
static PyObject *WritePipe_write_ready(PyObject *self, PyObject *unused);
static PyObject *WritePipe_close_impl(PyObject *self, PyObject *exc);

/* EOF closes a pipe (no half-close); fatal errors close with _close(). */
static tl_stream_kind rpipe_kind = {
    TL_H_PIPE_FATAL, TL_H_PIPE_FINALIZE, TL_H_PIPE_REPR, ReadPipe_close_impl,
    NULL, NULL,
    TL_STREAM_METHODS(Pipe_call_connection_lost, ReadPipe_read_ready, NULL)};

/* Watched for reading too: the reader going away makes it readable. */
static tl_stream_kind wpipe_kind = {
    TL_H_PIPE_FATAL, TL_H_PIPE_FINALIZE, TL_H_PIPE_REPR, WritePipe_close_impl,
    NULL, NULL,
    TL_STREAM_METHODS(Pipe_call_connection_lost, WritePipe_read_ready,
                      WritePipe_write_ready)};

/* asyncio's self._loop._remove_reader(self._fileno), through None once
 * the connection is lost.  0, or -1 with an exception set. */
static int
pipe_unread(PyObject *self)
{
    if (PP(self)->s.loop == NULL) {
        tl_err_none_has_no("_remove_reader");
        return -1;
    }
    return tl_stream_watch(self, 0, 0);
}

/* The end of _close(exc) and of write_eof(): stop reading and schedule
 * connection_lost(exc) (exc borrowed, NULL: None). */
static PyObject *
pipe_unread_and_lose(PyObject *self, PyObject *exc)
{
    if (pipe_unread(self) < 0 || tl_stream_call_soon_lost(self, exc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* asyncio's self._loop._add_reader(self._fileno, self._read_ready),
 * through None once the connection is lost. */
static PyObject *
pipe_add_reader(PyObject *self)
{
    if (PP(self)->s.loop == NULL) {
        return tl_err_none_has_no("_add_reader");
    }
    if (tl_stream_watch(self, 0, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _close(exc): ReadPipeTransport's takes exc, WritePipeTransport's has
 * None for default (asyncio's signatures). */
static PyObject *
Pipe_close_method(PyObject *self, PyObject *args)
{
    PyObject *exc = Py_None;
    if (!PyArg_UnpackTuple(args, "_close", PP(self)->is_write ? 0 : 1, 1,
                           &exc)) {
        return NULL;
    }
    return tl_stream_of(self)->kind->fatal_close(self, exc);
}

/* logger.log(level, msg, self) when the loop is in debug mode (or always
 * with `always`), as asyncio's `if self._loop.get_debug(): logger...`. */
static int
pipe_log(PyObject *self, int level, const char *msg, int always)
{
    tl_pipe *t = PP(self);
    if (!always && (t->s.loop == NULL || !t->s.loop->debug)) {
        return 0;
    }
    tl_state *st = tl_state_from_type(Py_TYPE(self));
    if (st == NULL) {
        return -1;
    }
    PyObject *lv = PyLong_FromLong(level);
    PyObject *m = PyUnicode_FromString(msg);
    int r = -1;
    if (lv != NULL && m != NULL) {
        r = tl_stream_helper(st, TL_H_PIPE_LOG, lv, m,
                             always ? Py_None : self);
    }
    Py_XDECREF(lv);
    Py_XDECREF(m);
    return r;
}

/* try: protocol.connection_lost(exc)
 * finally: pipe.close(); drop pipe, protocol and loop.
 * Both calls go through None once cleared, raising what asyncio raises
 * when called a second time. */
static PyObject *
Pipe_call_connection_lost(PyObject *self, PyObject *exc)
{
    tl_pipe *t = PP(self);
    tl_state *st = tl_state_from_type(Py_TYPE(self));
    PyObject *args[2] = {t->s.protocol ? t->s.protocol : Py_None, exc};
    Py_INCREF(args[0]);
    PyObject *res = tl_call_method(st->str_connection_lost, args, 2);
    Py_DECREF(args[0]);
    PyObject *saved = res == NULL ? tl_fetch_exception() : NULL;
    Py_XDECREF(res);

    /* asyncio leaves the fd watched when a watch was (re)installed after
     * the close (3.9/3.10 read pipes, a write pipe closed in
     * connection_made()); the fd number is then reused by the next pipe
     * while the stale registration remains.  Stop watching here. */
    if (tl_stream_watch(self, 0, 0) < 0 || tl_stream_watch(self, 1, 0) < 0) {
        PyErr_Clear();
    }

    PyObject *pipe = t->s.file ? t->s.file : Py_None;
    Py_INCREF(pipe);
    PyObject *r = PyObject_CallMethod(pipe, "close", NULL);
    Py_DECREF(pipe);
    if (r == NULL) {
        /* An exception in `finally` replaces the first, chained to it. */
        tl_err_chain(saved);
        return NULL;
    }
    Py_DECREF(r);
    Py_CLEAR(t->s.file);
    Py_CLEAR(t->s.protocol);
    if (t->is_write &&
        PyObject_SetAttrString(self, "_loop", Py_None) < 0) {
        /* The _FlowControlMixin slot: cannot fail. */
        PyErr_Clear();
    }
    Py_CLEAR(t->s.read_handle);
    Py_CLEAR(t->s.write_handle);
    Py_CLEAR(t->s.loop);
    if (saved != NULL) {
        tl_restore_exception(saved);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- ReadPipeTransport ---------------------------------------------- */

/* _close(exc): stop reading and schedule connection_lost(exc). */
static PyObject *
ReadPipe_close_impl(PyObject *self, PyObject *exc)
{
    PP(self)->s.closing = 1;
    return pipe_unread_and_lose(self, exc);
}

/* One read of up to max_size bytes, as asyncio's os.read(fd, max_size):
 * tl_stream_read() (n > 0 with *out, 0 at EOF, TL_READ_OSERROR with errno
 * set, TL_READ_RAISED), retried after EINTR as os.read() retries it,
 * after running the signal handlers.  A pipe holds 64 KiB by default: a
 * big read goes into a 64 KiB bytes object (the rare rest into the loop's
 * buffer). */
static Py_ssize_t
pipe_read(tl_pipe *t, PyObject **out)
{
    for (;;) {
        Py_ssize_t n = tl_stream_read(&t->s, TL_PIPE_DIRECT, TL_PIPE_SMALL,
                                      out);
        if (n != TL_READ_OSERROR || errno != EINTR) {
            return n;
        }
        if (PyErr_CheckSignals() < 0) {
            return TL_READ_RAISED;
        }
    }
}

static PyObject *
ReadPipe_read_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    /* asyncio cancels its reader handle when it stops reading: a call
     * queued before that must not run. */
    LoopObject *loop = t->s.loop;
    if (!t->s.reading || loop == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *data;
    Py_ssize_t n = pipe_read(t, &data);
    if (n == TL_READ_RAISED) {
        return NULL;
    }
    if (n < 0) {
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            Py_RETURN_NONE;
        }
        tl_err_from_errno(err);
        return tl_stream_fail(self, "Fatal read error on pipe transport");
    }
    if (n > 0) {
        /* Exceptions of data_received() reach the handle's report, as in
         * asyncio (which does not catch them here). */
        PyObject *args[2] = {t->s.protocol ? t->s.protocol : Py_None, data};
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
    t->s.closing = 1;
    if (tl_stream_watch(self, 0, 0) < 0) {
        return NULL;
    }
    PyObject *proto = t->s.protocol ? t->s.protocol : Py_None;
    PyObject *eof = PyObject_GetAttr(proto, loop->st->str_eof_received);
    if (eof == NULL) {
        return NULL;
    }
    PyObject *r = tl_loop_call_soon(t->s.loop, eof, NULL, t->s.context);
    Py_DECREF(eof);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    if (tl_stream_call_soon_lost(self, NULL) < 0) {
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
#if PY_VERSION_HEX >= 0x030B0000
    if (!tl_stream_reading_wanted(&PP(self)->s)) {
        Py_RETURN_NONE;
    }
#endif
    return pipe_add_reader(self);
}

static PyObject *
ReadPipe_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    if (PP(self)->s.closing) {
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
    t->s.closing = 1;
    if (t->s.wb_len > 0) {
        if (t->s.loop == NULL) {
            return tl_err_none_has_no("_remove_writer");
        }
        if (tl_stream_watch(self, 1, 0) < 0) {
            return NULL;
        }
    }
    tl_wb_clear(&t->s);
    return pipe_unread_and_lose(self, exc);
}

/* The pipe became readable: the reader went away. */
static PyObject *
WritePipe_read_ready(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    if (!t->s.reading || t->s.loop == NULL) {
        Py_RETURN_NONE;
    }
    if (pipe_log(self, TL_LOG_INFO, "%r was closed by peer", 0) < 0) {
        return NULL;
    }
    if (t->s.wb_len > 0) {
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
    if (t->s.conn_lost || t->s.closing) {
        Py_DECREF(exc);
        if (pipe_write_warn(self) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (t->s.wb_len > 0) {
        Py_DECREF(exc);
        PyErr_Format(PyExc_TypeError, "can't concat %.100s to bytearray",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    t->s.conn_lost++;
    int r = tl_stream_fatal(self, exc, "Fatal write error on pipe transport");
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
    if (t->s.conn_lost >= TL_LOG_THRESHOLD_FOR_CONNLOST_WRITES &&
        pipe_log(self, TL_LOG_WARNING,
                 "pipe closed by peer or os.write(pipe, data) raised "
                 "exception.", 1) < 0) {
        return -1;
    }
    t->s.conn_lost++;
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
    if (t->s.conn_lost || t->s.closing) {
        if (pipe_write_warn(self) < 0) {
            goto error;
        }
        goto done;
    }
    Py_ssize_t off = 0;
    if (t->s.wb_len == 0) {
        /* Attempt to write it right away first. */
        Py_ssize_t n = pipe_write_fd(t->s.fd, buf, len);
        if (n > 0 && t->s.loop != NULL) {
            t->s.loop->n_bytes_written += (uint64_t)n;  /* loop.stats() */
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
                t->s.conn_lost++;
                if (tl_stream_fatal(self, NULL,
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
        if (tl_stream_watch(self, 1, 1) < 0) {
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
    int pushed = tl_wb_push_object(&t->s, chunk, off);
    Py_DECREF(chunk);
    /* pause_writing() in the transport's context, not the caller's. */
    if (pushed < 0 || tl_stream_call_in_context(
                          self, tl_state_from_type(Py_TYPE(self))
                                    ->maybe_pause) < 0) {
        return NULL;
    }
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
    if (!t->s.writing || t->s.loop == NULL) {
        Py_RETURN_NONE;
    }
    if (t->s.wb_len == 0) {
        PyErr_SetString(PyExc_AssertionError, "Data should not be empty");
        return NULL;
    }
    /* asyncio writes its whole buffer with one os.write(); a vectored
     * write of the chunks is the same for the kernel. */
    PyObject *exc;
    Py_ssize_t n = tl_stream_send(self, "Fatal write error on pipe transport",
                                  1, &exc);
    if (n == TL_WB_RAISED) {
        if (exc == NULL) {
            return NULL;
        }
        Py_DECREF(exc);
        Py_RETURN_NONE;
    }
    if (t->s.wb_len == 0) {
        if (tl_stream_watch(self, 1, 0) < 0) {
            return NULL;
        }
        /* Re-entrancy: resume_writing() may write (and buffer) again. */
        if (tl_stream_call_in_context(
                self, tl_state_from_type(Py_TYPE(self))->maybe_resume) < 0) {
            return NULL;
        }
        if (t->s.closing) {
            if (pipe_unread(self) < 0) {
                return NULL;
            }
            return Pipe_call_connection_lost(self, Py_None);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
WritePipe_write_eof(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    if (t->s.closing) {
        Py_RETURN_NONE;
    }
    if (t->s.file == NULL) {
        /* asyncio: assert self._pipe */
        PyErr_SetNone(PyExc_AssertionError);
        return NULL;
    }
    t->s.closing = 1;
    if (t->s.wb_len == 0) {
        return pipe_unread_and_lose(self, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *
WritePipe_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    tl_pipe *t = PP(self);
    if (t->s.file != NULL && !t->s.closing) {
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
    return PyLong_FromSsize_t(PP(self)->s.wb_bytes);
}

/* Watch for the reader going away, scheduled with call_soon() at
 * creation (pipes and sockets only, as asyncio). */
static PyObject *
WritePipe_start_reading(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return pipe_add_reader(self);
}

/* _new(loop, pipe, fileno, protocol[, context]): the C part of
 * construction, after tideloop/_pipes.py checked the file's mode and made
 * it non-blocking.  `context` (a contextvars.Context or None) is the one
 * the protocol's callbacks run in. */
static PyObject *
Pipe_new_impl(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *ctx;
    if (tl_stream_new_args(args, nargs, 4,
                           "_new(loop, pipe, fileno, protocol[, context])",
                           &ctx) < 0) {
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    tl_state *st = tl_state_from_type(tp);
    if (st == NULL) {
        return NULL;
    }
    int fd;
    if (tl_stream_fd_arg(Py_NewRef(args[2]), &fd) < 0) {
        return NULL;
    }
    int is_write = tp == st->WritePipeType;
    PyObject *self = tl_stream_alloc(tp, is_write ? &wpipe_kind : &rpipe_kind,
                                     args[0], args[1], fd, ctx);
    if (self == NULL) {
        return NULL;
    }
    tl_pipe *t = PP(self);
    t->s.protocol = Py_NewRef(args[3]);
    t->is_write = (char)is_write;
    /* A read pipe starts as if after a full read: its first read, often
     * a child's whole first burst (a pipe holds 64 KiB), lands straight
     * in its bytes object instead of being copied out of the loop's
     * buffer. */
    t->s.last_read = is_write ? 0 : TL_PIPE_DIRECT;
    return self;
}

/* ---- attributes ----------------------------------------------------- */

static PyObject *
Pipe_set_protocol(PyObject *self, PyObject *protocol)
{
    Py_INCREF(protocol);
    Py_XSETREF(PP(self)->s.protocol, protocol);
    Py_RETURN_NONE;
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
    Py_XSETREF(PP(self)->s.file, v == Py_None ? NULL : Py_NewRef(v));
    return 0;
}

#define TL_PIPE_COMMON_GETSET                                               \
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL,    \
     NULL},                                                                 \
    {"_pipe", (getter)tl_stream_getattr, (setter)Pipe_set_pipe, NULL,       \
     (void *)TL_SA_FILE},                                                   \
    {"_protocol", (getter)tl_stream_getattr,                                \
     (setter)tl_stream_set_protocol_attr, NULL, (void *)TL_SA_PROTOCOL},    \
    TL_STREAM_GET("_fileno", TL_SA_FD),                                     \
    TL_STREAM_GET("_closing", TL_SA_CLOSING),                               \
    TL_STREAM_GET("_context", TL_SA_CONTEXT),                               \
    TL_STREAM_GET("_reading_watched", TL_SA_READING)

static PyGetSetDef ReadPipe_getset[] = {
    TL_PIPE_COMMON_GETSET,
    TL_STREAM_GET("_paused", TL_SA_PAUSED),
    TL_STREAM_GET("_loop", TL_SA_LOOP),
    {NULL}};

static PyGetSetDef WritePipe_getset[] = {
    TL_PIPE_COMMON_GETSET,
    TL_STREAM_GET("_conn_lost", TL_SA_CONN_LOST),
    TL_STREAM_GET("_writing_watched", TL_SA_WRITING),
    {NULL}};

#define TL_PIPE_COMMON_METHODS                                              \
    {"set_protocol", (PyCFunction)Pipe_set_protocol, METH_O, NULL},         \
    {"get_protocol", (PyCFunction)tl_stream_get_protocol, METH_NOARGS,      \
     NULL},                                                                 \
    {"is_closing", (PyCFunction)tl_stream_is_closing, METH_NOARGS, NULL},   \
    {"_call_connection_lost", (PyCFunction)Pipe_call_connection_lost,       \
     METH_O, NULL},                                                         \
    {"_new", (PyCFunction)(void (*)(void))Pipe_new_impl,                    \
     METH_FASTCALL | METH_CLASS, NULL}

static PyMethodDef ReadPipe_methods[] = {
    TL_PIPE_COMMON_METHODS,
#if PY_VERSION_HEX >= 0x030B0000
    /* 3.9/3.10 inherit ReadTransport.is_reading(), which raises
     * NotImplementedError. */
    {"is_reading", (PyCFunction)tl_stream_is_reading, METH_NOARGS, NULL},
#endif
    {"pause_reading", (PyCFunction)tl_stream_pause_reading, METH_NOARGS,
     NULL},
    {"resume_reading", (PyCFunction)tl_stream_resume_reading, METH_NOARGS,
     NULL},
    {"close", (PyCFunction)ReadPipe_close, METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)ReadPipe_read_ready, METH_NOARGS, NULL},
    {"_close", (PyCFunction)Pipe_close_method, METH_VARARGS, NULL},
    {"_start_reading", (PyCFunction)ReadPipe_start_reading, METH_NOARGS,
     NULL},
    {NULL}};

static PyMethodDef WritePipe_methods[] = {
    TL_PIPE_COMMON_METHODS,
    {"write", (PyCFunction)WritePipe_write, METH_O,
     "Write data to the pipe; never blocks, buffers what does not fit."},
    {"write_eof", (PyCFunction)WritePipe_write_eof, METH_NOARGS, NULL},
    {"can_write_eof", (PyCFunction)WritePipe_can_write_eof, METH_NOARGS,
     NULL},
    {"get_write_buffer_size", (PyCFunction)WritePipe_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"close", (PyCFunction)WritePipe_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)WritePipe_abort, METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)WritePipe_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)WritePipe_write_ready, METH_NOARGS, NULL},
    {"_close", (PyCFunction)Pipe_close_method, METH_VARARGS, NULL},
    {"_start_reading", (PyCFunction)WritePipe_start_reading, METH_NOARGS,
     NULL},
    {NULL}};

static const tl_stream_spec rpipe_spec = {
    "tideloop._core.ReadPipeTransport", {"ReadTransport", NULL},
    ReadPipe_methods, ReadPipe_getset,
    "The read end of a pipe, socket or character device, in C.",
    sizeof(tl_pipe), 1};

static const tl_stream_spec wpipe_spec = {
    "tideloop._core.WritePipeTransport",
    {"_FlowControlMixin", "WriteTransport"}, WritePipe_methods,
    WritePipe_getset,
    "The write end of a pipe, socket or character device, in C.",
    sizeof(tl_pipe), 0};

int
tl_pipe_init_types(PyObject *module, tl_state *st)
{
    st->ReadPipeType = tl_stream_make_type(module, &rpipe_spec);
    if (st->ReadPipeType == NULL) {
        return -1;
    }
    st->WritePipeType = tl_stream_make_type(module, &wpipe_spec);
    return st->WritePipeType == NULL ? -1 : 0;
}
