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

#include <sys/stat.h>

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

/* -- sock_recv(), sock_recv_into(), sock_sendall() (issue 14.2) ----------
 *
 * _sock_start(op, sock, arg) does what asyncio's coroutine does before it
 * awaits: it tries the call on the socket (sock.recv(n), sock.recv_into(buf)
 * or sock.send(data)) and returns its result when that does not block.
 * Otherwise it creates the future, watches the fd with a C callback and
 * returns the list [future, sock, fd, (st_dev, st_ino), handle, writer]
 * for _loop.py's _sock_wait(), which awaits the future, removes the watch
 * when it is done or cancelled, and checks for a closed socket meanwhile.
 * The callback runs asyncio's _sock_recv() & co.: a done (cancelled)
 * future is left alone, so a cancelled sock_recv() never eats data. */

enum {
    SOP_RECV, SOP_RECV_INTO, SOP_SENDALL, SOP_RECVFROM, SOP_RECVFROM_INTO,
    SOP_SENDTO, SOP_COUNT
};

/* The socket method each operation calls, and whether it waits for the
 * fd to be writable. */
static const struct {
    const char *method;
    int writer;
} sop_table[SOP_COUNT] = {
    [SOP_RECV] = {"recv", 0},           [SOP_RECV_INTO] = {"recv_into", 0},
    [SOP_SENDALL] = {"send", 1},        [SOP_RECVFROM] = {"recvfrom", 0},
    [SOP_RECVFROM_INTO] = {"recvfrom_into", 0},
    [SOP_SENDTO] = {"sendto", 1},
};

/* The state a readiness callback reads: [loop, fut, sock, op, arg, pos];
 * arg is the tuple of the method's arguments (sendall: the memoryview). */
enum { ST_LOOP, ST_FUT, ST_SOCK, ST_OP, ST_ARG, ST_POS, ST_LEN };

/* Whether the pending exception is asyncio's "try again next time". */
static int
sockops_would_block(void)
{
    return PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
           PyErr_ExceptionMatches(PyExc_InterruptedError);
}

