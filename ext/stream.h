/* stream.h: the core that the socket, datagram and pipe transports share.
 *
 * Every C transport type lays out its C fields as one struct that starts
 * with a tl_stream, placed after the layout of its asyncio base class
 * (the types cannot be subclassed: tl_stream_of() is the one way to find
 * the fields).  The core owns, once for all of them:
 *   - the write ring (tl_wb_*): strong references to what is queued and
 *     the exports (Py_buffer) of it, and the vectored write of its head;
 *   - watching the fd through the loop's fd watchers (poll.c) with two
 *     reusable handles;
 *   - the scheduling of connection_lost(), fatal errors, the debug log;
 *   - GC (traverse, clear), finalize (the unclosed warning), dealloc,
 *     repr, the shared attributes and the type factory.
 * What differs between sockets and pipes (how the end of the data or an
 * error reads, shutdown() or close(), which Python helpers report) is in
 * the transport's tl_stream_kind. */
#ifndef TL_STREAM_H
#define TL_STREAM_H

#include "tideloop.h"

#include <sys/uio.h>

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
 * copied.  Pipes and datagrams queue only exports. */
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
} tl_wb_item;

struct tl_stream;

/* What one transport type does its own way. */
typedef struct tl_stream_kind {
    /* Python helpers (enum tl_helper_id) of the rare paths:
     * (transport, exc, message) reports a fatal error; (transport,) warns
     * about an unclosed transport; (transport,) -> its repr. */
    int h_fatal;
    int h_finalize;
    int h_repr;
    /* After the report of a fatal error: close with exc (borrowed).
     * None or NULL with an exception set. */
    PyObject *(*fatal_close)(PyObject *self, PyObject *exc);
    /* The kind's own object fields, if any: visit them, drop them. */
    int (*traverse)(PyObject *self, visitproc visit, void *arg);
    void (*clear)(PyObject *self);
    /* _call_connection_lost(exc), _read_ready(), _write_ready(): what
     * stream.c binds to the transport (no lookup by name) for
     * connection_lost() and as the callables of our two handles. */
    PyMethodDef m[3];
    /* Dying (after the finalizer, before the weak references to it are
     * cleared): drop what refers to it weakly, if the kind keeps any
     * (NULL: nothing). */
    void (*forget)(PyObject *self);
} tl_stream_kind;

enum { TL_M_LOST, TL_M_READ_READY, TL_M_WRITE_READY };
#define TL_STREAM_METHODS(lost, read_ready, write_ready)                    \
    {{"_call_connection_lost", (PyCFunction)(lost), METH_O, NULL},          \
     {"_read_ready", (PyCFunction)(read_ready), METH_NOARGS, NULL},         \
     {"_write_ready", (PyCFunction)(write_ready), METH_NOARGS, NULL}}

typedef struct tl_stream {
    tl_stream_kind *kind;
    LoopObject *loop;            /* strong until connection lost */
    PyObject *file;              /* strong: the socket or pipe object;
                                    NULL once closed */
    PyObject *protocol;          /* strong; NULL once connection lost */
    /* The contextvars.Context every protocol callback runs in (strong or
     * NULL): asyncio 3.15's for sockets, or a copy of the one current at
     * creation (tideloop/_transports.py, _pipes.py).  Our read/write
     * handles and connection_lost() are scheduled in it. */
    PyObject *context;
    HandleObject *read_handle;   /* reusable; strong or NULL */
    HandleObject *write_handle;
    tl_wb_item *wb;              /* write buffer: a ring of items */
    Py_ssize_t wb_head, wb_len, wb_cap;
    Py_ssize_t wb_bytes;         /* see tl_wb_counted() */
    Py_ssize_t wb_live;          /* live items queued */
    Py_ssize_t last_read;        /* bytes of the last tl_stream_read() */
    int fd;
    int conn_lost;
    char closing;
    char paused;
    char reading;                /* read handle installed */
    char writing;                /* write handle installed */
    char counted;                /* counts in loop->n_transports */
    PyObject *weakreflist;
    PyObject *dict;
} tl_stream;

