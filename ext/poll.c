/* add_reader/add_writer: one uv_poll_t per watched file descriptor.
 *
 * As in asyncio's selector loop, readiness does not run anything by
 * itself: the poll callback (GIL released, C only) records the events,
 * and after the poll the loop queues the reader/writer handles on the
 * ready queue, where they run in order with the other callbacks.  The
 * watch is level-triggered, like epoll in asyncio: a reader that does not
 * consume its data runs again on the next iteration. */
#include "tideloop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>

typedef struct tl_poller {
    uv_poll_t poll;              /* poll.data points back here */
    LoopObject *loop;            /* borrowed: the loop owns its pollers */
    int fd;
    int watched;                 /* UV_READABLE | UV_WRITABLE being polled */
    int fired;                   /* events recorded since the last dispatch */
    char in_fired;               /* on loop->fired list */
    HandleObject *reader;        /* strong, or NULL */
    HandleObject *writer;        /* strong, or NULL */
    struct tl_poller *next_fired;
} tl_poller;

static void
poller_on_close(uv_handle_t *h)
{
    PyMem_RawFree(h->data);
}

static void
poller_on_event(uv_poll_t *h, int status, int events)
{
    tl_poller *p = h->data;
    LoopObject *loop = p->loop;
    /* An error (POLLERR) wakes both sides, as selectors report it: the
     * callbacks find the error when they read or write. */
    p->fired |= status < 0 ? (UV_READABLE | UV_WRITABLE) : events;
    if (!p->in_fired) {
        /* Append: callbacks are queued in the order the poll reported
         * the fds, as asyncio's _process_events() does. */
        p->in_fired = 1;
        p->next_fired = NULL;
        if (loop->fired == NULL) {
            loop->fired = p;
        }
        else {
            loop->fired_tail->next_fired = p;
        }
        loop->fired_tail = p;
    }
}

static tl_poller *
poller_get(LoopObject *loop, int fd)
{
    if (fd < loop->npollers) {
        return loop->pollers[fd];
    }
    return NULL;
}

/* Stop watching and free the poller (its memory goes in the close
 * callback).  Drops the handles it held. */
static void
poller_destroy(LoopObject *loop, tl_poller *p)
{
    loop->pollers[p->fd] = NULL;
    if (p->in_fired) {
        /* Unlink: the list is short (pollers fired in one poll). */
        tl_poller **pp = &loop->fired;
        while (*pp != NULL && *pp != p) {
            pp = &(*pp)->next_fired;
        }
        if (*pp == p) {
            *pp = p->next_fired;
            if (loop->fired_tail == p) {
                /* The new tail is the entry that pointed to p. */
                loop->fired_tail = NULL;
                for (tl_poller *q = loop->fired; q != NULL;
                     q = q->next_fired) {
                    loop->fired_tail = q;
                }
            }
        }
        p->in_fired = 0;
    }
    HandleObject *r = p->reader, *w = p->writer;
    p->reader = p->writer = NULL;
    uv_close((uv_handle_t *)&p->poll, poller_on_close);
    Py_XDECREF(r);
    Py_XDECREF(w);
}

