/* add_reader/add_writer: the fd watchers, on the loop's backend.
 *
 * Registration goes to the backend (backend.h) at add_reader() time,
 * with the errors asyncio's selector raises there (EPERM for a regular
 * file, EBADF, ...); events are level-triggered and an error or hang-up
 * keeps being reported, as with asyncio.  The epoll backend registers
 * synchronously; the libuv backend makes sure that libuv 1.44 never
 * abort()s on a deferred registration that fails (an fd closed between
 * add_reader() and the next poll: see backend_uv.c).
 *
 * As in asyncio's selector loop, readiness does not run anything by
 * itself: after the poll the loop reads the ready fds, in the kernel's
 * order, and queues their reader/writer handles on the ready queue,
 * where they run in order with the other callbacks.
 *
 * Lingering sock_* watches (issue 14): asyncio's sock_recv() & co. add
 * their reader when they would block and remove it when they are done,
 * and an echo loop waits again on the same fd at once: two epoll_ctl()
 * per wait for nothing.  When a sock_* wait ends (tl_poll_end_wait()) on
 * a backend that allows it (lazy_unwatch: epoll), its handle goes as
 * with _remove_reader(), but the registration stays, marked lingering,
 * until the end of the loop iteration (tl_poll_flush(), before the next
 * poll: a lingering side is never polled).  A new wait of the same
 * socket object on the same fd takes it over without a syscall; anything
 * else that watches the fd (another socket that got the number, a user's
 * add_reader(), a transport) first drops it and registers the fd again
 * (poller_renew()).  It does so also while the first socket's wait is
 * pending: that socket's close would otherwise leave the fd registered
 * for a file that is gone, and the new socket's file never registered.
 * A lingering registration of a socket closed meanwhile is gone from the
 * kernel's set, or, if a dup keeps its file open, its events are dropped
 * by the backend (see backend_epoll.c).  The poller also keeps the
 * socket of its last sock_* wait and the (st_dev, st_ino) of its fd
 * then, so that the next wait of that socket needs no fstat().
 *
 * Closing transports linger the same way (issue 14, accept_close): a
 * transport that closes with nothing left to write stops watching and
 * queues its connection_lost(), which closes the socket in the next
 * iteration.  The registration stays until then, owned by the transport
 * (so anyone else who watches the fd meanwhile renews it, as above), and
 * is forgotten without an EPOLL_CTL_DEL right before the close(), which
 * removes it from the kernel's set.  The one poll in between does not
 * block (connection_lost() is queued), and drops the fd's events (no
 * handle). */
#include "tideloop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>

typedef struct tl_poller {
    int fd;
    int watched;                 /* TL_EV_READ | TL_EV_WRITE registered */
    int linger;                  /* sides registered with no handle */
    HandleObject *reader;        /* strong, or NULL */
    HandleObject *writer;        /* strong, or NULL */
    PyObject *owner;             /* the last sock_* wait's socket, or NULL */
    PyObject *ident;             /* its fd's identity then, or NULL */
} tl_poller;

static tl_poller *
poller_get(LoopObject *loop, int fd)
{
    if (fd >= 0 && fd < loop->npollers) {
        return loop->pollers[fd];
    }
    return NULL;
}

/* Stop watching and free the poller.  Drops the handles it held. */
static void
poller_destroy(LoopObject *loop, tl_poller *p)
{
    loop->pollers[p->fd] = NULL;
    loop->npollers_live--;
    if (p->watched && loop->uv != NULL) {
        /* Cannot fail: an fd closed meanwhile is already gone from the
         * kernel's set; selectors ignores that too. */
        (void)loop->uv->be->watch(loop->uv, p->fd, 0, p->watched);
    }
    HandleObject *r = p->reader, *w = p->writer;
    PyObject *owner = p->owner, *ident = p->ident;
    p->reader = p->writer = NULL;
    PyMem_Free(p);
    Py_XDECREF(r);
    Py_XDECREF(w);
    Py_XDECREF(owner);
    Py_XDECREF(ident);
}