/* Our fields: after the layout of the asyncio base (tp_base; the
 * factory checks that it is the first of the bases). */
static inline tl_stream *
tl_stream_of(PyObject *self)
{
    return (tl_stream *)((char *)self + Py_TYPE(self)->tp_base->tp_basicsize);
}

/* loop.stats() counters.  The loop is NULL once the connection is lost. */
static inline void
tl_stream_count_read(tl_stream *s, Py_ssize_t n)
{
    if (s->loop != NULL) {
        s->loop->n_bytes_read += (uint64_t)n;
    }
}

static inline void
tl_stream_count_written(tl_stream *s, Py_ssize_t n)
{
    if (s->loop != NULL) {
        s->loop->n_bytes_written += (uint64_t)n;
    }
}

/* The bytes of `data` to send, as PyObject_GetBuffer(PyBUF_SIMPLE)
 * gives them: an exact bytes object's own, filled in without an export
 * (view->obj NULL: PyBuffer_Release() does nothing, a reference to data
 * keeps them; about 70 instructions less a write), else data's export.
 * 0, or -1 with an exception set. */
static inline int
tl_stream_view(PyObject *data, Py_buffer *view)
{
    if (PyBytes_CheckExact(data)) {
        *view = (Py_buffer){.buf = PyBytes_AS_STRING(data),
                            .len = PyBytes_GET_SIZE(data),
                            .itemsize = 1, .readonly = 1, .ndim = 1};
        return 0;
    }
    return PyObject_GetBuffer(data, view, PyBUF_SIMPLE);
}

/* The loop's 256 KiB read buffer, made at the first read; NULL with
 * MemoryError. */
char *tl_stream_rbuf(tl_stream *s);

/* What tl_stream_read() returns when it read nothing. */
#define TL_READ_OSERROR (-1)     /* read() failed: errno says why (EINTR,
                                    EAGAIN too: the caller decides) */
#define TL_READ_RAISED (-2)      /* a Python exception is set */

/* One read() of up to TL_READ_SIZE bytes (asyncio's max_size) into a new
 * bytes object: n > 0 with *out the bytes, 0 at EOF, or a TL_READ_ code
 * (*out NULL).  Where the bytes land depends on s->last_read:
 *   - after a read of `small` bytes or more, straight into a fresh bytes
 *     object with room for the last read plus `small` (at most `direct`
 *     bytes; the rest of TL_READ_SIZE, if any, into the loop's buffer),
 *     then shrunk to what came: no copy unless the read was longer;
 *   - after a smaller read (and at first, unless the kind set last_read
 *     at creation: pipes do), into the loop's buffer, then copied: a few
 *     bytes cost less to copy than a big allocation.
 * A read of fewer than `small` bytes never keeps a big allocation: it is
 * copied out of it.  So a connection of small messages reads through the
 * loop's buffer, and one of big messages without a copy. */
Py_ssize_t tl_stream_read(tl_stream *s, Py_ssize_t direct, Py_ssize_t small,
                          PyObject **out);

/* ---- the write ring ------------------------------------------------- */

/* The bytes of an item that wb_bytes counts.  Before 3.15 that is what
 * is left of it, except for a live bytearray, whose length may change
 * while it is queued: tl_wb_size() adds its length when asked.  On 3.15
 * wb_bytes is asyncio's counter: an item adds what it had when queued. */
static inline Py_ssize_t
tl_wb_counted(const tl_wb_item *it)
{
#ifndef TL_WB_COUNTER
    if (it->live && PyByteArray_Check(it->obj)) {
        return 0;
    }
#endif
    return it->view.len - it->off;
}

static inline tl_wb_item *
tl_wb_at(tl_stream *s, Py_ssize_t i)
{
    return &s->wb[(s->wb_head + i) % s->wb_cap];
}

/* One ownership rule for every push: the ring takes a new reference to
 * `obj` (the caller keeps its own) and takes over the export `view`, also
 * when it fails.  0, or -1 with an exception set. */
