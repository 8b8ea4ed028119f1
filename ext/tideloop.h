/* tideloop: shared declarations of the C core (module tideloop._core). */
#ifndef TIDELOOP_H
#define TIDELOOP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "backend.h"

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *
Py_NewRef(PyObject *o)
{
    Py_INCREF(o);
    return o;
}

static inline PyObject *
Py_XNewRef(PyObject *o)
{
    Py_XINCREF(o);
    return o;
}

static inline int
PyModule_AddObjectRef(PyObject *mod, const char *name, PyObject *value)
{
    Py_INCREF(value);
    if (PyModule_AddObject(mod, name, value) < 0) {
        Py_DECREF(value);
        return -1;
    }
    return 0;
}
#endif

/* Per-module state.  There are no C globals: everything lives here, and
 * every object keeps a borrowed pointer to it (the types hold the module,
 * which owns the state). */
typedef struct tl_state {
    PyTypeObject *LoopBaseType;
    PyTypeObject *HandleType;
    PyTypeObject *TimerHandleType;

    PyObject *FutureType;        /* asyncio.Future */
    PyObject *tasks_dict;        /* asyncio.tasks.__dict__ (for Task) */
    PyObject *str_Task;          /* interned "Task" */
    PyObject *str_name;          /* interned "name" */
    PyObject *str_create_task_py; /* interned "_create_task_py" */
    PyObject *set_running_loop;  /* asyncio.events._set_running_loop */

    /* The Python helpers the C code calls on rare paths: one table,
     * installed once by _core._set_helpers(name=function, ...) from
     * tideloop/_loop.py, _transports.py and _pipes.py (each entry NULL
     * before that), traversed and cleared as one array.  The names are
     * the keywords of _set_helpers() (module.c). */
    union {
        struct {
            PyObject *report_exception;  /* (handle, exc) -> None */
            PyObject *extract_stack;     /* () -> list (debug traceback) */
            PyObject *log_slow;          /* (loop, handle, seconds) */
            PyObject *check_debug;       /* (loop, callback, method) */
            PyObject *handle_repr;       /* (handle) -> str */
            PyObject *fd_origin;         /* (source_traceback, writer) */
            PyObject *tr_fatal_error;    /* (transport, exc, message) */
            /* (loop, sock, protocol, peername, server, context): an
             * accepted connection's transport for a socket subclass */
            PyObject *tr_accepted;
            PyObject *tr_debug_log;      /* (transport, format) */
            PyObject *tr_warn_send;      /* (transport,): after close */
            PyObject *tr_finalize;       /* (transport,): unclosed */
            PyObject *tr_repr;           /* (transport,) -> str */
            PyObject *pipe_fatal_error;  /* (transport, exc, message) */
            PyObject *pipe_log;          /* (level, msg, transport|None) */
            PyObject *pipe_finalize;     /* (transport,): unclosed */
            PyObject *pipe_repr;         /* (transport,) -> str */
        };
        PyObject *helpers[16];
    };

    /* The C transports (stream.c; transport.c, udp.c, pipe.c). */
    PyTypeObject *SocketTransportType;
    PyTypeObject *DatagramTransportType;
    PyTypeObject *ReadPipeType;
    PyTypeObject *WritePipeType;
    PyObject *BufferedProtocolType;  /* asyncio.BufferedProtocol */
    /* Interned names of the methods the transports call per read, write
     * or connection, and of what they set per connection
     * (PyObject_VectorcallMethod: no lookup of a C string,
     * no argument tuple).  module.c interns them from tl_method_names[],
     * in this order. */
    union {
        struct {
            PyObject *str_data_received;
            PyObject *str_datagram_received;
            PyObject *str_get_buffer;
            PyObject *str_buffer_updated;
            PyObject *str_eof_received;
            PyObject *str_connection_lost;
            PyObject *str_error_received;
            PyObject *str_sendto;
            /* An accepted connection's transport (transport.c); the
             * sock_* methods use _transports and
             * _ensure_fd_no_transport too. */
            PyObject *str_connection_made;
            PyObject *str_start_reading;
            PyObject *str_getsockname;
            PyObject *str_attach;
            PyObject *str_transports;
            PyObject *str_ensure_fd_no_transport;
            PyObject *str_socket;          /* get_extra_info() keys */
            PyObject *str_sockname;
            PyObject *str_peername;
            /* sockops.c: the sock_* methods' first try and wait. */
            PyObject *str_fileno;
            PyObject *str_gettimeout;
            PyObject *str_done;
            PyObject *str_set_result;
            PyObject *str_set_exception;
            PyObject *str_cancel;
            PyObject *str_data;
            PyObject *str_sock_waiters;
            PyObject *str_sock_sweeper;
            PyObject *str_sock_arm_sweeper;
            PyObject *str_sock_check;
            /* accept.c, transport.c, pysock.c: an accepted connection's
             * socket object and transport made and closed in C. */
            PyObject *str_extra;           /* asyncio's transport slots */
            PyObject *str_loop_slot;       /* "_loop" */
            PyObject *str_protocol_paused;
            PyObject *str_high_water;
            PyObject *str_low_water;
            PyObject *str_sock;            /* TransportSocket's slot */
            PyObject *str_io_refs;         /* socket.socket's slots */
            PyObject *str_closed;
            PyObject *str_close;
            PyObject *str_key;             /* weakref.KeyedRef's slot */
            PyObject *str_pending_removals; /* WeakValueDictionary's */
            PyObject *str_commit_removals;
            PyObject *str_remove;
            PyObject *str_iterating;
            PyObject *str_detach;          /* Server._detach */
            PyObject *str_accept_made;     /* the loop's, to call_soon() */
            PyObject *str_call_soon;
        };
        PyObject *method_names[45];
    };
    /* sockops.c: socket.socket (whose recv() and send() it may do
     * itself), and per operation the socket method it calls [0..5] and
     * the public name of the loop's method [6..11], interned. */
    PyObject *socket_type;
    PyObject *sop_names[12];
    PyObject *maybe_pause;       /* _FlowControlMixin._maybe_pause_protocol */
    PyObject *maybe_resume;      /* ... and _maybe_resume_protocol */
    PyObject *TransportSocket;   /* asyncio.trsock.TransportSocket */
    PyObject *socket_close;      /* _socket.socket.close (pysock.c) */
    PyObject *socket_family;     /* _socket.socket.family, a member */
    PyObject *KeyedRefType;      /* weakref.KeyedRef (accept.c) */
    PyObject *WeakValueDictType; /* weakref.WeakValueDictionary */
    /* Where the Python classes' __slots__ that accept.c, transport.c
     * and pysock.c set per connection sit in their objects (enum
     * tl_slot_id; -1: set by name). */
    Py_ssize_t slot_offsets[9];  /* TL_SLOT_COUNT */

    PyObject *str_context;       /* interned "context" */
    /* The last equal but not identical "context" keyword call_soon() was
     * given: asyncio's C Future and Task pass one of their own
     * (Py_BuildValue("(s)", "context")), on every callback scheduled. */
    PyObject *str_context_seen;
    PyObject *str_loop;          /* interned "loop" */
    PyObject *kw_loop;           /* ("loop",) for Future(loop=...) */
    PyObject *kw_context;        /* ("context",) for call_soon() */
    PyObject *kw_loop_name;      /* ("loop", "name") for Task() */
    PyObject *kw_loop_name_context; /* ("loop", "name", "context") */
    PyObject *str_handle_signal; /* interned "_handle_signal" */
    PyObject *empty_tuple;
    PyObject *gaierror;          /* socket.gaierror */
    /* dns.c: socket._intenum_converter()'s answers for AddressFamily [0]
     * and SocketKind [1], dicts by value (NULL until the first lookup). */
    PyObject *gai_enums[2];

    struct tl_ssl_state *ssl;    /* sslinit.c: the SSL protocol's state */

    /* chain.c: wrap_future()'s fast path.  Its type; what it takes from
     * concurrent.futures and asyncio.futures (TL_CHAIN_*); the names it
     * calls, interned. */
    PyObject *FutureChainType;
    PyObject *chain_objs[5];
    int chain_running_check;  /* see chain.c's chain_post_state() */
    PyObject *chain_names[15];

    /* handle.c: freed Handle [0] and TimerHandle [1] objects kept for
     * reuse, linked through their callback field. */
    struct HandleObject *handle_free[2];
    int handle_nfree[2];
} tl_state;

