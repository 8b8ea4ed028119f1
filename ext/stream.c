/* stream.c: the core of the socket, datagram and pipe transports.
 *
 * libuv's stream.c under tcp.c and pipe.c is the model: this file owns
 * the reads (tl_stream_read()), watching the fd, the scheduling
 * of connection_lost(), fatal errors, GC, finalize, dealloc, repr, the
 * shared attributes and the type factory; transport.c (TCP and Unix
 * sockets), udp.c (datagrams) and pipe.c (pipes) keep what is theirs and
 * say in their tl_stream_kind how they differ.  The write ring and its
 * writev() are in writering.c.  stream.h says which field is what;
 * ext/README.md how bytes flow. */
#include "stream.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <structmember.h>
#include <sys/uio.h>
#include <unistd.h>

char *
tl_stream_rbuf(tl_stream *s)
{
    LoopObject *loop = s->loop;
    if (loop->rbuf == NULL &&
        (loop->rbuf = PyMem_Malloc(TL_READ_SIZE)) == NULL) {
        PyErr_NoMemory();
    }
    return loop->rbuf;
}

/* Whether a direct read's bytes object was once freed at its full size:
 * see read_result(). */
static int big_freed;

/* The bytes of a direct read of n bytes into data (`direct` of them, the
 * rest in rbuf): data itself when it fits well, else a copy. */
static PyObject *
read_result(PyObject *data, Py_ssize_t n, Py_ssize_t direct,
            Py_ssize_t small, const char *rbuf)
{
    if (n == direct) {
        return data;
    }
    /* glibc's malloc() mmap()s a block above its threshold (128 KiB at
     * first), and shrinking that block mremap()s it, so that freeing it
     * leaves the threshold where it is (mallopt(3)): each direct read of
     * 256 KiB would cost mmap(), mremap(), munmap() and page faults.  Once
     * such a block is freed at its full size, the threshold rises above
     * it and direct blocks come from the heap, where shrinking only splits
     * them.  So the first shrink in the process is a copy instead. */
    if (n >= small && n < direct && big_freed) {
        /* A realloc() that gives back the tail. */
        return _PyBytes_Resize(&data, n) < 0 ? NULL : data;
    }
    big_freed = 1;
    /* Too small to keep `direct` bytes for, or longer than data. */
    PyObject *r = PyBytes_FromStringAndSize(NULL, n);
    if (r != NULL) {
        char *p = PyBytes_AS_STRING(r);
        Py_ssize_t head = n < direct ? n : direct;
        memcpy(p, PyBytes_AS_STRING(data), head);
        memcpy(p + head, rbuf, n - head);
    }
    Py_DECREF(data);
    return r;
}

Py_ssize_t
tl_stream_read(tl_stream *s, Py_ssize_t direct, Py_ssize_t small,
               PyObject **out)
{
    *out = NULL;
    char *rbuf = tl_stream_rbuf(s);
    if (rbuf == NULL) {
        return TL_READ_RAISED;
    }
    PyObject *data = NULL;
    struct iovec iov[2];
    int cnt = 1;
    iov[0].iov_base = rbuf;
    iov[0].iov_len = TL_READ_SIZE;
    if (s->last_read >= small) {
        /* Room for the last read and `small` more, not always `direct`:
         * a 256 KiB block at the heap's top, freed after each message,
         * makes glibc trim and regrow the heap (brk() per message); a
         * block the size the stream reads in fits the free chunks the
         * previous messages left.  A longer read spills into rbuf and is
         * copied, and the next read makes room for it. */
        if (s->last_read + small < direct) {
            direct = (s->last_read + small + 4095) & ~(Py_ssize_t)4095;
        }
        data = PyBytes_FromStringAndSize(NULL, direct);
        if (data == NULL) {
            return TL_READ_RAISED;
        }
        iov[0].iov_base = PyBytes_AS_STRING(data);
        iov[0].iov_len = (size_t)direct;
        if (direct < TL_READ_SIZE) {
            iov[1].iov_base = rbuf;
            iov[1].iov_len = (size_t)(TL_READ_SIZE - direct);
            cnt = 2;
        }
    }
    ssize_t n = cnt == 1 ? read(s->fd, iov[0].iov_base, iov[0].iov_len)
                         : readv(s->fd, iov, cnt);
    if (n <= 0) {
        int err = errno;
        Py_XDECREF(data);
        errno = err;
        return n < 0 ? TL_READ_OSERROR : 0;
    }
    s->last_read = n;
    tl_stream_count_read(s, n);
    data = data == NULL ? PyBytes_FromStringAndSize(rbuf, n)
                        : read_result(data, n, direct, small, rbuf);
    if (data == NULL) {
        return TL_READ_RAISED;
    }
    *out = data;
    return n;
}