int tl_wb_push(tl_stream *s, PyObject *obj, Py_buffer *view, Py_ssize_t off);
/* Queue an export of obj (bytes, a copy, our own memoryview), off bytes
 * of it already sent. */
int tl_wb_push_object(tl_stream *s, PyObject *obj, Py_ssize_t off);
/* Queue what a socket's write() did not send of data (view: data's
 * export, off bytes of it sent), keeping of data what asyncio keeps
 * (TL_WB_LIVE).  Takes over the export. */
int tl_wb_push_write(tl_stream *s, PyObject *data, Py_buffer *view,
                     Py_ssize_t off);
/* Drop the head item (may run Python code: the ring is consistent
 * first). */
void tl_wb_pop(tl_stream *s);
void tl_wb_clear(tl_stream *s);
/* asyncio's get_write_buffer_size() of a socket transport. */
Py_ssize_t tl_wb_size(tl_stream *s);

/* What tl_wb_send() returns when it sent nothing. */
#define TL_WB_AGAIN (-1)         /* would block: wait until writable */
#define TL_WB_OSERROR (-2)       /* writev() failed: errno says why */
#define TL_WB_RAISED (-3)        /* a Python exception is set */

/* One writev() of the head of the queue (EINTR: the signal handlers run,
 * as os.write() and socket.send() run them, then it is retried), which
 * then advances past what was sent.  Returns the count of bytes sent or
 * a TL_WB_ code. */
Py_ssize_t tl_wb_send(tl_stream *s);

/* ---- watching, scheduling, reporting -------------------------------- */

/* Install (on) or remove our reusable handle for one side of the fd.
 * Installing again puts our handle back if the user replaced or
 * cancelled it meanwhile (a pipe's fd is not guarded as a socket's is).
 * Adding on a closed loop raises as asyncio's _add_reader() does;
 * removing is then a no-op, as its _remove_reader(). */
int tl_stream_watch(PyObject *self, int writer, int on);
/* Stop watching both sides; never fails. */
void tl_stream_unwatch_all(PyObject *self);
/* The stream closes, its connection_lost() queued: stop watching, the
 * registration maybe left lingering until the socket's close (poll.c).
 * 0, or -1 with an exception set. */
int tl_stream_unwatch_closing(PyObject *self);
/* loop.call_soon(self._call_connection_lost, exc) in our context; exc
 * borrowed (NULL: None).  0, or -1 with an exception set. */
int tl_stream_call_soon_lost(PyObject *self, PyObject *exc);
/* Report a fatal error through the kind's helper, then fatal_close().
 * Consumes the pending exception if exc is NULL.  0, or -1. */
int tl_stream_fatal(PyObject *self, PyObject *exc, const char *message);
/* The pending exception of a failed step: returned (NULL) if it must
 * stop the loop, else reported by tl_stream_fatal(message) and None
 * returned (NULL if that failed). */
PyObject *tl_stream_fail(PyObject *self, const char *message);
/* Call one Python helper (tl_helper_id) with up to three arguments
 * (NULL-terminated).  0, or -1 with an exception set. */
int tl_stream_helper(tl_state *st, int id, PyObject *a, PyObject *b,
                     PyObject *c);
/* fn(self) in our context: asyncio's _maybe_pause_protocol() and
 * _maybe_resume_protocol() (tl_state.maybe_pause, maybe_resume), as
 * write() runs pause_writing() in the transport's context. */
int tl_stream_call_in_context(PyObject *self, PyObject *fn);
/* Drop the loop reference: the transport no longer counts as live. */
void tl_stream_release_loop(tl_stream *s);
/* _new(...)'s arguments: n of them, then an optional context (a
 * contextvars.Context or None: *ctx borrowed or NULL).  0, or -1 with
 * TypeError(usage). */
int tl_stream_new_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t n,
                       const char *usage, PyObject **ctx);