/* Indexes of tl_state.slot_offsets: asyncio's transport slots (of
 * _FlowControlMixin and BaseTransport), TransportSocket's _sock,
 * socket.socket's _io_refs and _closed, weakref.KeyedRef's key. */
enum tl_slot_id {
    TL_SLOT_EXTRA, TL_SLOT_LOOP, TL_SLOT_PROTOCOL_PAUSED,
    TL_SLOT_HIGH_WATER, TL_SLOT_LOW_WATER, TL_SLOT_TSOCK_SOCK,
    TL_SLOT_IO_REFS, TL_SLOT_CLOSED, TL_SLOT_KEY, TL_SLOT_COUNT
};

/* Indexes of tl_state.helpers, in the order of its named fields. */
enum tl_helper_id {
    TL_H_REPORT_EXCEPTION, TL_H_EXTRACT_STACK, TL_H_LOG_SLOW,
    TL_H_CHECK_DEBUG, TL_H_HANDLE_REPR, TL_H_FD_ORIGIN,
    TL_H_TR_FATAL, TL_H_TR_ACCEPTED, TL_H_TR_DEBUG_LOG,
    TL_H_TR_WARN_SEND, TL_H_TR_FINALIZE, TL_H_TR_REPR,
    TL_H_PIPE_FATAL, TL_H_PIPE_LOG, TL_H_PIPE_FINALIZE, TL_H_PIPE_REPR,
    TL_H_COUNT
};

