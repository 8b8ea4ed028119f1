/* The sock_* methods' fd watches.
 *
 * asyncio's sock_recv(), sock_sendall(), sock_accept() & co. wait for
 * readiness with _add_reader(fd, self._sock_recv, fut, sock, ...): a
 * callback bound to the loop itself, whose first two arguments are the
 * pending future and the socket.  If the socket is closed meanwhile, the
 * kernel drops the fd from the poll set without an event and stock
 * asyncio's future never completes.  tideloop's _add_reader() and
 * _add_writer() are poll.c's, plus: a callback bound to the loop is
 * reported to the loop's _sock_watch(handle, writer), which keeps the
 * operation in the set that _loop.py sweeps for closed sockets (issue
 * 15.3a).  A user's callback (not bound to the loop) costs one type
 * check. */
#include "sockops.h"

/* Steals `h`; returns it, or NULL if _sock_watch() raised. */
static PyObject *
sockops_report(LoopObject *self, PyObject *h, PyObject *callback,
               int writer)
{
    if (!PyMethod_Check(callback) ||
        PyMethod_GET_SELF(callback) != (PyObject *)self) {
        return h;
    }
    PyObject *r = PyObject_CallMethod((PyObject *)self, "_sock_watch", "Oi",
                                      h, writer);
    if (r == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    Py_DECREF(r);
    return h;
}

PyObject *
tl_sockops_add_reader(LoopObject *self, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *h = tl_poll_add_reader(self, args, nargs, kwnames);
    if (h == NULL) {
        return NULL;
    }
    return sockops_report(self, h, args[1], 0);
}

PyObject *
tl_sockops_add_writer(LoopObject *self, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *h = tl_poll_add_writer(self, args, nargs, kwnames);
    if (h == NULL) {
        return NULL;
    }
    return sockops_report(self, h, args[1], 1);
}