/* The fd number `num` (stolen; NULL: an exception is set) in *fd.  0, or
 * -1 with an exception set (ValueError for a negative or too large
 * one). */
int tl_stream_fd_arg(PyObject *num, int *fd);
/* The first part of _new(): check the loop, allocate, fill the core.
 * New reference, or NULL with an exception set. */
PyObject *tl_stream_alloc(PyTypeObject *tp, tl_stream_kind *kind,
                          PyObject *loop, PyObject *file, int fd,
                          PyObject *ctx);

/* After tl_wb_send() failed (n < 0, not TL_WB_AGAIN): the exception to
 * report (new reference, none left pending), or NULL with the pending
 * exception that must stop the loop. */
PyObject *tl_wb_send_error(Py_ssize_t n);
/* The write path failed (n from tl_wb_send()): drop the ring, count a
 * lost connection if count_lost (pipes, as asyncio's do), stop watching
 * for writing, report (tl_stream_fatal) and close.  Returns the exception
 * reported (new reference), or NULL with an exception set (one that must
 * stop the loop, or a failure of the report). */
PyObject *tl_stream_write_error(PyObject *self, Py_ssize_t n,
                                const char *message, int count_lost);
/* One step of the write path: tl_wb_send(), and on failure
 * tl_stream_write_error().  Returns the bytes sent (>= 0), TL_WB_AGAIN
 * (nothing sent: wait until writable) or TL_WB_RAISED, *exc then the
 * exception reported (new reference) or NULL with an exception set.
 * *exc is NULL in the other cases. */
Py_ssize_t tl_stream_send(PyObject *self, const char *message,
                          int count_lost, PyObject **exc);
/* logger.debug(fmt, self) when the loop is in debug mode, as asyncio's
 * `if self._loop.get_debug(): logger.debug(...)`.  0, or -1. */
int tl_stream_debug_log(PyObject *self, const char *fmt);

/* ---- reading state --------------------------------------------------- */

/* asyncio's is_reading(): not closing and not paused. */
int tl_stream_reading_wanted(tl_stream *s);
PyObject *tl_stream_is_reading(PyObject *self, PyObject *unused);
/* pause_reading(), resume_reading(): stop or start watching the read
 * side (logged in debug mode). */
PyObject *tl_stream_pause_reading(PyObject *self, PyObject *unused);
PyObject *tl_stream_resume_reading(PyObject *self, PyObject *unused);

/* ---- shared attributes and the type factory ------------------------- */

PyObject *tl_stream_is_closing(PyObject *self, PyObject *unused);
PyObject *tl_stream_get_protocol(PyObject *self, PyObject *unused);
PyObject *tl_stream_getattr(PyObject *self, void *which);
int tl_stream_set_protocol_attr(PyObject *self, PyObject *v, void *c);

/* Getters of tl_stream_getattr(): which field. */
enum {
    TL_SA_LOOP, TL_SA_FILE, TL_SA_PROTOCOL, TL_SA_CONTEXT, TL_SA_FD,
    TL_SA_CLOSING, TL_SA_PAUSED, TL_SA_CONN_LOST, TL_SA_READING, TL_SA_WRITING
};
#define TL_STREAM_GET(name, which) \
    {name, (getter)tl_stream_getattr, NULL, NULL, (void *)(which)}

/* What tl_stream_make_type() makes. */
typedef struct tl_stream_spec {
    const char *name;            /* "tideloop._core.<short name>" */
    /* The asyncio.transports classes it extends; the first one is the
     * layout base, the second may be NULL. */
    const char *bases[2];
    PyMethodDef *methods;
    PyGetSetDef *getset;
    const char *doc;
    size_t size;                 /* our C struct, starting with tl_stream */
    int max_size;                /* set asyncio's max_size class attribute */
} tl_stream_spec;

/* A transport type, added to the module under its short name.  New
 * reference, or NULL with an exception set. */
PyTypeObject *tl_stream_make_type(PyObject *module,
                                  const tl_stream_spec *spec);

#endif /* TL_STREAM_H */
