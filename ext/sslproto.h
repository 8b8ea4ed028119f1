/* tideloop: asyncio's SSL protocol layer in C (shared declarations).
 *
 * Four files implement what asyncio's sslproto.py does on Python 3.11+
 * (the state machine that came from uvloop):
 *
 *   sslproto.c      SSLProtocol's state machine: the callbacks of the
 *                   underlying transport, handshake, shutdown, abort and
 *                   fatal errors;
 *   sslflow.c       the data paths (incoming records -> app, app writes ->
 *                   outgoing records), flow control both ways, calling
 *                   the app protocol in its context, and the helpers that
 *                   call into Python;
 *   sslinit.c       SSLProtocol's construction, GC and attributes, and
 *                   the module state;
 *   ssltransport.c  _SSLProtocolTransport, the transport the app sees.
 *
 * The TLS work is done by Python's ssl module (an ssl.SSLObject over two
 * ssl.MemoryBIO): its C methods are called through bound methods cached at
 * construction, never looked up by name per record.  The underlying
 * transport is used only through its public Python API (write,
 * pause_reading, get_extra_info, close, _force_close, ...), so any
 * transport asyncio accepts for start_tls() works under it.
 *
 * Versions: the behaviour follows the running Python's asyncio.sslproto
 * (3.11 through 3.15); what changed between them is detected once from
 * that module by tideloop/_sslproto.py and handed over as flags.
 */
#ifndef TIDELOOP_SSLPROTO_H
#define TIDELOOP_SSLPROTO_H

#include "tideloop.h"

/* asyncio.sslproto.SSLProtocolState, in its declaration order. */
enum {
    TL_SSL_UNWRAPPED = 0,
    TL_SSL_DO_HANDSHAKE,
    TL_SSL_WRAPPED,
    TL_SSL_FLUSHING,
    TL_SSL_SHUTDOWN,
    TL_SSL_NSTATES
};

/* asyncio.sslproto.AppProtocolState. */
enum {
    TL_APP_INIT = 0,
    TL_APP_CON_MADE,
    TL_APP_EOF,
    TL_APP_CON_LOST,
    TL_APP_NSTATES
};

/* Interned method and keyword names (X-macro: declared, made and cleared
 * from this one list). */
#define TL_SSL_STRINGS(X)                                                   \
    X(write) X(read) X(pending) X(shutdown) X(do_handshake) X(unwrap)      \
    X(get_buffer) X(buffer_updated) X(data_received) X(eof_received)       \
    X(connection_made) X(connection_lost) X(pause_writing)                 \
    X(resume_writing) X(pause_reading) X(resume_reading) X(close)          \
    X(_force_close) X(abort) X(is_closing) X(get_extra_info) X(call_soon)  \
    X(call_later) X(get_debug) X(time) X(cancel) X(cancelled)              \
    X(set_result) X(set_exception) X(getpeercert) X(cipher)                \
    X(compression) X(_sslobj) X(wrap_bio) X(peercert) X(ssl_object)       \
    X(sslcontext) X(_context) X(_do_read) X(_resume_reading_cb)            \
    X(_check_handshake_timeout) X(_check_shutdown_timeout)

/* The object fields of tl_ssl_state, for traverse and clear. */
#define TL_SSL_STATE_OBJECTS(X)                                             \
    X(ProtocolType) X(TransportType) X(WindowType) X(MemoryBIOType)        \
    X(SSLObjectType)                                                       \
    X(SSLError) X(again_errors) X(CertificateError)                        \
    X(BufferedProtocolType) X(create_transport_context)                    \
    X(flowcontrol_defaults) X(TimeoutError) X(states) X(app_states)        \
    X(handshake_timeout) X(shutdown_timeout) X(kb_read) X(kb_write)        \
    X(h_fatal_log) X(h_flow_failed) X(h_log) X(kw_context) X(kw_wrap_bio)