/* ---- watching ------------------------------------------------------- */

/* Our handle for one side: reused while it is not cancelled.  Its
 * callable is the bound C method (no lookup by name). */
static HandleObject *
stream_handle(PyObject *self, int writer)
{
    tl_stream *s = tl_stream_of(self);
    HandleObject **slot = writer ? &s->write_handle : &s->read_handle;
    /* loop.remove_reader(fd) by the user cancels our handle (a pipe's fd
     * is not guarded as a socket transport's is): make a new one. */
    if (*slot != NULL && (*slot)->cancelled) {
        Py_CLEAR(*slot);
    }
    if (*slot == NULL) {
        PyObject *m = PyCFunction_New(
            &s->kind->m[writer ? TL_M_WRITE_READY : TL_M_READ_READY], self);
        if (m == NULL) {
            return NULL;
        }
        *slot = tl_handle_new(s->loop->st, s->loop, m, NULL, 0, s->context);
        Py_DECREF(m);
    }
    return *slot;
}

int
tl_stream_watch(PyObject *self, int writer, int on)
{
    tl_stream *s = tl_stream_of(self);
    char *flag = writer ? &s->writing : &s->reading;
    if (!on && !*flag) {
        return 0;
    }
    if (s->loop == NULL || s->loop->closed || s->loop->uv == NULL) {
        *flag = 0;
        if (on && s->loop != NULL) {
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
            return -1;
        }
        return 0;
    }
    HandleObject *h = NULL;
    if (on && (h = stream_handle(self, writer)) == NULL) {
        return -1;
    }
    /* Installing again is cheap (no syscall when nothing changes) and
     * puts our handle back if the user replaced it meanwhile. */
    if (tl_poll_set_handle(s->loop, s->fd, writer, h) < 0) {
        return -1;
    }
    *flag = (char)on;
    return 0;
}

void
tl_stream_unwatch_all(PyObject *self)
{
    tl_stream *s = tl_stream_of(self);
    if (s->loop != NULL && s->loop->uv != NULL) {
        if (s->reading) {
            (void)tl_poll_set_handle(s->loop, s->fd, 0, NULL);
        }
        if (s->writing) {
            (void)tl_poll_set_handle(s->loop, s->fd, 1, NULL);
        }
    }
    s->reading = s->writing = 0;
}

int
tl_stream_unwatch_closing(PyObject *self)
{
    tl_stream *s = tl_stream_of(self);
    int sides = (s->reading ? TL_EV_READ : 0) | (s->writing ? TL_EV_WRITE : 0);
    if (sides && s->loop != NULL && !s->loop->closed && s->loop->uv != NULL &&
        tl_poll_linger_closing(s->loop, s->fd, sides, self)) {
        s->reading = s->writing = 0;
        return 0;
    }
    return tl_stream_watch(self, 1, 0) < 0 || tl_stream_watch(self, 0, 0) < 0
               ? -1 : 0;
}

/* ---- scheduling and reporting --------------------------------------- */