/* handle.cancel() (which keeps a repr in debug mode); steals `h`. */
static int
handle_cancel(LoopObject *loop, HandleObject *h)
{
    PyObject *args[1] = {(PyObject *)h};
    PyObject *r = tl_call_method(loop->st->str_cancel, args, 1);
    Py_DECREF(h);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static tl_poller *
poller_create(LoopObject *loop, int fd)
{
    /* The loop's own fds cannot be watched: they are watched already. */
    tl_uv *u = loop->uv;
    if (fd == u->sig_rfd || u->be->owns_fd(u, fd)) {
        tl_err_from_errno(EINVAL);
        return NULL;
    }
    if (fd >= loop->npollers) {
        /* Only open fds (below RLIMIT_NOFILE) may grow the table. */
        if (fcntl(fd, F_GETFD) < 0) {
            tl_err_from_errno(errno);
            return NULL;
        }
        size_t n = loop->npollers ? (size_t)loop->npollers : 64;
        while (n <= (size_t)fd) {
            n *= 2;
        }
        tl_poller **a = PyMem_Realloc(loop->pollers, n * sizeof(*a));
        if (a == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memset(a + loop->npollers, 0, (n - loop->npollers) * sizeof(*a));
        loop->pollers = a;
        loop->npollers = (int)n;
    }
    tl_poller *p = PyMem_Calloc(1, sizeof(*p));
    if (p == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    p->fd = fd;
    loop->pollers[fd] = p;
    loop->npollers_live++;
    return p;
}

/* Make the backend's registration match the handles held; frees the
 * poller when it holds none.  On error (raised as asyncio's
 * selector.register() or modify() would): -1 if it was a new registration
 * (nothing changed), -2 if a modification failed, after which the poller
 * is freed, its handles dropped without cancel(), as asyncio's selector
 * forgets a key whose modify() failed (the fd was closed, or now names
 * another file). */
static int
poller_update(LoopObject *loop, tl_poller *p)
{
    int want = (p->reader ? TL_EV_READ : 0) |
               (p->writer ? TL_EV_WRITE : 0) | p->linger;
    if (want == 0) {
        poller_destroy(loop, p);
        return 0;
    }
    if (want != p->watched) {
        tl_uv *u = loop->uv;
        if (u->be->watch(u, p->fd, want, p->watched) < 0) {
            tl_err_from_errno(errno);
            if (p->watched) {
                poller_destroy(loop, p);
                return -2;
            }
            return -1;
        }
        p->watched = want;
    }
    return 0;
}

/* The fd of an int or of an object with fileno(), with the messages of
 * selectors._fileobj_to_fd().  Returns the fd, -1 with an exception set,
 * or -2 (no exception) for a non-negative number too large for a C int,
 * which no fd can be: asyncio's epoll.register() then raises
 * OverflowError and its lookup for removal finds nothing. */
static int
fileobj_to_fd(PyObject *obj)
{
    PyObject *num;
    if (PyLong_Check(obj)) {
        Py_INCREF(obj);
        num = obj;
    }
    else {
        PyObject *r = PyObject_CallMethod(obj, "fileno", NULL);
        num = r ? PyNumber_Long(r) : NULL;
        Py_XDECREF(r);
        if (num == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError) ||
                PyErr_ExceptionMatches(PyExc_TypeError) ||
                PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "Invalid file object: %R",
                             obj);
            }
            return -1;
        }
    }
    int overflow;
    long fd = PyLong_AsLongAndOverflow(num, &overflow);
    if (fd == -1 && PyErr_Occurred()) {
        Py_DECREF(num);
        return -1;
    }
    if (overflow > 0) {
        Py_DECREF(num);
        return -2;
    }
    if (overflow < 0 || fd < 0) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %S", num);
        Py_DECREF(num);
        return -1;
    }
    Py_DECREF(num);
    if (fd > INT_MAX) {
        return -2;
    }
    return (int)fd;
}