typedef struct tl_ssl_state {
    PyTypeObject *ProtocolType;      /* tideloop._core.SSLProtocol */
    PyTypeObject *TransportType;     /* ..._SSLProtocolTransport */
    PyTypeObject *WindowType;        /* sslflow.c: a reusable buffer */

    /* ssl */
    PyObject *MemoryBIOType;
    PyObject *SSLObjectType;
    PyObject *SSLError;
    PyObject *again_errors;          /* (SSLWantReadError, SSLSyscallError) */
    PyObject *CertificateError;
    /* MemoryBIO.pending is a getset: its C getter, called directly. */
    getter bio_pending_get;
    void *bio_pending_closure;

    /* asyncio */
    PyObject *BufferedProtocolType;
    PyObject *create_transport_context;  /* sslproto._create_transport_context */
    PyObject *flowcontrol_defaults;      /* sslproto.add_flowcontrol_defaults */
    PyObject *TimeoutError;              /* asyncio.exceptions.TimeoutError */
    PyObject *states;                    /* tuple of SSLProtocolState members */
    PyObject *app_states;                /* tuple of AppProtocolState members */
    PyObject *handshake_timeout;          /* constants.SSL_HANDSHAKE_TIMEOUT */
    PyObject *shutdown_timeout;          /* constants.SSL_SHUTDOWN_TIMEOUT */
    PyObject *kb_read;                   /* FLOW_CONTROL_HIGH_WATER_SSL_READ */
    PyObject *kb_write;                  /* ..._SSL_WRITE */
    long log_threshold;                  /* LOG_THRESHOLD_FOR_CONNLOST_WRITES */

    /* Python helpers from tideloop/_sslproto.py (slow paths only). */
    PyObject *h_fatal_log;       /* (proto, exc, message): _fatal_error's log */
    PyObject *h_flow_failed;     /* (proto, message, exc): exception handler */
    PyObject *h_log;             /* (level, fmt, *args): sslproto.logger.log */

    /* What changed between Python versions (see _sslproto.py). */
    char abort_passes_exc;       /* 3.12+: _abort(exc) -> _force_close(exc) */
    char closing_follows_transport;  /* 3.14+: is_closing() asks transport */
    char shutdown_timeout_until_lost; /* 3.14+: timeout kept until lost */
    char asserts;                /* not python -O: asyncio's asserts hold */
    char helpers_set;
    /* Where _SSLProtocolTransport's fields start (after its base's). */
    Py_ssize_t tr_offset;

    PyObject *kw_context;        /* ("context",) */
    PyObject *kw_wrap_bio;       /* ("server_side", "server_hostname") */
#define TL_SSL_DECLARE(name) PyObject *s_##name;
    TL_SSL_STRINGS(TL_SSL_DECLARE)
#undef TL_SSL_DECLARE
} tl_ssl_state;

/* The object fields of tl_sslproto (the write backlog aside). */
#define TL_SSLPROTO_OBJECTS(X)                                              \
    X(loop) X(app_protocol) X(app_transport) X(transport) X(waiter)        \
    X(sslcontext) X(server_side) X(server_hostname) X(extra) X(incoming)   \
    X(outgoing) X(sslobj) X(context) X(in_write) X(out_read) X(ssl_read)   \
    X(ssl_write) X(ssl_pending) X(ssl_handshake) X(ssl_unwrap)             \
    X(app_get_buffer) X(app_buffer_updated) X(handshake_timeout)           \
    X(shutdown_timeout) X(handshake_start_time) X(handshake_handle)        \
    X(shutdown_handle) X(in_high_obj) X(in_low_obj) X(out_high_obj)        \
    X(out_low_obj) X(buf) X(buf_view) X(win) X(dict)

/* asyncio.sslproto.SSLProtocol.  Fields holding "None" in asyncio hold
 * NULL here (read them through TL_NONE()). */