struct LoopObject;

/* asyncio.Handle's behaviour in C.  A TimerHandle extends it. */
typedef struct HandleObject {
    PyObject_HEAD
    PyObject *callback;          /* NULL once cancelled */
    PyObject *args;              /* tuple, or the one argument if args_one;
                                  * NULL once cancelled */
    PyObject *context;           /* contextvars.Context; NULL if ctx_lazy */
    struct LoopObject *loop;     /* strong */
    PyObject *source_traceback;  /* list or NULL (debug mode only) */
    PyObject *repr;              /* repr saved at cancel() in debug mode */
    PyObject *weakreflist;
    char cancelled;
    char threadsafe;             /* created by call_soon_threadsafe */
    char is_timer;               /* a TimerHandleObject */
    char running;                /* threadsafe, 3.14+: callback running */
    /* Made in an empty context: its copy, an empty Context, is made
     * only if asked for (handle.c); `context` is the loop's spare one
     * while the callback runs, NULL otherwise. */
    char ctx_lazy;
    /* Made with one argument: `args` is that argument, not a tuple
     * (handle.c: handle_set_args, handle_args_tuple). */
    char args_one;
    /* `context` is a copy only this handle holds, untracked while the
     * handle waits in the ready queue or the heap (loop.h: loop_gc_*). */
    char ctx_untracked;
} HandleObject;

typedef struct TimerHandleObject {
    HandleObject base;
    double when;                 /* seconds on the loop's clock */
    PyObject *when_obj;          /* the object given to call_at, or NULL */
    uint64_t seq;                /* ties between equal `when` are FIFO */
    char in_heap;                /* in the loop's heap (maybe cancelled) */
} TimerHandleObject;

/* dns.c: the libuv loop whose thread pool runs the lookups, and the
 * lookups in flight and answered.  Created at a loop's first lookup: a
 * loop that never resolves a name holds none of libuv's fds. */
typedef struct tl_dns {
    uv_loop_t loop;
    char primed;                 /* libuv's own fds are in its set */
    struct tl_dns_req *inflight;
    struct tl_dns_req *done;
    struct tl_dns_req *done_tail;
    int count;                   /* in flight */
} tl_dns;

