/* transport.h: the socket transports' C struct and what transport.c
 * (TCP and Unix stream sockets) shares with udp.c (datagrams). */
#ifndef TL_TRANSPORT_H
#define TL_TRANSPORT_H

#include "stream.h"

#include <sys/socket.h>

/* Datagrams: the source of the last datagram received and the address
 * object handed to datagram_received() for it.  The next datagram from the
 * same peer reuses the object, and sendto(data, addr) with that very
 * object sends to the stored sockaddr without parsing the tuple again:
 * the request/response pattern of a UDP server (udp.c). */
typedef struct tl_udp_peer {
    PyObject *addr;              /* strong or NULL */
    socklen_t len;
    struct sockaddr_storage ss;
} tl_udp_peer;

typedef struct tl_transport {
    tl_stream s;                 /* s.file is the socket object */
    PyObject *server;            /* strong or NULL */
    PyObject *empty_waiter;      /* strong or NULL (sendfile) */
    PyObject *address;           /* datagrams: connected address or NULL */
    PyObject *registry;          /* strong or NULL: the loop's _transports
                                    (a WeakValueDictionary) that has an
                                    entry for us (accept.c) */
    struct tl_udp_peer *peer;    /* datagrams: allocated on first receive */
    int family;
    char has_peer;               /* datagrams: _extra['peername'] is set */
    char eof;
    char buffered;               /* protocol is a BufferedProtocol */
    char protocol_connected;
} tl_transport;

static inline tl_transport *
TR(PyObject *self)
{
    return (tl_transport *)tl_stream_of(self);
}

static inline tl_state *
tr_state(PyObject *self)
{
    return tl_state_from_type(Py_TYPE(self));
}

/* protocol.<name>(arg), or protocol.<name>() if arg is NULL, with an
 * interned name (tl_state.method_names); the protocol is held for the
 * call, as a bound method would hold it.  Once the connection is lost the
 * protocol is None, as in asyncio.  New reference, or NULL with an
 * exception set. */
static inline PyObject *
tl_transport_call_protocol(tl_transport *t, PyObject *name, PyObject *arg)
{
    PyObject *proto = t->s.protocol != NULL ? t->s.protocol : Py_None;
    PyObject *args[2] = {Py_NewRef(proto), arg};
    PyObject *r = tl_call_method(name, args, arg != NULL ? 2 : 1);
    Py_DECREF(args[0]);
    return r;
}

/* server._attach(transport)/_detach(transport) (3.13+), or
 * server._attach()/_detach() before (`name`: st->str_attach or
 * st->str_detach): 0, or -1 with an exception set. */
static inline int
tl_transport_server_call(PyObject *server, PyObject *name, PyObject *tr)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *args[2] = {server, tr};
    PyObject *r = tl_call_method(name, args, 2);
#else
    PyObject *args[1] = {server};
    PyObject *r = tl_call_method(name, args, 1);
    (void)tr;
#endif
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* accept.c: the tl_stream_kind.forget of both types: the loop's
 * _transports entry that _accept_made() made for the dying transport is
 * dropped at once, as the entry's KeyedRef callback would drop it. */
void tl_accept_forget(PyObject *self);

/* The running Python's messages: 3.14 reworded the socket transport's
 * write() (not the datagram transport's sendto()). */
#define TL_NOT_BYTES_LIKE \
    "data argument must be a bytes-like object, not '%.200s'"

/* TypeError(msg % type name) unless data is bytes, bytearray or a
 * memoryview. */
int tl_transport_check_bytes_like(PyObject *data, const char *msg);

/* Build a socket (or datagram) transport of type `tp` for `sock` (whose
 * fileno() and family are read), as _new(loop, sock, protocol, context)
 * does: the C part of construction, before tideloop/_transports.py's
 * factory does what asyncio's __init__ does.  `ctx` (borrowed) may be
 * NULL.  New reference, or NULL with an exception set. */
PyObject *tl_transport_new(PyTypeObject *tp, PyObject *loop, PyObject *sock,
                           PyObject *protocol, PyObject *ctx);

/* Methods shared by both types (their Python names in brackets). */
PyObject *tl_transport_close(PyObject *self, PyObject *unused);  /* close */
PyObject *tl_transport_abort(PyObject *self, PyObject *unused);  /* abort */
PyObject *tl_transport_force_close(PyObject *self, PyObject *exc);
PyObject *tl_transport_lost(PyObject *self, PyObject *exc);
PyObject *tl_transport_start_reading(PyObject *self, PyObject *unused);
PyObject *tl_transport_set_protocol(PyObject *self, PyObject *protocol);
PyObject *tl_transport_get_write_buffer_size(PyObject *self,
                                             PyObject *unused);