/* sock.<the op's method>(*args): new reference. */
static PyObject *
sockops_call(int op, PyObject *sock, PyObject *args)
{
    PyObject *meth = PyObject_GetAttrString(sock, sop_table[op].method);
    if (meth == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_Call(meth, args, NULL);
    Py_DECREF(meth);
    return r;
}

/* sock.send(view[pos:]) for sendall: new reference. */
static PyObject *
sockops_send_from(PyObject *sock, PyObject *view, Py_ssize_t pos)
{
    PyObject *rest = PySequence_GetSlice(view, pos, PY_SSIZE_T_MAX);
    if (rest == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallMethod(sock, "send", "(O)", rest);
    Py_DECREF(rest);
    return r;
}

/* fut.<name>(value): 0, or -1 with an exception set. */
static int
sockops_settle(PyObject *fut, const char *name, PyObject *value)
{
    PyObject *r = PyObject_CallMethod(fut, name, "(O)", value);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* One sock.send() of the rest of a pending sock_sendall(): 1 if all was
 * sent, 0 if not yet, -1 with an exception set. */
static int
sockops_send_rest(PyObject *state)
{
    PyObject *view = PyList_GET_ITEM(state, ST_ARG);
    Py_ssize_t pos = PyLong_AsSsize_t(PyList_GET_ITEM(state, ST_POS));
    if (pos == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *sent = sockops_send_from(PyList_GET_ITEM(state, ST_SOCK), view,
                                       pos);
    if (sent == NULL) {
        return -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(sent);
    Py_DECREF(sent);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    pos += n;
    Py_ssize_t len = PyObject_Size(view);
    if (len < 0) {
        return -1;
    }
    if (pos == len) {
        return 1;
    }
    PyObject *p = PyLong_FromSsize_t(pos);
    if (p == NULL) {
        return -1;
    }
    return PyList_SetItem(state, ST_POS, p);   /* steals p */
}

/* The fd is ready (a Handle runs this with no arguments): asyncio's
 * _sock_recv(), _sock_recv_into(), _sock_sendall() & co. */
static PyObject *
sockops_on_ready(PyObject *state, PyObject *Py_UNUSED(ignored))
{
    PyObject *fut = PyList_GET_ITEM(state, ST_FUT);
    PyObject *done = PyObject_CallMethod(fut, "done", NULL);
    if (done == NULL) {
        return NULL;
    }
    int is_done = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (is_done != 0) {
        /* A cancelled operation: its data stays in the socket. */
        return is_done < 0 ? NULL : Py_NewRef(Py_None);
    }
    int op = (int)PyLong_AsLong(PyList_GET_ITEM(state, ST_OP));
    PyObject *result = NULL;
    int complete = 1;
    if (op == SOP_SENDALL) {
        complete = sockops_send_rest(state);
        result = complete < 0 ? NULL : Py_NewRef(Py_None);
    }
    else {
        result = sockops_call(op, PyList_GET_ITEM(state, ST_SOCK),
                              PyList_GET_ITEM(state, ST_ARG));
    }
    if (result == NULL) {
        if (sockops_would_block()) {
            PyErr_Clear();          /* try again next time */
            Py_RETURN_NONE;
        }
        if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
            PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
            return NULL;
        }
        PyObject *exc = tl_fetch_exception();
        int rc = sockops_settle(fut, "set_exception", exc);
        Py_DECREF(exc);
        return rc < 0 ? NULL : Py_NewRef(Py_None);
    }
    int rc = complete ? sockops_settle(fut, "set_result", result) : 0;
    Py_DECREF(result);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyMethodDef sockops_on_ready_def = {
    "_sock_ready", (PyCFunction)sockops_on_ready, METH_NOARGS, NULL};

/* (st_dev, st_ino) of `fd`, or None if fstat() fails. */
static PyObject *
sockops_identity(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(KK)", (unsigned long long)st.st_dev,
                         (unsigned long long)st.st_ino);
}

/* The first attempt; returns its result, NULL with an exception, or
 * Py_None with *blocked set when it would block.  For sendall, *sent is
 * what was sent (the call returns Py_None when it was everything). */
static PyObject *
sockops_first_try(int op, PyObject *sock, PyObject *arg, Py_ssize_t *sent,
                  int *blocked)
{
    *blocked = 0;
    PyObject *r = sockops_call(op, sock, arg);
    if (r == NULL) {
        if (!sockops_would_block()) {
            return NULL;
        }
        PyErr_Clear();
        *blocked = 1;
        r = op == SOP_SENDALL ? PyLong_FromLong(0) : Py_NewRef(Py_None);
        if (r == NULL || op != SOP_SENDALL) {
            return r;
        }
    }
    if (op != SOP_SENDALL) {
        return r;
    }
    *sent = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (*sent == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t len = PyObject_Size(PyTuple_GET_ITEM(arg, 0));
    if (len < 0) {
        return NULL;
    }
    *blocked = *sent != len;
    Py_RETURN_NONE;
}

/* Watch the socket's fd for the pending operation; returns the list for
 * _sock_wait() (new reference) or NULL. */
static PyObject *
sockops_wait(LoopObject *self, int op, PyObject *sock, PyObject *arg,
             Py_ssize_t sent)
{
    PyObject *fut = NULL, *fdobj = NULL, *state = NULL, *cb = NULL;
    PyObject *h = NULL, *ident = NULL, *r = NULL, *view = NULL;
    int writer = sop_table[op].writer;
    fut = tl_loop_create_future(self);
    if (fut == NULL) {
        goto error;
    }
    fdobj = PyObject_CallMethod(sock, "fileno", NULL);
    if (fdobj == NULL) {
        goto error;
    }
    r = PyObject_CallMethod((PyObject *)self, "_ensure_fd_no_transport", "(O)",
                            fdobj);
    if (r == NULL) {
        goto error;
    }
    /* sendall: asyncio's memoryview(data); sendto: it retries with
     * sock.sendto(data, 0, address). */
    if (op == SOP_SENDALL) {
        view = PyMemoryView_FromObject(PyTuple_GET_ITEM(arg, 0));
    }
    else if (op == SOP_SENDTO) {
        view = Py_BuildValue("(OiO)", PyTuple_GET_ITEM(arg, 0), 0,
                             PyTuple_GET_ITEM(arg, 1));
    }
    else {
        view = Py_NewRef(arg);
    }
    if (view == NULL) {
        goto error;
    }
    state = Py_BuildValue("[OOOiOn]", (PyObject *)self, fut, sock, op, view,
                          sent);
    if (state == NULL) {
        goto error;
    }
    cb = PyCFunction_New(&sockops_on_ready_def, state);
    if (cb == NULL) {
        goto error;
    }
    PyObject *args[2] = {fdobj, cb};
    h = writer ? tl_poll_add_writer(self, args, 2, NULL)
               : tl_poll_add_reader(self, args, 2, NULL);
    if (h == NULL) {
        goto error;
    }
    int fd = (int)PyLong_AsLong(fdobj);
    if (fd == -1 && PyErr_Occurred()) {
        goto error;
    }
    ident = sockops_identity(fd);
    if (ident == NULL) {
        goto error;
    }
    PyObject *rec = Py_BuildValue("[OOOOOi]", fut, sock, fdobj, ident, h,
                                  writer);
    Py_XDECREF(r);
    Py_DECREF(view);
    Py_DECREF(fut);
    Py_DECREF(fdobj);
    Py_DECREF(state);
    Py_DECREF(cb);
    Py_DECREF(h);
    Py_DECREF(ident);
    return rec;
error:
    Py_XDECREF(r);
    Py_XDECREF(view);
    Py_XDECREF(fut);
    Py_XDECREF(fdobj);
    Py_XDECREF(state);
    Py_XDECREF(cb);
    Py_XDECREF(h);
    Py_XDECREF(ident);
    return NULL;
}

/* _sock_start(op, sock, args): see above.  New reference. */
PyObject *
tl_sockops_start(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int op = nargs == 3 ? (int)PyLong_AsLong(args[0]) : -1;
    if (op == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t want = op == SOP_SENDTO ? 2 : 1;
    if (op < 0 || op >= SOP_COUNT || !PyTuple_Check(args[2]) ||
        PyTuple_GET_SIZE(args[2]) < want) {
        PyErr_SetString(PyExc_TypeError, "expected (op, sock, args)");
        return NULL;
    }
    Py_ssize_t sent = 0;
    int blocked;
    PyObject *r = sockops_first_try(op, args[1], args[2], &sent, &blocked);
    if (r == NULL || !blocked) {
        return r;
    }
    Py_DECREF(r);
    return sockops_wait(self, op, args[1], args[2], sent);
}