typedef struct tl_sslproto {
    PyObject_HEAD
    tl_ssl_state *ss;            /* borrowed: the type holds the module */
    PyObject *loop;
    PyObject *app_protocol;
    PyObject *app_transport;
    PyObject *transport;         /* the underlying transport */
    PyObject *waiter;
    PyObject *sslcontext;
    PyObject *server_side;
    PyObject *server_hostname;
    PyObject *extra;             /* dict */
    PyObject *incoming;          /* ssl.MemoryBIO */
    PyObject *outgoing;
    PyObject *sslobj;            /* ssl.SSLObject (or the context's class) */
    PyObject *context;           /* contextvars.Context of the app calls */

    /* Bound C methods, cached: the data path never looks a name up. */
    PyObject *in_write;          /* incoming.write */
    PyObject *out_read;          /* outgoing.read */
    PyObject *ssl_read;          /* sslobj.read (or its _ssl object's) */
    PyObject *ssl_write;
    PyObject *ssl_pending;
    PyObject *ssl_handshake;
    PyObject *ssl_unwrap;
    PyObject *app_get_buffer;    /* BufferedProtocol app only */
    PyObject *app_buffer_updated;

    PyObject *handshake_timeout;
    PyObject *shutdown_timeout;
    PyObject *handshake_start_time;
    PyObject *handshake_handle;
    PyObject *shutdown_handle;

    /* Flow control: the limits as given (for the getters) and as doubles
     * (asyncio compares ints with whatever numbers it was given). */
    PyObject *in_high_obj, *in_low_obj, *out_high_obj, *out_low_obj;
    double in_high, in_low, out_high, out_low;

    /* get_buffer()'s buffer: allocated on first use, dropped at
     * connection_lost (asyncio keeps 256 KiB per protocol forever). */
    PyObject *buf;               /* bytearray */
    PyObject *buf_view;          /* memoryview of it */
    PyObject *win;               /* sslflow.c's window, reused */

    /* The write backlog: a ring of strong references. */
    PyObject **wb;
    Py_ssize_t wb_head, wb_len, wb_cap;
    Py_ssize_t wb_size;          /* sum of len() of the queued objects */

    long conn_lost;
    unsigned char state;
    unsigned char app_state;
    char ssl_inner;              /* ssl_* are the _ssl object's methods */
    char ssl_more;               /* the SSL object may hold plaintext */
    char context_explicit;       /* context= given (else start_tls may adopt
                                  * the underlying transport's) */
    char app_is_buffer;
    char app_transport_created;
    char eof_received;
    char ssl_writing_paused;
    char app_reading_paused;
    char ssl_reading_paused;
    char app_writing_paused;

    PyObject *dict;
    PyObject *weakreflist;
} tl_sslproto;

/* asyncio's SSLProtocol.max_size: the receive buffer. */
#define TL_SSL_MAX_SIZE (256 * 1024)

#define TL_NONE(o) ((o) != NULL ? (o) : Py_None)

/* ---- sslinit.c: construction, GC, attributes, module state -------- */
int tl_ssl_init_types(PyObject *module, tl_state *st);
int tl_ssl_traverse(tl_state *st, visitproc visit, void *arg);
void tl_ssl_clear(tl_state *st);
void tl_ssl_free(tl_state *st);

/* ---- sslproto.c ----------------------------------------------------- */
/* For a transport written in C (the stream core), the protocol's
 * get_buffer(-1) and buffer_updated(n) without Python calls; they do
 * exactly what the methods do (0, or -1 with the exception the method
 * would raise).  tl_ssl_is_protocol() says whether they apply: 1 for an
 * object of our SSLProtocol type (the type is final). */
int tl_ssl_is_protocol(tl_state *st, PyObject *obj);
int tl_ssl_recv_buffer(PyObject *proto, char **buf, Py_ssize_t *len);
int tl_ssl_buffer_updated(PyObject *proto, Py_ssize_t nbytes);

extern PyMethodDef tl_sslproto_methods[];
/* get_buffer()'s buffer (p->buf, 256 KiB) exists after it: 0 or -1. */
int tl_ssl_ensure_buffer(tl_sslproto *p);
/* New reference to the app transport, made on first use. */
PyObject *tl_ssl_get_app_transport(tl_sslproto *p);

/* Each returns 0, or -1 with an exception set where asyncio's code lets
 * one propagate (the caller then does what asyncio's caller does). */