int
tl_stream_call_soon_lost(PyObject *self, PyObject *exc)
{
    tl_stream *s = tl_stream_of(self);
    PyObject *m = PyCFunction_New(&s->kind->m[TL_M_LOST], self);
    if (m == NULL) {
        return -1;
    }
    PyObject *r = tl_loop_call_soon(s->loop, m, exc ? exc : Py_None,
                                    s->context);
    Py_DECREF(m);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

int
tl_stream_helper(tl_state *st, int id, PyObject *a, PyObject *b,
                 PyObject *c)
{
    PyObject *fn = st->helpers[id];
    if (fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "tideloop transport helpers not installed");
        return -1;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(fn, a, b, c, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

int
tl_stream_fatal(PyObject *self, PyObject *exc, const char *message)
{
    tl_stream *s = tl_stream_of(self);
    tl_state *st = tl_state_from_type(Py_TYPE(self));
    int own = 0;
    if (exc == NULL) {
        exc = tl_fetch_exception();
        own = 1;
    }
    int r = -1;
    PyObject *msg = st ? PyUnicode_FromString(message) : NULL;
    if (msg != NULL) {
        r = tl_stream_helper(st, s->kind->h_fatal, self, exc, msg);
        Py_DECREF(msg);
    }
    if (r == 0) {
        PyObject *res = s->kind->fatal_close(self, exc);
        r = res == NULL ? -1 : 0;
        Py_XDECREF(res);
    }
    if (own) {
        Py_DECREF(exc);
    }
    return r;
}

int
tl_stream_debug_log(PyObject *self, const char *fmt)
{
    tl_stream *s = tl_stream_of(self);
    if (s->loop == NULL || !s->loop->debug) {
        return 0;
    }
    PyObject *f = PyUnicode_FromString(fmt);
    if (f == NULL) {
        return -1;
    }
    int r = tl_stream_helper(s->loop->st, TL_H_TR_DEBUG_LOG, self, f, NULL);
    Py_DECREF(f);
    return r;
}

PyObject *
tl_wb_send_error(Py_ssize_t n)
{
    if (n == TL_WB_OSERROR) {
        tl_err_from_errno(errno);
    }
    else if (tl_err_stops_loop()) {
        return NULL;
    }
    return tl_fetch_exception();
}

PyObject *
tl_stream_write_error(PyObject *self, Py_ssize_t n, const char *message,
                      int count_lost)
{
    tl_stream *s = tl_stream_of(self);
    PyObject *exc = tl_wb_send_error(n);
    if (exc == NULL) {
        return NULL;
    }
    tl_wb_clear(s);
    s->conn_lost += count_lost;
    /* Remove the writer here: the kind's close does not, the buffer being
     * empty. */
    if (tl_stream_watch(self, 1, 0) < 0 ||
        tl_stream_fatal(self, exc, message) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    return exc;
}

Py_ssize_t
tl_stream_send(PyObject *self, const char *message, int count_lost,
               PyObject **exc)
{
    *exc = NULL;
    Py_ssize_t n = tl_wb_send(tl_stream_of(self));
    if (n >= 0 || n == TL_WB_AGAIN) {
        return n;
    }
    *exc = tl_stream_write_error(self, n, message, count_lost);
    return TL_WB_RAISED;
}

/* ---- reading state (both socket kinds and read pipes) --------------- */

int
tl_stream_reading_wanted(tl_stream *s)
{
    return !s->closing && !s->paused;
}

PyObject *
tl_stream_is_reading(PyObject *self, PyObject *Py_UNUSED(unused))
{
    return PyBool_FromLong(tl_stream_reading_wanted(tl_stream_of(self)));
}

PyObject *
tl_stream_pause_reading(PyObject *self, PyObject *Py_UNUSED(unused))
{
    tl_stream *s = tl_stream_of(self);
    if (!tl_stream_reading_wanted(s)) {
        Py_RETURN_NONE;
    }
    s->paused = 1;
    if (tl_stream_watch(self, 0, 0) < 0 ||
        tl_stream_debug_log(self, "%r pauses reading") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
tl_stream_resume_reading(PyObject *self, PyObject *Py_UNUSED(unused))
{
    tl_stream *s = tl_stream_of(self);
    if (s->closing || !s->paused) {
        Py_RETURN_NONE;
    }
    s->paused = 0;
    if (tl_stream_watch(self, 0, 1) < 0 ||
        tl_stream_debug_log(self, "%r resumes reading") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
tl_stream_fail(PyObject *self, const char *message)
{
    if (tl_err_stops_loop() || tl_stream_fatal(self, NULL, message) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

int
tl_stream_call_in_context(PyObject *self, PyObject *fn)
{
    PyObject *ctx = tl_stream_of(self)->context;
    int joined = tl_context_join(ctx);
    PyObject *r = PyObject_CallOneArg(fn, self);
    tl_context_leave(ctx, joined);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

void
tl_stream_release_loop(tl_stream *s)
{
    if (s->loop != NULL) {
        if (s->counted) {
            s->loop->n_transports--;
            s->counted = 0;
        }
        Py_CLEAR(s->loop);
    }
}

int
tl_stream_new_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t n,
                   const char *usage, PyObject **ctx)
{
    if (nargs != n && nargs != n + 1) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    return tl_context_arg(nargs > n ? args[n] : NULL, ctx);
}

int
tl_stream_fd_arg(PyObject *num, int *fd)
{
    if (num == NULL) {
        return -1;
    }
    long v = PyLong_AsLong(num);
    Py_DECREF(num);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v < 0 || v > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", v);
        return -1;
    }
    *fd = (int)v;
    return 0;
}

PyObject *
tl_stream_alloc(PyTypeObject *tp, tl_stream_kind *kind,
                PyObject *loop, PyObject *file, int fd, PyObject *ctx)
{
    tl_state *st = tl_state_from_type(tp);
    if (st == NULL) {
        return NULL;
    }
    if (!PyObject_TypeCheck(loop, st->LoopBaseType)) {
        PyErr_SetString(PyExc_TypeError, "a tideloop loop was expected");
        return NULL;
    }
    PyObject *self = tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    tl_stream *s = tl_stream_of(self);
    if (tl_new_instance_dict(&s->dict) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    s->kind = kind;
    s->loop = (LoopObject *)Py_NewRef(loop);
    s->file = Py_NewRef(file);
    s->fd = fd;
    Py_XINCREF(ctx);
    s->context = ctx;
    return self;
}

/* ---- GC, finalize, dealloc, repr ------------------------------------ */

/* The base classes' __slots__ (asyncio's _extra, _loop, ...): visit
 * them, or clear them when visit is NULL. */
static int
base_slots(PyObject *self, visitproc visit, void *arg)
{
    for (PyTypeObject *tp = Py_TYPE(self)->tp_base; tp != NULL;
         tp = tp->tp_base) {
        if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) || tp->tp_members == NULL) {
            continue;
        }
        for (PyMemberDef *m = tp->tp_members; m->name != NULL; m++) {
            if (m->type != T_OBJECT_EX) {
                continue;
            }
            PyObject **slot = (PyObject **)((char *)self + m->offset);
            if (visit == NULL) {
                Py_CLEAR(*slot);
            }
            else {
                Py_VISIT(*slot);
            }
        }
    }
    return 0;
}

int
tl_base_slots_visit(PyObject *self, visitproc visit, void *arg)
{
    return base_slots(self, visit, arg);
}

void
tl_base_slots_clear(PyObject *self)
{
    (void)base_slots(self, NULL, NULL);
}

static int
Stream_traverse(PyObject *self, visitproc visit, void *arg)
{
    tl_stream *s = tl_stream_of(self);
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(s->loop);
    Py_VISIT(s->file);
    Py_VISIT(s->protocol);
    Py_VISIT(s->context);
    Py_VISIT(s->read_handle);
    Py_VISIT(s->write_handle);
    Py_VISIT(s->dict);
    for (Py_ssize_t i = 0; i < s->wb_len; i++) {
        Py_VISIT(tl_wb_at(s, i)->obj);
        Py_VISIT(tl_wb_at(s, i)->addr);
    }
    if (s->kind != NULL && s->kind->traverse != NULL) {
        int r = s->kind->traverse(self, visit, arg);
        if (r != 0) {
            return r;
        }
    }
    return tl_base_slots_visit(self, visit, arg);
}

static int
Stream_clear(PyObject *self)
{
    tl_stream *s = tl_stream_of(self);
    /* The watchers hold our handles, which hold bound methods of us: stop
     * watching first (needs the loop). */
    tl_stream_unwatch_all(self);
    tl_wb_clear(s);
    Py_CLEAR(s->read_handle);
    Py_CLEAR(s->write_handle);
    Py_CLEAR(s->protocol);
    Py_CLEAR(s->context);
    if (s->kind != NULL && s->kind->clear != NULL) {
        s->kind->clear(self);
    }
    Py_CLEAR(s->file);
    Py_CLEAR(s->dict);
    tl_stream_release_loop(s);
    tl_base_slots_clear(self);
    return 0;
}

/* asyncio's __del__: the unclosed warning (the kind's helper, which
 * closes the socket or pipe). */
static void
Stream_finalize(PyObject *self)
{
    tl_stream *s = tl_stream_of(self);
    if (s->kind == NULL || s->file == NULL) {
        return;
    }
    PyObject *exc = PyErr_Occurred() ? tl_fetch_exception() : NULL;
    tl_state *st = tl_state_from_type(Py_TYPE(self));
    if (st == NULL ||
        tl_stream_helper(st, s->kind->h_finalize, self, NULL, NULL) < 0) {
        PyErr_WriteUnraisable(self);
    }
    if (exc != NULL) {
        tl_restore_exception(exc);
    }
}

static void
Stream_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc(self) < 0) {
        return;  /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    tl_stream *s = tl_stream_of(self);
    if (s->kind != NULL && s->kind->forget != NULL) {
        s->kind->forget(self);
    }
    if (s->weakreflist != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    Stream_clear(self);
    PyMem_Free(s->wb);
    s->wb = NULL;
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
Stream_repr(PyObject *self)
{
    tl_stream *s = tl_stream_of(self);
    tl_state *st = tl_state_from_type(Py_TYPE(self));
    if (st == NULL || s->kind == NULL ||
        st->helpers[s->kind->h_repr] == NULL) {
        PyErr_Clear();
        return PyUnicode_FromFormat("<%s>", Py_TYPE(self)->tp_name);
    }
    return PyObject_CallOneArg(st->helpers[s->kind->h_repr], self);
}

static PyObject *
Stream_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyErr_Format(PyExc_TypeError, "cannot create '%s' instances directly",
                 type->tp_name);
    return NULL;
}

/* ---- shared attributes ---------------------------------------------- */

PyObject *
tl_stream_is_closing(PyObject *self, PyObject *Py_UNUSED(unused))
{
    return PyBool_FromLong(tl_stream_of(self)->closing);
}

PyObject *
tl_stream_get_protocol(PyObject *self, PyObject *Py_UNUSED(unused))
{
    PyObject *p = tl_stream_of(self)->protocol;
    return Py_NewRef(p ? p : Py_None);
}

PyObject *
tl_stream_getattr(PyObject *self, void *which)
{
    tl_stream *s = tl_stream_of(self);
    PyObject *o = NULL;
    switch ((int)(intptr_t)which) {
    case TL_SA_LOOP:
        o = (PyObject *)s->loop;
        break;
    case TL_SA_FILE:
        o = s->file;
        break;
    case TL_SA_PROTOCOL:
        o = s->protocol;
        break;
    case TL_SA_CONTEXT:
        o = s->context;
        break;
    case TL_SA_FD:
        return PyLong_FromLong(s->fd);
    case TL_SA_CLOSING:
        return PyBool_FromLong(s->closing);
    case TL_SA_PAUSED:
        return PyBool_FromLong(s->paused);
    case TL_SA_CONN_LOST:
        return PyLong_FromLong(s->conn_lost);
    case TL_SA_READING:
        return PyBool_FromLong(s->reading);
    case TL_SA_WRITING:
        return PyBool_FromLong(s->writing);
    }
    return Py_NewRef(o ? o : Py_None);
}

/* Tests and programs set _protocol = None (pipes). */
int
tl_stream_set_protocol_attr(PyObject *self, PyObject *v, void *c)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _protocol");
        return -1;
    }
    Py_XSETREF(tl_stream_of(self)->protocol,
               v == Py_None ? NULL : Py_NewRef(v));
    return 0;
}

/* ---- the type factory ----------------------------------------------- */

/* The tuple of the asyncio.transports classes named. */
static PyObject *
spec_bases(const tl_stream_spec *spec)
{
    PyObject *mod = PyImport_ImportModule("asyncio.transports");
    if (mod == NULL) {
        return NULL;
    }
    int n = spec->bases[1] != NULL ? 2 : 1;
    PyObject *bases = PyTuple_New(n);
    for (int i = 0; bases != NULL && i < n; i++) {
        PyObject *b = PyObject_GetAttrString(mod, spec->bases[i]);
        if (b == NULL) {
            Py_CLEAR(bases);
            break;
        }
        PyTuple_SET_ITEM(bases, i, b);
    }
    Py_DECREF(mod);
    return bases;
}

/* Set the max_size class attribute and add the type to the module. */
static int
type_publish(PyObject *module, PyTypeObject *tp, const tl_stream_spec *spec)
{
    if (spec->max_size) {
        PyObject *n = PyLong_FromLong(TL_READ_SIZE);
        int r = n == NULL ? -1
                          : PyObject_SetAttrString((PyObject *)tp,
                                                   "max_size", n);
        Py_XDECREF(n);
        if (r < 0) {
            return -1;
        }
    }
    return PyModule_AddObjectRef(module, tp->tp_name, (PyObject *)tp);
}

PyTypeObject *
tl_stream_make_type(PyObject *module, const tl_stream_spec *spec)
{
    PyObject *bases = spec_bases(spec);
    if (bases == NULL) {
        return NULL;
    }
    PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(bases, 0);
    Py_ssize_t base_size = base->tp_basicsize;
    PyMemberDef members[] = {
        {"__weaklistoffset__", T_PYSSIZET,
         base_size + offsetof(tl_stream, weakreflist), READONLY},
        {"__dictoffset__", T_PYSSIZET,
         base_size + offsetof(tl_stream, dict), READONLY},
        {NULL}};
    PyType_Slot slots[] = {
        {Py_tp_new, Stream_tp_new},
        {Py_tp_dealloc, Stream_dealloc},
        {Py_tp_traverse, Stream_traverse},
        {Py_tp_clear, Stream_clear},
        {Py_tp_finalize, Stream_finalize},
        {Py_tp_repr, Stream_repr},
        {Py_tp_methods, spec->methods},
        {Py_tp_getset, spec->getset},
        {Py_tp_members, members},
        {Py_tp_doc, (void *)spec->doc},
        {0, NULL}};
    /* No Py_TPFLAGS_BASETYPE: tl_stream_of() relies on Py_TYPE(self)
     * being this type. */
    PyType_Spec tspec = {
        .name = spec->name,
        .basicsize = (int)(base_size + spec->size),
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
        .slots = slots,
    };
    PyTypeObject *tp =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &tspec, bases);
    if (tp != NULL && tp->tp_base != base) {
        PyErr_Format(PyExc_SystemError, "%s: layout base is not %s",
                     spec->name, base->tp_name);
        Py_CLEAR(tp);
    }
    Py_DECREF(bases);
    if (tp == NULL) {
        return NULL;
    }
    /* The short name, as asyncio's classes show theirs. */
    tp->tp_name = strrchr(spec->name, '.') + 1;
    if (type_publish(module, tp, spec) < 0) {
        Py_DECREF(tp);
        return NULL;
    }
    return tp;
}