/* Drop the lingering sides of a poller (their syscall made).  A failed
 * modification (the fd was closed) frees the poller as poller_update()
 * does; nobody asked for it, so its error is not raised. */
static void
poller_unlinger(LoopObject *loop, tl_poller *p)
{
    p->linger = 0;
    if (poller_update(loop, p) < 0) {
        PyErr_Clear();
    }
}

/* Someone other than the socket of the fd's last sock_* wait watches it
 * (another socket that got the number, add_reader(), a transport): that
 * socket may have been closed meanwhile, its number reused by a file
 * that the kernel's registration does not name (nor the remembered
 * identity).  Forget the socket, drop the lingering sides and unregister
 * the rest, which the caller's poller_update() registers again, for the
 * fd's current file.  Returns the fd's poller then, or NULL. */
static tl_poller *
poller_renew(LoopObject *loop, tl_poller *p)
{
    int fd = p->fd;
    PyObject *owner = p->owner, *ident = p->ident;
    p->owner = p->ident = NULL;
    p->linger = 0;
    if (p->watched) {
        (void)loop->uv->be->watch(loop->uv, fd, 0, p->watched);
        p->watched = 0;
    }
    if (p->reader == NULL && p->writer == NULL) {
        poller_destroy(loop, p);
    }
    /* Last: the socket may go with it, and run Python code. */
    Py_XDECREF(owner);
    Py_XDECREF(ident);
    return poller_get(loop, fd);
}

/* The poller of `fd` for a new watch by `owner` (a sock_* wait's socket,
 * or NULL): the same socket takes over its lingering sides; anyone else
 * renews it first. */
static tl_poller *
poller_for_watch(LoopObject *loop, int fd, int writer, PyObject *owner)
{
    tl_poller *p = poller_get(loop, fd);
    if (p == NULL || p->owner == NULL || p->owner == owner) {
        if (p != NULL) {
            p->linger &= ~(writer ? TL_EV_WRITE : TL_EV_READ);
        }
        return p;
    }
    return poller_renew(loop, p);
}

/* _add_reader(fd, callback, *args, context=None) / _add_writer(...):
 * returns the Handle, replacing (and cancelling) a previous one.  The
 * handle runs in `context` (asyncio 3.15's transports pass theirs), by
 * default in a copy of the current context. */