/* Memory owned by libuv handles: freed only after every close callback
 * has run, so it is allocated apart from the Python object. */
typedef struct tl_uv {
    /* The OS side of the loop (backend.h): fd watchers, the timer for
     * the earliest deadline, wake-ups. */
    const tl_backend_ops *be;
    struct tl_backend *bd;       /* the backend's own state */
    /* DNS's libuv loop: with the epoll backend NULL until the first
     * lookup; the libuv backend makes it at loop creation and waits in
     * it (dns->loop), and DNS uses that one. */
    tl_dns *dns;
    int sig_rfd;
    int sig_wfd;
    /* Threads in be->wakeup() without the GIL: close waits for them so
     * that the backend is not freed under them. */
    atomic_int wake_writers;
    char sig_pending;            /* the wake-up socket became readable */
    char timer_fired;            /* the armed deadline was reached */
} tl_uv;

/* timers.c: one entry of the loop's timer heap, the sort key kept next
 * to the timer.  `when` is the timer's, with NaN as -inf (due at once). */
typedef struct tl_timer_slot {
    double when;
    uint64_t seq;
    TimerHandleObject *t;        /* strong */
} tl_timer_slot;

/* Room for the fds of lingering sock_* registrations (poll.c). */
#define TL_LINGER_MAX 16

typedef struct LoopObject {
    PyObject_HEAD
    tl_state *st;
    tl_uv *uv;                   /* NULL once closed */

    /* Ready queue: a ring of strong references to handles. */
    HandleObject **rq;
    Py_ssize_t rq_head;
    Py_ssize_t rq_len;
    Py_ssize_t rq_cap;           /* power of two */

    /* Timer heap ordered by (when, seq) (timers.c). */
    tl_timer_slot *heap;
    Py_ssize_t heap_len;
    Py_ssize_t heap_cap;
    Py_ssize_t heap_cancelled;   /* cancelled timers still in the heap */
    /* asyncio's _timer_cancelled_count, kept as asyncio keeps it (it
     * decides the rebuild): a cancelled timer that leaves the heap as due
     * is not taken off it, so it may count more than heap_cancelled. */
    Py_ssize_t timer_cancelled_count;
    uint64_t timer_seq;
    int64_t armed_ns;            /* backend timer deadline, 0 if disarmed */

    PyObject *thread_id;         /* None or int: running in that thread */
    PyObject *task_factory;      /* _task_factory: NULL/None = default */
    PyObject *debug_obj;         /* what set_debug() got, or NULL */
    PyObject *current_handle;    /* debug mode only */
    /* An empty contextvars.Context that no handle owns, lent to each
     * handle with a lazy context while its callback runs (handle.c);
     * NULL while lent or not yet made. */
    PyObject *empty_ctx;
    PyObject *weakreflist;
    char closed;
    char stopping;
    char debug;
    char in_run;                 /* inside _run(): no re-entrant _run */
    /* Both under the GIL: the loop is (about to be) blocked in the poll
     * without the GIL, and whether wakefd was written since. */
    char sleeping;
    char wakeup_sent;
    /* Blocking polls left that sleep without a try first (loop.c). */
    int poll_try_skip;
    /* add_signal_handler() was called: poll every iteration (loop.c). */
    char signals_watched;

    /* add_reader/add_writer watchers, indexed by fd (see poll.c). */
    struct tl_poller **pollers;
    int npollers;                /* the table's size */
    int npollers_live;           /* pollers in it (loop_may_have_io) */
    /* fds whose ended sock_* waits left their registration lingering
     * until the iteration's end (poll.c). */
    int lingering[TL_LINGER_MAX];
    int n_lingering;

    char *rbuf;                  /* 256 KiB read buffer of transports */

    /* Counters for loop.stats(): plain integers bumped on paths that
     * exist anyway (timers scheduled is timer_seq). */
    uint64_t n_iterations;
    uint64_t n_callbacks;        /* handles run (not cancelled ones) */
    uint64_t n_timers_fired;
    uint64_t n_timers_cancelled; /* cancelled while in the heap */
    uint64_t n_slow_callbacks;   /* debug mode: over slow_callback_duration */
    uint64_t n_bytes_read;       /* C transports (transport.c) */
    uint64_t n_bytes_written;
    Py_ssize_t n_transports;     /* C transports not yet connection-lost */
    int64_t created_ns;          /* loop clock at creation */
    const char *backend;         /* its backend's name: "epoll", "libuv" */
    int64_t closed_ns;           /* loop clock at close(), or 0 */

    /* threadsafe.c: backpressure on call_soon_threadsafe producers. */
    Py_ssize_t ts_pending;       /* threadsafe handles in the ready queue */
    struct tl_tsafe *ts;         /* producers' wait state, made on demand */
} LoopObject;