int tl_ssl_set_state(tl_sslproto *p, int new_state);
int tl_ssl_fatal_error(tl_sslproto *p, PyObject *exc, const char *message);
int tl_ssl_start_shutdown(tl_sslproto *p);
int tl_ssl_abort(tl_sslproto *p, PyObject *exc);
int tl_ssl_do_flush(tl_sslproto *p);
int tl_ssl_do_shutdown(tl_sslproto *p);
int tl_ssl_set_app_protocol(tl_sslproto *p, PyObject *app_protocol);
/* New reference: extra[name], else the transport's, else `dflt`. */
PyObject *tl_ssl_get_extra_info(tl_sslproto *p, PyObject *name,
                                PyObject *dflt);
/* New reference to the handle of loop.call_soon/call_later(delay) of one
 * of our methods (by name), in the connection's context. */
PyObject *tl_ssl_schedule(tl_sslproto *p, PyObject *delay, PyObject *name);
/* loop.get_debug() as 0/1, or -1 with an exception set. */
int tl_ssl_loop_debug(tl_sslproto *p);
/* The pending exception if it is an Exception (new reference, cleared);
 * NULL when it is a BaseException that must propagate (left set). */
PyObject *tl_ssl_catch(void);
/* sslproto.logger.log(level, fmt, a1, a2); a1/a2 may be NULL. */
int tl_ssl_log(tl_ssl_state *ss, int level, const char *fmt, PyObject *a1,
               PyObject *a2);
/* obj.<name>(*args) with obj kept alive over the call; NULL obj is
 * None (asyncio's AttributeError).  New reference. */
PyObject *tl_ssl_call(PyObject *obj, PyObject *name, PyObject *const *args,
                      Py_ssize_t nargs);

/* ---- sslflow.c ------------------------------------------------------ */
/* Call app_protocol.<name>(*args) in the connection's context. */
PyObject *tl_ssl_app_call(tl_sslproto *p, PyObject *name,
                          PyObject *const *args, Py_ssize_t nargs);
/* _write_appdata(): `single` is one object, else `iterable` is walked. */
int tl_ssl_write_appdata(tl_sslproto *p, PyObject *single,
                         PyObject *iterable);
int tl_ssl_do_write(tl_sslproto *p);
int tl_ssl_process_outgoing(tl_sslproto *p);
int tl_ssl_do_read(tl_sslproto *p);
int tl_ssl_call_eof_received(tl_sslproto *p);
int tl_ssl_control_app_writing(tl_sslproto *p);
int tl_ssl_control_ssl_reading(tl_sslproto *p);
/* _set_write_buffer_limits / _set_read_buffer_limits. */
int tl_ssl_set_limits(tl_sslproto *p, PyObject *high, PyObject *low,
                      int writing);
Py_ssize_t tl_ssl_bio_pending(tl_sslproto *p, PyObject *bio);
/* outgoing.pending + the backlog; -1 with an exception set. */
Py_ssize_t tl_ssl_write_buffer_size(tl_sslproto *p);
void tl_ssl_backlog_clear(tl_sslproto *p);
int tl_ssl_backlog_push(tl_sslproto *p, PyObject *data);
int tl_ssl_resume_reading(tl_sslproto *p);
int tl_sslwin_init_type(PyObject *module, tl_ssl_state *ss);
/* A buffer object over buf[0:len] to pass to the BIO or the SSL object
 * (new reference): our reusable window when the callee is known to keep
 * no reference, else a memoryview. */
PyObject *tl_ssl_window(tl_sslproto *p, char *buf, Py_ssize_t len,
                        int writable, int trusted);

/* ---- ssltransport.c ------------------------------------------------- */
int tl_ssltr_init_type(PyObject *module, tl_ssl_state *ss);
/* A new _SSLProtocolTransport for `proto` (new reference). */
PyObject *tl_ssltr_new(tl_ssl_state *ss, PyObject *loop, PyObject *proto);
/* app_transport._closed = True. */
void tl_ssltr_mark_closed(PyObject *tr);

#endif /* TIDELOOP_SSLPROTO_H */
