/* The accept loop of create_server() and create_unix_server().
 *
 * asyncio's _accept_connection() runs once per readiness event of a
 * listening socket and calls sock.accept() up to `backlog` times, then
 * conn.setblocking(False) for each connection.  _accept_batch() does those
 * accepts in one C call: accept4(SOCK_NONBLOCK | SOCK_CLOEXEC), so the fd
 * is non-blocking from the start, and a socket.socket built for it with
 * `type | SOCK_NONBLOCK`, which CPython's socket init takes as "timeout
 * 0" (and strips from sock.type) instead of a setblocking() syscall.  The
 * address is made as socket.accept() makes it (socketmodule.c's
 * makesockaddr()).  What to do with the connections and with the error
 * that stopped the batch stays in tideloop/_loop.py, as in asyncio. */
#include "tideloop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef TL_HAVE_ACCEPT_BATCH

/* An IPv4 address in dotted decimal, as inet_ntop() writes it, without
 * glibc's sprintf() (a third of the cost of making the address).  New
 * reference. */
static PyObject *
accept_ipv4_str(const struct in_addr *in)
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

/* socketmodule.c's makesockaddr() for the families _loop.py hands here
 * (AF_INET, AF_INET6, AF_UNIX); `ss` was zeroed before accept4().  New
 * reference. */
static PyObject *
accept_make_addr(const struct sockaddr_storage *ss, socklen_t len)
{
    char buf[INET6_ADDRSTRLEN];
    if (len == 0) {
        Py_RETURN_NONE;
    }
    switch (ss->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        PyObject *host = accept_ipv4_str(&a->sin_addr);
        if (host == NULL) {
            return NULL;
        }
        return Py_BuildValue("Ni", host, ntohs(a->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("siII", buf, ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    case AF_UNIX: {
        const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
        size_t off = offsetof(struct sockaddr_un, sun_path);
#ifdef __linux__
        /* The Linux abstract namespace: bytes, as CPython returns them. */
        if (len > off && a->sun_path[0] == 0) {
            return PyBytes_FromStringAndSize(a->sun_path,
                                             (Py_ssize_t)(len - off));
        }
#endif
        (void)off;
        return PyUnicode_DecodeFSDefault(a->sun_path);
    }
    }
    PyErr_SetString(PyExc_OSError, "unsupported address family");
    return NULL;
}

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
    *addr = accept_make_addr(&ss, len);
    if (*addr == NULL) {
        close(c);
        return -1;
    }
    *fd = c;
    return 1;
}

/* socket_cls(family, type, proto, fd), `type` with SOCK_NONBLOCK: the
 * accepted connection's socket object, in non-blocking mode.  Closes `fd`
 * if it fails.  New reference. */
static PyObject *
accept_wrap(PyObject *const *spec, int fd)
{
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
 * waiting (EAGAIN), it ran out of tries, or (aborted_continues false, as
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
    long lfd = PyLong_AsLong(args[4]);
    long n = PyLong_AsLong(args[5]);
    int aborted_continues = PyObject_IsTrue(args[6]);
    if ((lfd == -1 || n == -1 || aborted_continues == -1) &&
        PyErr_Occurred()) {
        return NULL;
    }
    if (lfd < 0 || lfd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fd out of range");
        return NULL;
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
        PyObject *conn = accept_wrap(args, fd);
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