/* module.c */
tl_state *tl_state_from_type(PyTypeObject *type);

/* obj.<slot> = value (borrowed) for a __slots__ member of a Python class
 * (enum tl_slot_id), stored as its member descriptor stores it, or set
 * by name where the class has no such plain member.  0, or -1 with an
 * exception set. */
static inline int
tl_slot_set(tl_state *st, PyObject *obj, int slot, PyObject *name,
            PyObject *value)
{
    Py_ssize_t off = st->slot_offsets[slot];
    if (off < 0) {
        return PyObject_SetAttr(obj, name, value);
    }
    PyObject **p = (PyObject **)((char *)obj + off);
    Py_XSETREF(*p, Py_NewRef(value));
    return 0;
}

/* obj.<slot>, read as tl_slot_set() writes it.  New reference. */
static inline PyObject *
tl_slot_get(tl_state *st, PyObject *obj, int slot, PyObject *name)
{
    Py_ssize_t off = st->slot_offsets[slot];
    PyObject *v = off < 0 ? NULL : *(PyObject **)((char *)obj + off);
    /* Unset: the AttributeError the descriptor raises. */
    return v != NULL ? Py_NewRef(v) : PyObject_GetAttr(obj, name);
}

/* loop.c */
int tl_loop_init_types(PyObject *module, tl_state *st);
int64_t tl_monotonic_ns(void);
/* schedule.c: parse a lone context= keyword as call_soon() does; *ctx is borrowed or
 * NULL. */
int tl_loop_parse_context_kw(LoopObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames,
                             const char *fname, PyObject **ctx);

/* accept.c: _accept_batch(socket_cls, family, type, proto, fd, n,
 * aborted_continues), where accept4() takes SOCK_NONBLOCK (see accept.c).
 * Not in a portable build: accept4() is not everywhere libuv runs (macOS
 * lacks it); there _loop.py's accept loop calls sock.accept().
 * New reference. */
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC) && \
    !defined(TIDELOOP_PORTABLE)
#define TL_HAVE_ACCEPT_BATCH 1
PyObject *tl_accept_batch(LoopObject *self, PyObject *const *args,
                          Py_ssize_t nargs);
#endif

/* pysock.c: the address `sa` (`len` bytes, in a zeroed buffer) as
 * socketmodule.c's makesockaddr() makes it: None for len 0, (host, port)
 * for AF_INET, (host, port, flowinfo, scope_id) for AF_INET6, the path
 * (str) or Linux abstract name (bytes) for AF_UNIX, (family, sa_data)
 * for other families.  New reference. */
PyObject *tl_sockaddr_to_py(const struct sockaddr *sa, socklen_t len);
/* Find _socket.socket.close and .family (module creation, after
 * tl_sockops_init()): 0, or -1 with an exception set. */
int tl_pysock_init(tl_state *st);
/* The address family a socket object holds (_socket.socket's `family`
 * member: a plain int, no AddressFamily enum, no syscall), or -1 with no
 * exception set if `sock` is not a _socket.socket or its family can't be
 * read. */