/* handle.cancel() (which keeps a repr in debug mode); steals `h`. */
static int
handle_cancel(HandleObject *h)
{
    PyObject *r = PyObject_CallMethod((PyObject *)h, "cancel", NULL);
    Py_DECREF(h);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static int
set_uv_error(int err)
{
    errno = -err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

static tl_poller *
poller_create(LoopObject *loop, int fd)
{
    if (fd >= loop->npollers) {
        int n = loop->npollers ? loop->npollers : 64;
        while (n <= fd) {
            n *= 2;
        }
        tl_poller **a = PyMem_Realloc(loop->pollers, n * sizeof(*a));
        if (a == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memset(a + loop->npollers, 0, (n - loop->npollers) * sizeof(*a));
        loop->pollers = a;
        loop->npollers = n;
    }
    tl_poller *p = PyMem_RawCalloc(1, sizeof(*p));
    if (p == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    /* uv_poll_init() makes the fd non-blocking; asyncio leaves the
     * caller's file alone, so restore its mode. */
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) {
        PyMem_RawFree(p);
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    int err = uv_poll_init(&loop->uv->loop, &p->poll, fd);
    if (!(flags & O_NONBLOCK)) {
        (void)fcntl(fd, F_SETFL, flags);
    }
    if (err < 0) {
        PyMem_RawFree(p);
        set_uv_error(err);
        return NULL;
    }
    p->poll.data = p;
    p->loop = loop;
    p->fd = fd;
    loop->pollers[fd] = p;
    return p;
}

static int
poller_update(LoopObject *loop, tl_poller *p)
{
    int want = (p->reader ? UV_READABLE : 0) | (p->writer ? UV_WRITABLE : 0);
    if (want == 0) {
        poller_destroy(loop, p);
        return 0;
    }
    if (want != p->watched) {
        int err = uv_poll_start(&p->poll, want, poller_on_event);
        if (err < 0) {
            return set_uv_error(err);
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
    if (overflow < 0 || fd < 0) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %S", num);
        Py_DECREF(num);
        return -1;
    }
    Py_DECREF(num);
    if (overflow > 0 || fd > INT_MAX) {
        return -2;
    }
    return (int)fd;
}

/* _add_reader(fd, callback, *args) / _add_writer(...): returns the
 * Handle, replacing (and cancelling) a previous one. */
static PyObject *
poll_add(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
         int writer)
{
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
                                    nargs - 2, NULL);
    if (h == NULL) {
        return NULL;
    }
    tl_poller *p = poller_get(self, fd);
    if (p == NULL && (p = poller_create(self, fd)) == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    HandleObject **slot = writer ? &p->writer : &p->reader;
    HandleObject *old = *slot;
    Py_INCREF(h);
    *slot = h;
    if (poller_update(self, p) < 0) {
        /* Put things back as they were. */
        *slot = old;
        Py_DECREF(h);
        if (p->reader == NULL && p->writer == NULL) {
            poller_destroy(self, p);
        }
        Py_DECREF(h);
        return NULL;
    }
    if (old != NULL && handle_cancel(old) < 0) {
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
    int rc = poller_update(self, p);
    if (handle_cancel(old) < 0) {
        rc = -1;
    }
    return rc < 0 ? -1 : 1;
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
    int r = poll_remove_fd(self, fd, writer);
    if (r < 0) {
        return NULL;
    }
    return PyBool_FromLong(r);
}

PyObject *
tl_poll_add_reader(LoopObject *self, PyObject *const *args, Py_ssize_t n)
{
    return poll_add(self, args, n, 0);
}

PyObject *
tl_poll_add_writer(LoopObject *self, PyObject *const *args, Py_ssize_t n)
{
    return poll_add(self, args, n, 1);
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
    tl_poller *p = poller_get(self, fd);
    if (h == NULL) {
        if (p == NULL) {
            return 0;
        }
        HandleObject **slot = writer ? &p->writer : &p->reader;
        HandleObject *old = *slot;
        *slot = NULL;
        int rc = poller_update(self, p);
        Py_XDECREF(old);
        return rc;
    }
    if (p == NULL && (p = poller_create(self, fd)) == NULL) {
        return -1;
    }
    HandleObject **slot = writer ? &p->writer : &p->reader;
    HandleObject *old = *slot;
    Py_INCREF(h);
    *slot = h;
    if (poller_update(self, p) < 0) {
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

/* After the poll, with the GIL: queue the callbacks of what fired, as
 * asyncio's _process_events() does. */
int
tl_poll_dispatch(LoopObject *self, int (*push)(LoopObject *, HandleObject *))
{
    while (self->fired != NULL) {
        tl_poller *p = self->fired;
        self->fired = p->next_fired;
        if (self->fired == NULL) {
            self->fired_tail = NULL;
        }
        p->in_fired = 0;
        int ev = p->fired;
        p->fired = 0;
        int fd = p->fd;
        if ((ev & UV_READABLE) && p->reader != NULL) {
            if (p->reader->cancelled) {
                if (poll_remove_fd(self, fd, 0) < 0) {
                    return -1;
                }
            }
            else {
                Py_INCREF(p->reader);
                if (push(self, p->reader) < 0) {
                    return -1;
                }
            }
        }
        /* The reader's removal may have freed the poller. */
        p = poller_get(self, fd);
        if (p != NULL && (ev & UV_WRITABLE) && p->writer != NULL) {
            if (p->writer->cancelled) {
                if (poll_remove_fd(self, fd, 1) < 0) {
                    return -1;
                }
            }
            else {
                Py_INCREF(p->writer);
                if (push(self, p->writer) < 0) {
                    return -1;
                }
            }
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
        }
    }
    return 0;
}

/* Drop every watcher (loop close or dealloc).  Needs the uv loop alive:
 * the close callbacks run in the caller's final uv_run(). */
void
tl_poll_close_all(LoopObject *self)
{
    for (int i = 0; i < self->npollers; i++) {
        tl_poller *p = self->pollers[i];
        if (p != NULL) {
            poller_destroy(self, p);
        }
    }
    self->fired = NULL;
    self->fired_tail = NULL;
    PyMem_Free(self->pollers);
    self->pollers = NULL;
    self->npollers = 0;
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
    tl_poller *p = poller_get(self, fd);
    int mask = 0;
    if (p != NULL) {
        mask = (p->reader ? 1 : 0) | (p->writer ? 2 : 0);
    }
    return PyLong_FromLong(mask);
}

int
tl_poll_count(LoopObject *self)
{
    int n = 0;
    for (int i = 0; i < self->npollers; i++) {
        n += self->pollers[i] != NULL;
    }
    return n;
}
