/* What the socket module does, done in C where tideloop does it once per
 * connection or datagram: a socket address as a Python object, as
 * socketmodule.c's makesockaddr() makes it (the one maker of the peer
 * addresses of accepted connections (accept.c), of received datagrams
 * (udp.c) and of getaddrinfo() answers (dns.c)); an exact socket.socket
 * made for an fd, asked its name and closed without socket.py's Python
 * frames. */
#include "tideloop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/un.h>
#include <unistd.h>

/* An IPv4 address in dotted decimal, as inet_ntop() writes it, without
 * glibc's sprintf() (a third of the cost of making the address).  New
 * reference. */
static PyObject *
sockaddr_ipv4_str(const struct in_addr *in)
{
    const unsigned char *b = (const unsigned char *)&in->s_addr;
    char buf[16];
    char *p = buf;
    for (int i = 0; i < 4; i++) {
        unsigned int v = b[i];
        if (i > 0) {
            *p++ = '.';
        }
        if (v >= 100) {
            *p++ = (char)('0' + v / 100);
            v %= 100;
            *p++ = (char)('0' + v / 10);
        }
        else if (v >= 10) {
            *p++ = (char)('0' + v / 10);
        }
        *p++ = (char)('0' + v % 10);
    }
    return PyUnicode_FromStringAndSize(buf, p - buf);
}

/* AF_UNIX: a Linux abstract name as bytes, else the path decoded as
 * CPython decodes it.  `sa` must hold a NUL after the path (a zeroed
 * sockaddr_storage). */
static PyObject *
sockaddr_unix(const struct sockaddr *sa, socklen_t len)
{
    const struct sockaddr_un *a = (const struct sockaddr_un *)sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
#ifdef __linux__
    if (len > off && a->sun_path[0] == 0) {
        return PyBytes_FromStringAndSize(a->sun_path,
                                         (Py_ssize_t)(len - off));
    }
#endif
    (void)len;
    (void)off;
    return PyUnicode_DecodeFSDefault(a->sun_path);
}

PyObject *
tl_sockaddr_to_py(const struct sockaddr *sa, socklen_t len)
{
    char buf[INET6_ADDRSTRLEN];
    if (len == 0 || sa == NULL) {
        Py_RETURN_NONE;
    }
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        PyObject *host = sockaddr_ipv4_str(&a->sin_addr);
        if (host == NULL) {
            return NULL;
        }
        return Py_BuildValue("Ni", host, ntohs(a->sin_port));
    }
    case AF_INET6: {
        /* inet_ntop(), not getnameinfo(): no "%scope" suffix, as
         * CPython since 3.7 (the scope is the tuple's last item). */
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("siII", buf, ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    case AF_UNIX:
        return sockaddr_unix(sa, len);
    default:
        /* What CPython does for a family it does not know. */
        return Py_BuildValue("iy#", sa->sa_family, sa->sa_data,
                             (Py_ssize_t)sizeof(sa->sa_data));
    }
}

int
tl_pysock_init(tl_state *st)
{
    PyTypeObject *base = ((PyTypeObject *)st->socket_type)->tp_base;
    st->socket_close = PyObject_GetAttrString((PyObject *)base, "close");
    if (st->socket_close == NULL) {
        return -1;
    }
    /* On the class, a member descriptor gives itself. */
    st->socket_family = PyObject_GetAttrString((PyObject *)base, "family");
    if (st->socket_family == NULL) {
        return -1;
    }
    if (Py_TYPE(st->socket_family)->tp_descr_get == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "_socket.socket.family is not a descriptor");
        return -1;
    }
    return 0;
}

int
tl_socket_family(tl_state *st, PyObject *sock)
{
    PyTypeObject *base = ((PyTypeObject *)st->socket_type)->tp_base;
    if (!PyObject_TypeCheck(sock, base)) {
        return -1;
    }
    PyObject *v = Py_TYPE(st->socket_family)
                      ->tp_descr_get(st->socket_family, sock,
                                     (PyObject *)Py_TYPE(sock));
    long family = v == NULL ? -1 : PyLong_AsLong(v);
    Py_XDECREF(v);
    if (family < 0 || family > INT_MAX) {
        PyErr_Clear();
        return -1;
    }
    return (int)family;
}

PyObject *
tl_socket_from_fd(tl_state *st, PyObject *const *spec, int fd)
{
    PyTypeObject *tp = (PyTypeObject *)st->socket_type;
    PyObject *fdobj = PyLong_FromLong(fd);
    PyObject *args = fdobj == NULL ? NULL
                                   : PyTuple_Pack(4, spec[0], spec[1],
                                                  spec[2], fdobj);
    Py_XDECREF(fdobj);
    PyObject *sock = args == NULL ? NULL : tp->tp_new(tp, args, NULL);
    /* socket.socket.__init__(): _socket.socket.__init__(self, family,
     * type, proto, fileno), then self._io_refs = 0, self._closed =
     * False.  The socket object owns the fd once its init took it. */
    if (sock == NULL || tp->tp_base->tp_init(sock, args, NULL) < 0) {
        Py_XDECREF(sock);
        Py_XDECREF(args);
        close(fd);
        return NULL;
    }
    Py_DECREF(args);
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL ||
        tl_slot_set(st, sock, TL_SLOT_IO_REFS, st->str_io_refs, zero) < 0 ||
        tl_slot_set(st, sock, TL_SLOT_CLOSED, st->str_closed, Py_False) <
            0) {
        Py_CLEAR(sock);
    }
    Py_XDECREF(zero);
    return sock;
}

int
tl_socket_close(tl_state *st, PyObject *sock)
{
    PyObject *r;
    if (Py_TYPE(sock) != (PyTypeObject *)st->socket_type) {
        r = PyObject_CallMethodNoArgs(sock, st->str_close);
    }
    else {
        /* socket.socket.close(): self._closed = True; if self._io_refs
         * <= 0: _socket.socket.close(self). */
        if (tl_slot_set(st, sock, TL_SLOT_CLOSED, st->str_closed, Py_True) <
            0) {
            return -1;
        }
        PyObject *refs =
            tl_slot_get(st, sock, TL_SLOT_IO_REFS, st->str_io_refs);
        PyObject *zero = PyLong_FromLong(0);
        int busy = refs == NULL || zero == NULL
                       ? -1
                       : PyObject_RichCompareBool(refs, zero, Py_GT);
        Py_XDECREF(refs);
        Py_XDECREF(zero);
        if (busy != 0) {
            return busy;
        }
        r = PyObject_CallOneArg(st->socket_close, sock);
    }
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

PyObject *
tl_socket_sockname(tl_state *st, PyObject *sock, int fd, int family)
{
    if (Py_TYPE(sock) != (PyTypeObject *)st->socket_type ||
        (family != AF_INET && family != AF_INET6 && family != AF_UNIX)) {
        return PyObject_CallMethodNoArgs(sock, st->str_getsockname);
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return tl_err_from_errno(errno);
    }
    return tl_sockaddr_to_py((struct sockaddr *)&ss, len);
}