int tl_socket_family(tl_state *st, PyObject *sock);
/* socket.socket(spec[0], spec[1], spec[2], fileno=fd) (family, type,
 * proto), made as socket.py's __init__ makes it, without its frame;
 * `fd` is closed if it fails.  New reference. */
PyObject *tl_socket_from_fd(tl_state *st, PyObject *const *spec, int fd);
/* sock.close(), socket.py's close() done in C for an exact socket.socket:
 * 0, or -1 with an exception set. */
int tl_socket_close(tl_state *st, PyObject *sock);
/* sock.getsockname() of the socket on `fd` of address family `family`,
 * straight from getsockname() for an exact socket.socket of AF_INET,
 * AF_INET6 or AF_UNIX.  New reference. */
PyObject *tl_socket_sockname(tl_state *st, PyObject *sock, int fd,
                             int family);

/* accept.c: find weakref.KeyedRef and WeakValueDictionary (module
 * creation): 0, or -1 with an exception set. */
int tl_accept_init(tl_state *st);
/* accept.c: _accept_made(protocol_factory, server, nodelay, context, run),
 * what asyncio's accept tasks do for a run of accepted connections
 * [conn, addr, conn, addr, ...] (see accept.c); in every build.  New
 * reference. */
PyObject *tl_accept_made(LoopObject *self, PyObject *const *args,
                         Py_ssize_t nargs);

/* dns.c */
PyObject *tl_dns_getaddrinfo(LoopObject *loop, PyObject *const *args,
                             Py_ssize_t nargs);
PyObject *tl_dns_getnameinfo(LoopObject *loop, PyObject *args);
int tl_dns_dispatch(LoopObject *loop);
void tl_dns_poll(tl_uv *u);
void tl_dns_close(tl_uv *u);
int tl_dns_after_fork(LoopObject *loop);
/* Make u->dns now (the libuv backend, at loop creation): 0, or -1 with
 * an exception set. */
int tl_dns_create(tl_uv *u);

/* Answers wait to be dispatched (checked each iteration: no call). */
static inline int
tl_dns_answered(tl_uv *u)
{
    return u->dns != NULL && u->dns->done != NULL;
}

/* errors.c: errno and exception helpers. */
/* The pending exception, normalized with its traceback (new reference). */
PyObject *tl_fetch_exception(void);
/* Make `exc` the pending exception; steals the reference. */
void tl_restore_exception(PyObject *exc);
/* Set OSError (the right subclass) for errno `err`; returns NULL. */
PyObject *tl_err_from_errno(int err);
/* Whether the pending exception must stop the loop rather than close a
 * transport (SystemExit, KeyboardInterrupt). */
int tl_err_stops_loop(void);
/* What asyncio raises where it calls self._loop.<name>() after the
 * connection was lost (self._loop is None): AttributeError; NULL. */
PyObject *tl_err_none_has_no(const char *name);
/* An exception raised in a `finally` block: the pending one gets `first`
 * (stolen; NULL: nothing to do) as its __context__. */
void tl_err_chain(PyObject *first);

/* obj.<name>(*args) with an interned name (tl_state.method_names):
 * what PyObject_CallMethod() does, without building the name and the
 * argument tuple.  args[0] is obj; nargs counts it.  New reference. */