PyObject *tl_transport_new_method(PyObject *cls, PyObject *const *args,
                                  Py_ssize_t nargs);
PyObject *tl_transport_get_server(PyObject *self, void *c);
int tl_transport_set_server(PyObject *self, PyObject *v, void *c);
PyObject *tl_transport_get_protocol_connected(PyObject *self, void *c);
/* A write after the connection was lost: dropped, counted and, from the
 * LOG_THRESHOLD_FOR_CONNLOST_WRITES-th on, logged.  None, or NULL. */
PyObject *tl_transport_drop_write(PyObject *self);
/* tl_stream_kind hooks of both types. */
PyObject *tl_transport_fatal_close(PyObject *self, PyObject *exc);
int tl_transport_traverse(PyObject *self, visitproc visit, void *arg);
void tl_transport_clear(PyObject *self);

/* The methods table entries both types share. */
#define TL_TRANSPORT_COMMON_METHODS                                         \
    {"close", (PyCFunction)tl_transport_close, METH_NOARGS,                 \
     "Close the transport after flushing buffered data."},                  \
    {"abort", (PyCFunction)tl_transport_abort, METH_NOARGS,                 \
     "Close the transport immediately, dropping buffered data."},           \
    {"is_closing", (PyCFunction)tl_stream_is_closing, METH_NOARGS, NULL},   \
    {"is_reading", (PyCFunction)tl_stream_is_reading, METH_NOARGS,       \
     NULL},                                                                 \
    {"pause_reading", (PyCFunction)tl_stream_pause_reading,              \
     METH_NOARGS, NULL},                                                    \
    {"resume_reading", (PyCFunction)tl_stream_resume_reading,            \
     METH_NOARGS, NULL},                                                    \
    {"set_protocol", (PyCFunction)tl_transport_set_protocol, METH_O, NULL}, \
    {"get_protocol", (PyCFunction)tl_stream_get_protocol, METH_NOARGS,      \
     NULL},                                                                 \
    {"get_write_buffer_size",                                               \
     (PyCFunction)tl_transport_get_write_buffer_size, METH_NOARGS, NULL},   \
    {"_force_close", (PyCFunction)tl_transport_force_close, METH_O, NULL},  \
    {"_call_connection_lost", (PyCFunction)tl_transport_lost, METH_O,       \
     NULL},                                                                 \
    {"_start_reading", (PyCFunction)tl_transport_start_reading,             \
     METH_NOARGS, NULL},                                                    \
    {"_new", (PyCFunction)(void (*)(void))tl_transport_new_method,          \
     METH_FASTCALL | METH_CLASS, NULL}

/* The attributes both types share. */
#define TL_TRANSPORT_COMMON_GETSET                                          \
    TL_STREAM_GET("_sock", TL_SA_FILE),                                     \
    TL_STREAM_GET("_sock_fd", TL_SA_FD),                                    \
    TL_STREAM_GET("_protocol", TL_SA_PROTOCOL),                             \
    TL_STREAM_GET("_context", TL_SA_CONTEXT),                               \
    TL_STREAM_GET("_closing", TL_SA_CLOSING),                               \
    TL_STREAM_GET("_conn_lost", TL_SA_CONN_LOST),                           \
    TL_STREAM_GET("_paused", TL_SA_PAUSED),                                 \
    TL_STREAM_GET("_reading_watched", TL_SA_READING),                       \
    TL_STREAM_GET("_writing_watched", TL_SA_WRITING),                       \
    {"_server", (getter)tl_transport_get_server,                            \
     (setter)tl_transport_set_server, NULL, NULL},                          \
    {"_protocol_connected", (getter)tl_transport_get_protocol_connected,    \
     NULL, NULL, NULL}

/* The kind of both types, with their own _read_ready/_write_ready. */
#define TL_TRANSPORT_KIND(read_ready, write_ready)                          \
    {TL_H_TR_FATAL, TL_H_TR_FINALIZE, TL_H_TR_REPR,                         \
     tl_transport_force_close, tl_transport_traverse, tl_transport_clear,   \
     TL_STREAM_METHODS(tl_transport_lost, read_ready, write_ready),         \
     tl_accept_forget}

/* udp.c: the datagram transport's kind. */
extern tl_stream_kind tl_udp_kind;

#endif /* TL_TRANSPORT_H */