static PyObject *
poll_add(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
         PyObject *kwnames, int writer, PyObject *owner)
{
    PyObject *ctx;
    if (tl_loop_parse_context_kw(self, args, nargs, kwnames,
                                 writer ? "_add_writer" : "_add_reader",
                                 &ctx) < 0) {
        return NULL;
    }
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError,
                        "expected (fd, callback, *args)");
        return NULL;
    }
    if (self->closed || self->uv == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    int fd = fileobj_to_fd(args[0]);
    if (fd == -2) {
        PyErr_SetString(PyExc_OverflowError,
                        "Python int too large to convert to C int");
    }
    if (fd < 0) {
        return NULL;
    }
    HandleObject *h = tl_handle_new(self->st, self, args[1], args + 2,
                                    nargs - 2, ctx);
    if (h == NULL) {
        return NULL;
    }
    if (h->source_traceback != NULL && self->st->fd_origin != NULL) {
        /* Debug mode: asyncio's handle was created one frame deeper, in
         * its _add_reader()/_add_writer(); add that frame so that reprs
         * ("created at ...") and logged tracebacks match. */
        PyObject *r = PyObject_CallFunction(self->st->fd_origin, "Oi",
                                            h->source_traceback, writer);
        if (r == NULL) {
            Py_DECREF(h);
            return NULL;
        }
        Py_DECREF(r);
    }
    /* Re-entrancy: fileno() (or the debug-mode stack capture) ran Python
     * code, which may have closed the loop. */
    if (self->closed || self->uv == NULL) {
        Py_DECREF(h);
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    tl_poller *p = poller_for_watch(self, fd, writer, owner);
    if (p == NULL && (p = poller_create(self, fd)) == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    HandleObject **slot = writer ? &p->writer : &p->reader;
    HandleObject *old = *slot;
    Py_INCREF(h);
    *slot = h;
    int rc = poller_update(self, p);
    if (rc == -2) {
        /* The poller is gone with its handles (asyncio's modify()). */
        Py_XDECREF(old);
        Py_DECREF(h);
        return NULL;
    }
    if (rc < 0) {
        /* Put things back as they were. */
        *slot = old;
        Py_DECREF(h);
        if (p->reader == NULL && p->writer == NULL) {
            poller_destroy(self, p);
        }
        Py_DECREF(h);
        return NULL;
    }
    if (old != NULL && handle_cancel(self, old) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return (PyObject *)h;
}

/* Returns 1 if a callback was removed, 0 if none, -1 on error. */
static int
poll_remove_fd(LoopObject *self, int fd, int writer)
{
    tl_poller *p = poller_get(self, fd);
    if (p == NULL) {
        return 0;
    }
    HandleObject **slot = writer ? &p->writer : &p->reader;
    HandleObject *old = *slot;
    if (old == NULL) {
        return 0;
    }
    *slot = NULL;
    if (poller_update(self, p) < 0) {
        /* asyncio's modify() failed: it raises before cancelling. */
        Py_DECREF(old);
        return -1;
    }
    return handle_cancel(self, old) < 0 ? -1 : 1;
}

static PyObject *
poll_remove(LoopObject *self, PyObject *fileobj, int writer)
{
    if (self->closed || self->uv == NULL) {
        Py_RETURN_FALSE;
    }
    int fd = fileobj_to_fd(fileobj);
    if (fd == -2) {
        Py_RETURN_FALSE;
    }
    if (fd < 0) {
        return NULL;
    }
    /* Re-entrancy: fileno() may have closed the loop. */
    if (self->closed || self->uv == NULL) {
        Py_RETURN_FALSE;
    }
    int r = poll_remove_fd(self, fd, writer);
    if (r < 0) {
        return NULL;
    }
    return PyBool_FromLong(r);
}

PyObject *
tl_poll_add_reader(LoopObject *self, PyObject *const *args, Py_ssize_t n,
                  PyObject *kwnames)
{
    return poll_add(self, args, n, kwnames, 0, NULL);
}

PyObject *
tl_poll_add_writer(LoopObject *self, PyObject *const *args, Py_ssize_t n,
                  PyObject *kwnames)
{
    return poll_add(self, args, n, kwnames, 1, NULL);
}

PyObject *
tl_poll_sock_wait(LoopObject *self, PyObject *fd, PyObject *callback,
                  int writer, PyObject *sock)
{
    PyObject *args[2] = {fd, callback};
    return poll_add(self, args, 2, NULL, writer, sock);
}

PyObject *
tl_poll_sock_ident(LoopObject *self, int fd, PyObject *sock)
{
    tl_poller *p = poller_get(self, fd);
    return p != NULL && p->owner == sock ? p->ident : NULL;
}

void
tl_poll_sock_remember(LoopObject *self, int fd, PyObject *sock,
                      PyObject *ident)
{
    tl_poller *p = poller_get(self, fd);
    if (p != NULL && p->owner != sock) {
        Py_XSETREF(p->owner, Py_NewRef(sock));
        Py_XSETREF(p->ident, Py_NewRef(ident));
    }
}

/* A wait that ends with the list of lingering fds full unwatches at
 * once. */
int
tl_poll_end_wait(LoopObject *self, int fd, int writer)
{
    if (self->closed || self->uv == NULL) {
        return 0;                /* as _remove_reader() */
    }
    tl_poller *p = poller_get(self, fd);
    HandleObject **slot = p == NULL ? NULL
                                    : (writer ? &p->writer : &p->reader);
    if (slot == NULL || *slot == NULL || p->owner == NULL ||
        !self->uv->be->lazy_unwatch ||
        self->n_lingering == TL_LINGER_MAX) {
        return poll_remove_fd(self, fd, writer) < 0 ? -1 : 0;
    }
    HandleObject *old = *slot;
    *slot = NULL;
    p->linger |= writer ? TL_EV_WRITE : TL_EV_READ;
    self->lingering[self->n_lingering++] = fd;
    return handle_cancel(self, old);
}

void
tl_poll_flush(LoopObject *self)
{
    for (int i = 0; i < self->n_lingering; i++) {
        tl_poller *p = poller_get(self, self->lingering[i]);
        if (p != NULL && p->linger) {
            poller_unlinger(self, p);
        }
    }
    self->n_lingering = 0;
}

PyObject *
tl_poll_remove_reader(LoopObject *self, PyObject *fileobj)
{
    return poll_remove(self, fileobj, 0);
}

PyObject *
tl_poll_remove_writer(LoopObject *self, PyObject *fileobj)
{
    return poll_remove(self, fileobj, 1);
}

/* For C transports: watch `fd` for reading (or writing) with handle `h`,
 * which the transport keeps and reuses; h == NULL stops watching.  Unlike
 * _remove_reader(), the handle is not cancelled. */
int
tl_poll_set_handle(LoopObject *self, int fd, int writer, HandleObject *h)
{
    tl_poller *p = poller_for_watch(self, fd, writer, NULL);
    if (h == NULL) {
        if (p == NULL) {
            return 0;
        }
        HandleObject **slot = writer ? &p->writer : &p->reader;
        HandleObject *old = *slot;
        *slot = NULL;
        int rc = poller_update(self, p);
        Py_XDECREF(old);
        return rc < 0 ? -1 : 0;
    }
    if (p == NULL && (p = poller_create(self, fd)) == NULL) {
        return -1;
    }
    HandleObject **slot = writer ? &p->writer : &p->reader;
    HandleObject *old = *slot;
    Py_INCREF(h);
    *slot = h;
    int rc = poller_update(self, p);
    if (rc == -2) {
        Py_XDECREF(old);         /* the poller is gone with its handles */
        return -1;
    }
    if (rc < 0) {
        *slot = old;
        Py_DECREF(h);
        if (p->reader == NULL && p->writer == NULL) {
            poller_destroy(self, p);
        }
        return -1;
    }
    Py_XDECREF(old);
    return 0;
}

/* A closing transport (`owner`) stops watching `fd` (its `sides`), its
 * connection_lost() queued: on a backend that allows it, the
 * registration lingers for it until tl_poll_close_forget(), in that
 * call, right before the socket's close() (see the top).  Returns 1 if
 * so, 0 if the caller must unwatch as usual (the fd has a sock_* owner,
 * or other sides watched). */
int
tl_poll_linger_closing(LoopObject *self, int fd, int sides, PyObject *owner)
{
    tl_poller *p = poller_get(self, fd);
    if (p == NULL || p->owner != NULL || p->watched != sides ||
        !self->uv->be->lazy_unwatch) {
        return 0;
    }
    HandleObject *r = p->reader, *w = p->writer;
    p->reader = p->writer = NULL;
    p->linger = p->watched;
    p->owner = Py_NewRef(owner);
    Py_XDECREF(r);
    Py_XDECREF(w);
    return 1;
}

void
tl_poll_close_forget(LoopObject *self, int fd, PyObject *owner)
{
    tl_poller *p = self->uv != NULL ? poller_get(self, fd) : NULL;
    if (p == NULL || p->owner != owner || p->reader != NULL ||
        p->writer != NULL) {
        return;
    }
    self->uv->be->forget(self->uv, fd);
    p->watched = 0;
    poller_destroy(self, p);
}

/* Queue the handle of one side that fired, or drop a cancelled one as
 * asyncio's _process_events() does. */
static int
dispatch_side(LoopObject *self, int fd, int writer,
              int (*push)(LoopObject *, HandleObject *))
{
    tl_poller *p = poller_get(self, fd);
    HandleObject *h = p == NULL ? NULL : (writer ? p->writer : p->reader);
    if (h == NULL) {
        return 0;
    }
    if (h->cancelled) {
        return poll_remove_fd(self, fd, writer) < 0 ? -1 : 0;
    }
    Py_INCREF(h);
    return push(self, h);
}

/* After the poll, with the GIL: queue the callbacks of the ready fds, as
 * asyncio's select() + _process_events(). */
int
tl_poll_dispatch(LoopObject *self, tl_event *evs, int n,
                 int (*push)(LoopObject *, HandleObject *))
{
    for (int i = 0; i < n; i++) {
        int fd = evs[i].fd;
        int e = evs[i].events;
        if ((e & TL_EV_READ) && dispatch_side(self, fd, 0, push) < 0) {
            return -1;
        }
        if ((e & TL_EV_WRITE) && dispatch_side(self, fd, 1, push) < 0) {
            return -1;
        }
        if (self->uv == NULL) {
            return 0;
        }
    }
    return 0;
}

int
tl_poll_traverse(LoopObject *self, visitproc visit, void *arg)
{
    for (int i = 0; i < self->npollers; i++) {
        tl_poller *p = self->pollers[i];
        if (p != NULL) {
            Py_VISIT(p->reader);
            Py_VISIT(p->writer);
            Py_VISIT(p->owner);
            Py_VISIT(p->ident);
        }
    }
    return 0;
}

/* Drop every watcher (loop close or dealloc). */
void
tl_poll_close_all(LoopObject *self)
{
    for (int i = 0; i < self->npollers; i++) {
        tl_poller *p = self->pollers[i];
        if (p != NULL) {
            poller_destroy(self, p);
        }
    }
    PyMem_Free(self->pollers);
    self->pollers = NULL;
    self->npollers = 0;
    self->npollers_live = 0;
    self->n_lingering = 0;
}

/* In a child after fork: register every watched fd with the backend's
 * new kernel objects. */
int
tl_poll_after_fork(LoopObject *self)
{
    for (int i = 0; i < self->npollers; i++) {
        tl_poller *p = self->pollers[i];
        if (p != NULL && p->watched) {
            self->uv->be->rewatch(self->uv, p->fd, p->watched);
        }
    }
    return 0;
}

/* _fd_events(fd) -> selectors-style mask (1 read, 2 write) or 0. */
PyObject *
tl_poll_fd_events(LoopObject *self, PyObject *fileobj)
{
    int fd = fileobj_to_fd(fileobj);
    if (fd == -2) {
        return PyLong_FromLong(0);
    }
    if (fd < 0) {
        return NULL;
    }
    tl_poller *p = self->uv != NULL ? poller_get(self, fd) : NULL;
    int mask = 0;
    if (p != NULL) {
        mask = (p->reader ? 1 : 0) | (p->writer ? 2 : 0);
    }
    return PyLong_FromLong(mask);
}

/* O(fd table size): for loop.stats() and print_debug_info() only. */
void
tl_poll_count(LoopObject *self, int *fds, int *readers, int *writers)
{
    *fds = *readers = *writers = 0;
    for (int i = 0; i < self->npollers; i++) {
        tl_poller *p = self->pollers[i];
        if (p != NULL && (p->reader != NULL || p->writer != NULL)) {
            (*fds)++;
            *readers += p->reader != NULL;
            *writers += p->writer != NULL;
        }
    }
}

PyObject *
tl_poll_watchers(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    /* Re-entrancy: none, Py_BuildValue and PyList_Append run no user
     * code, so the table cannot change under us. */
    for (int i = 0; i < self->npollers; i++) {
        tl_poller *p = self->pollers[i];
        if (p == NULL || (p->reader == NULL && p->writer == NULL)) {
            continue;
        }
        PyObject *r = p->reader ? (PyObject *)p->reader : Py_None;
        PyObject *w = p->writer ? (PyObject *)p->writer : Py_None;
        PyObject *item = Py_BuildValue("(iOO)", p->fd, r, w);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    return list;
}