static inline PyObject *
tl_call_method(PyObject *name, PyObject **args, size_t nargs)
{
    return PyObject_VectorcallMethod(
        name, args, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* The instance dict of a new object whose type has a __dict__ slot (a
 * transport): on 3.11 an empty one at once, elsewhere none (NULL, made
 * when first used).  3.11 specializes a method call on such an object
 * (`transport.write(...)`: LOAD_METHOD_WITH_DICT) only once its dict
 * exists; with a NULL dict the call stayed generic and looked the method
 * up in the type on every call.  3.12+ specializes the NULL dict itself
 * (LOAD_ATTR_METHOD_LAZY_DICT) and not an existing one.  0, or -1 with
 * an exception set. */
static inline int
tl_new_instance_dict(PyObject **dict)
{
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    if (*dict == NULL && (*dict = PyDict_New()) == NULL) {
        return -1;
    }
#else
    (void)dict;
#endif
    return 0;
}

/* chain.c: _core._wrap_future(loop, concurrent_future). */
int tl_chain_init(PyObject *module, tl_state *st);

/* handle.c */
int tl_handle_init_types(PyObject *module, tl_state *st);
/* Run one handle.  Returns 0, or -1 with a BaseException set that must
 * stop the loop (SystemExit, KeyboardInterrupt, or a failing handler). */
int tl_handle_run(HandleObject *h);
/* New reference to a Handle, not tracked by the GC: the ready queue
 * takes it so (rq_adopt, loop.h); steals nothing. */
HandleObject *tl_handle_make(tl_state *st, LoopObject *loop,
                             PyObject *callback, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *context);
/* The same, tracked. */
HandleObject *tl_handle_new(tl_state *st, LoopObject *loop,
                            PyObject *callback, PyObject *const *args,
                            Py_ssize_t nargs, PyObject *context);
/* New reference to a TimerHandle, not tracked by the GC until
 * tl_timers_push() takes it; steals nothing. */
TimerHandleObject *tl_timer_new(tl_state *st, LoopObject *loop, double when,
                                PyObject *when_obj, PyObject *callback,
                                PyObject *const *args, Py_ssize_t nargs,
                                PyObject *context);
void tl_handle_clear_callback(HandleObject *h);
/* Free the kept Handle objects (module free). */
void tl_handle_free_lists(tl_state *st);
/* Run a transport's protocol callback in its context: 1 if entered (pass
 * it to tl_context_leave()), 0 if already current or none. */
int tl_context_join(PyObject *ctx);
/* A transport's optional context argument: Context or None (*ctx NULL). */
int tl_context_arg(PyObject *arg, PyObject **ctx);
void tl_context_leave(PyObject *ctx, int joined);

/* threadsafe.c: a call_soon_threadsafe producer waits (GIL released) while
 * TL_TSAFE_HIGH threadsafe handles are queued on a running loop, until the
 * loop is down to TL_TSAFE_LOW (or stops, or seems stalled). */
#define TL_TSAFE_HIGH 1024
#define TL_TSAFE_LOW 256
/* Before queueing a threadsafe handle: 0, or -1 with an exception set (a
 * signal handler raised while the main thread waited). */
int tl_tsafe_wait(LoopObject *loop);
static inline int
tl_tsafe_throttle(LoopObject *loop)
{
    return loop->ts_pending < TL_TSAFE_HIGH ? 0 : tl_tsafe_wait(loop);
}
/* The loop ran a batch: wake the producers if it is down to low water. */
void tl_tsafe_drained(LoopObject *loop);
/* The loop stops, or its run exits: wake every producer. */
void tl_tsafe_release(LoopObject *loop);
void tl_tsafe_free(LoopObject *loop);

/* transport.c, udp.c (more in stream.h, transport.h) */
int tl_transport_init_types(PyObject *module, tl_state *st);
int tl_udp_init_types(PyObject *module, tl_state *st);
/* stream.c: visit / clear the __slots__ of the asyncio bases of a C
 * transport. */
int tl_base_slots_visit(PyObject *self, visitproc visit, void *arg);
void tl_base_slots_clear(PyObject *self);

/* pipe.c */
int tl_pipe_init_types(PyObject *module, tl_state *st);

/* poll.c */
PyObject *tl_poll_add_reader(LoopObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames);
PyObject *tl_poll_add_writer(LoopObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames);
PyObject *tl_poll_remove_reader(LoopObject *self, PyObject *fileobj);
PyObject *tl_poll_remove_writer(LoopObject *self, PyObject *fileobj);
/* Queue the handles of the fds that fired, in order; `push` steals a
 * reference. */
int tl_poll_dispatch(LoopObject *self, tl_event *evs, int n,
                     int (*push)(LoopObject *, HandleObject *));
int tl_poll_traverse(LoopObject *self, visitproc visit, void *arg);
int tl_poll_set_handle(LoopObject *self, int fd, int writer,
                       HandleObject *h);
void tl_poll_close_all(LoopObject *self);
/* Watched fds, and how many have a reader and a writer handle. */
void tl_poll_count(LoopObject *self, int *fds, int *readers, int *writers);
/* [(fd, reader handle or None, writer handle or None), ...] by fd. */
PyObject *tl_poll_watchers(LoopObject *self, PyObject *Py_UNUSED(ignored));
int tl_poll_after_fork(LoopObject *self);
PyObject *tl_poll_fd_events(LoopObject *self, PyObject *fileobj);
/* sock_* waits (sockops.c, see poll.c's lingering watches).  Watch `fd`
 * (an int) for `sock`'s pending operation, as _add_reader(fd, callback)
 * (or the writer's) does, taking over a registration of `sock` that
 * lingers: the Handle, new reference. */
PyObject *tl_poll_sock_wait(LoopObject *self, PyObject *fd,
                            PyObject *callback, int writer, PyObject *sock);
/* The identity remembered for `sock`'s waits on `fd` (borrowed), or NULL;
 * tl_poll_sock_remember() remembers it (a watched fd only). */
PyObject *tl_poll_sock_ident(LoopObject *self, int fd, PyObject *sock);
void tl_poll_sock_remember(LoopObject *self, int fd, PyObject *sock,
                           PyObject *ident);
/* A sock_* wait on `fd` is over: its handle cancelled and gone, as
 * _remove_reader() (or the writer's) does, its registration maybe left
 * lingering.  0, or -1 with an exception set. */
int tl_poll_end_wait(LoopObject *self, int fd, int writer);
/* Drop the lingering registrations (the end of each iteration). */
void tl_poll_flush(LoopObject *self);
/* Closing transports (see poll.c): leave `fd`'s registration lingering
 * for `owner` (1) or not (0: unwatch as usual); forget it, if it still
 * lingers for `owner`, right before the fd's close(). */
int tl_poll_linger_closing(LoopObject *self, int fd, int sides,
                           PyObject *owner);
void tl_poll_close_forget(LoopObject *self, int fd, PyObject *owner);

/* schedule.c: the loop's C entry points for the other files.  Queue `h` on
 * the ready queue, as call_soon() does (steals the reference; -1 with an
 * exception set on failure, the reference then dropped); no wake-up, so
 * only from the loop's own thread. */
int tl_loop_push_ready(LoopObject *loop, HandleObject *h);
/* loop.call_soon(callback[, arg], context=ctx) from C, without looking
 * the method up (what asyncio 3.15's transports do with their
 * _call_soon()): `arg` and `ctx` may be NULL (none; a copy of the current
 * context).  New reference to the handle. */
PyObject *tl_loop_call_soon(LoopObject *loop, PyObject *callback,
                            PyObject *arg, PyObject *ctx);
/* New reference to an asyncio.Future attached to `loop`, as
 * loop.create_future() returns. */
PyObject *tl_loop_create_future(LoopObject *loop);

/* timers.c: the loop's timer heap, ordered by (when, seq).  Push takes
 * a new reference to t (and gives it its seq), t as tl_timer_new() made
 * it, and has the GC track it unless the loop runs; 0, or -1 with
 * MemoryError set. */
int tl_timers_push(LoopObject *loop, TimerHandleObject *t);
/* Remove the earliest timer; returns the reference the heap held (give
 * it to the ready queue or to loop_gc_release(), loop.h). */
TimerHandleObject *tl_timers_pop(LoopObject *loop);
/* Drop cancelled timers as asyncio's _run_once does: all of them when
 * they are over half of more than 100, else those at the head.  May run
 * arbitrary code (the last references to their contexts). */
void tl_timers_prune(LoopObject *loop);
/* A TimerHandle was cancelled (handle.c): counted; prune drops it. */
void tl_loop_timer_cancelled(LoopObject *loop, TimerHandleObject *t);

#endif /* TIDELOOP_H */
