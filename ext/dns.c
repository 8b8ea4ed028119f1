/* getaddrinfo() and getnameinfo() on libuv's thread pool.
 *
 * Stock asyncio runs socket.getaddrinfo() in the loop's default
 * ThreadPoolExecutor: a Python thread takes the GIL, calls the C resolver
 * with the GIL released, builds the result list, and hands it back with
 * call_soon_threadsafe().  Here the C resolver runs on libuv's pool
 * (uv_queue_work) without ever touching Python; the loop thread turns the
 * raw result into the same Python objects socket.getaddrinfo() builds.
 *
 * The Python side (Loop.getaddrinfo in _loop.py) first validates the
 * arguments by calling socket.getaddrinfo() itself with AI_NUMERICHOST |
 * AI_NUMERICSERV: numeric hosts are answered right there, without any
 * thread, and bad arguments raise exactly what socket.getaddrinfo() raises.
 * Only names reach this file, with arguments already known to be valid.
 *
 * Life of a request (tl_dns_req):
 *   - submitted in the loop thread with the GIL held, linked into the
 *     loop's in-flight list, with a strong reference to its Future;
 *   - resolved in a pool thread (dns_work_*: C only);
 *   - dns_after() runs in the loop thread inside uv_run(), possibly
 *     without the GIL: it only moves the request to the done list;
 *   - tl_dns_dispatch() runs after uv_run() with the GIL and completes the
 *     Future (unless it was cancelled meanwhile), then frees the request.
 * When the loop is closed with lookups still running, the requests drop
 * their Futures and the libuv loop is handed to a detached thread that
 * waits for them and then frees it (dns_reaper): close() does not wait
 * for a slow resolver, as stock asyncio's does not either.
 *
 * The libuv loop (tl_dns: an epoll fd, a signal pipe and the pool's
 * wake-up eventfd) is created at the first lookup with the epoll backend,
 * so a loop that never resolves a name costs no fd for it; the libuv
 * backend waits in it, so it makes it at loop creation, and DNS uses that
 * same loop.  The pool's threads are libuv's, shared by the whole process
 * already. */
#include "tideloop.h"

#include <netdb.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

typedef struct tl_dns_req {
    uv_work_t work;
    struct tl_dns_req *prev;     /* in-flight list */
    struct tl_dns_req *next;
    PyObject *future;            /* strong; NULL once detached */
    int kind;                    /* DNS_ADDRINFO or DNS_NAMEINFO */
    int err;                     /* EAI_* from the resolver, 0 if fine */
    int sys_errno;               /* errno when err == EAI_SYSTEM */
    int cancelled;               /* never ran (uv_cancel) */
    /* getaddrinfo() */
    char *host;                  /* NULL for None */
    char *port;                  /* NULL for None */
    struct addrinfo hints;
    struct addrinfo *res;
    /* getnameinfo() */
    struct sockaddr_storage sa;
    socklen_t salen;
    int ni_flags;
    char hbuf[NI_MAXHOST];
    char pbuf[NI_MAXSERV];
} tl_dns_req;

enum { DNS_ADDRINFO, DNS_NAMEINFO };

static void dns_unlink(tl_dns *d, tl_dns_req *r);

/* ---- pool threads and libuv callbacks: C only ---------------------- */

static void
dns_work(uv_work_t *w)
{
    tl_dns_req *r = w->data;
    errno = 0;
    if (r->kind == DNS_ADDRINFO) {
        r->err = getaddrinfo(r->host, r->port, &r->hints, &r->res);
    }
    else {
        r->err = getnameinfo((struct sockaddr *)&r->sa, r->salen, r->hbuf,
                             sizeof(r->hbuf), r->pbuf, sizeof(r->pbuf),
                             r->ni_flags);
    }
    r->sys_errno = errno;
}

static void
dns_free(tl_dns_req *r)
{
    if (r->res != NULL) {
        freeaddrinfo(r->res);
    }
    PyMem_RawFree(r->host);
    PyMem_RawFree(r->port);
    PyMem_RawFree(r);
}

static void
dns_after(uv_work_t *w, int status)
{
    tl_dns_req *r = w->data;
    tl_dns *d = w->loop->data;
    if (status == UV_ECANCELED) {
        r->cancelled = 1;
    }
    dns_unlink(d, r);
    if (r->future == NULL) {
        /* Detached (closed loop): nobody waits for the answer. */
        dns_free(r);
        return;
    }
    /* Completed in order of arrival: append to the done list. */
    r->prev = NULL;
    r->next = NULL;
    if (d->done_tail != NULL) {
        d->done_tail->next = r;
    }
    else {
        d->done = r;
    }
    d->done_tail = r;
}

/* ---- results as socket.getaddrinfo() builds them -------------------- */

/* socketmodule.c's makesockaddr() for what getaddrinfo() returns. */
static PyObject *
dns_sockaddr(const struct sockaddr *sa, socklen_t len)
{
    char buf[INET6_ADDRSTRLEN];
    if (len == 0 || sa == NULL) {
        Py_RETURN_NONE;
    }
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("si", buf, ntohs(a->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("siII", buf, ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    default:
        /* What CPython does for a family it does not know. */
        return Py_BuildValue("iy#", sa->sa_family, sa->sa_data,
                             (Py_ssize_t)sizeof(sa->sa_data));
    }
}

/* socket.gaierror(code, message), or OSError for EAI_SYSTEM: what
 * socketmodule.c's set_gaierror() raises.  New reference. */
static PyObject *
dns_error(tl_state *st, tl_dns_req *r)
{
    if (r->err == EAI_SYSTEM) {
        int e = r->sys_errno;
        return PyObject_CallFunction(PyExc_OSError, "is", e, strerror(e));
    }
    return PyObject_CallFunction(st->gaierror, "is", r->err,
                                 gai_strerror(r->err));
}

static PyObject *
dns_result(tl_dns_req *r)
{
    if (r->kind == DNS_NAMEINFO) {
        return Py_BuildValue("ss", r->hbuf, r->pbuf);
    }
    PyObject *all = PyList_New(0);
    if (all == NULL) {
        return NULL;
    }
    for (struct addrinfo *ai = r->res; ai != NULL; ai = ai->ai_next) {
        PyObject *addr = dns_sockaddr(ai->ai_addr, ai->ai_addrlen);
        if (addr == NULL) {
            Py_DECREF(all);
            return NULL;
        }
        PyObject *one = Py_BuildValue(
            "iiisN", ai->ai_family, ai->ai_socktype, ai->ai_protocol,
            ai->ai_canonname ? ai->ai_canonname : "", addr);
        if (one == NULL || PyList_Append(all, one) < 0) {
            Py_XDECREF(one);
            Py_DECREF(all);
            return NULL;
        }
        Py_DECREF(one);
    }
    return all;
}

/* Complete one Future; 0, or -1 with an exception set. */
static int
dns_complete(LoopObject *loop, tl_dns_req *r)
{
    PyObject *fut = r->future;
    PyObject *done = PyObject_CallMethod(fut, "done", NULL);
    if (done == NULL) {
        return -1;
    }
    int is_done = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (is_done != 0) {
        return is_done < 0 ? -1 : 0;   /* cancelled by the awaiter */
    }
    PyObject *value;
    const char *method;
    if (r->cancelled) {
        /* Only close() cancels, and close() detaches first. */
        value = PyObject_CallFunction(PyExc_RuntimeError, "s",
                                      "Event loop is closed");
        method = "set_exception";
    }
    else if (r->err != 0) {
        value = dns_error(loop->st, r);
        method = "set_exception";
    }
    else {
        value = dns_result(r);
        method = "set_result";
        if (value == NULL) {
            /* Out of memory or a bad canonical name: the awaiter gets
             * the exception, as it would from socket.getaddrinfo(). */
            value = tl_fetch_exception();
            method = "set_exception";
        }
    }
    if (value == NULL) {
        return -1;
    }
    /* Not PyObject_CallMethod(fut, method, "O", value): a tuple value
     * (getnameinfo's) would be spread into arguments. */
    PyObject *name = PyUnicode_FromString(method);
    PyObject *res = name == NULL ? NULL
        : PyObject_CallMethodObjArgs(fut, name, value, NULL);
    Py_XDECREF(name);
    Py_DECREF(value);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* ---- loop side: with the GIL ---------------------------------------- */

int
tl_dns_dispatch(LoopObject *loop)
{
    tl_dns *d = loop->uv->dns;
    while (d->done != NULL) {
        tl_dns_req *r = d->done;
        d->done = r->next;
        if (d->done == NULL) {
            d->done_tail = NULL;
        }
        int rc = dns_complete(loop, r);
        Py_CLEAR(r->future);
        dns_free(r);
        if (rc < 0) {
            return -1;   /* the rest wait for the next iteration */
        }
    }
    return 0;
}

static void
dns_unlink(tl_dns *d, tl_dns_req *r)
{
    if (r->prev != NULL) {
        r->prev->next = r->next;
    }
    else {
        d->inflight = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    d->count--;
}

/* Have the backend wake for the libuv loop's completions (the epoll
 * backend puts its backend fd in its set). */
static int
dns_watch(LoopObject *loop)
{
    tl_uv *u = loop->uv;
    int fd = uv_backend_fd(&u->dns->loop);
    /* A watcher may be left on this fd number by code that closed its fd
     * without remove_reader(): the kernel dropped its registration with
     * the fd, and removing the watcher later would take ours out of the
     * set, leaving lookups unanswered.  Drop it now. */
    if (tl_poll_set_handle(loop, fd, 0, NULL) < 0 ||
        tl_poll_set_handle(loop, fd, 1, NULL) < 0) {
        return -1;
    }
    if (u->be->uv_attach(u) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

int
tl_dns_create(tl_uv *u)
{
    tl_dns *d = PyMem_RawCalloc(1, sizeof(*d));
    if (d == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int err = uv_loop_init(&d->loop);
    if (err < 0) {
        PyMem_RawFree(d);
        PyErr_Format(PyExc_OSError, "uv_loop_init: %s", uv_strerror(err));
        return -1;
    }
    d->loop.data = d;
    u->dns = d;
    return 0;
}

/* The loop's libuv loop, created at its first lookup: borrowed, or NULL
 * with an exception set. */
static tl_dns *
dns_get(LoopObject *loop)
{
    tl_uv *u = loop->uv;
    if (u->dns != NULL) {
        return u->dns;
    }
    if (tl_dns_create(u) < 0) {
        return NULL;
    }
    tl_dns *d = u->dns;
    if (dns_watch(loop) < 0) {
        u->dns = NULL;
        (void)uv_loop_close(&d->loop);
        PyMem_RawFree(d);
        return NULL;
    }
    return d;
}

static PyObject *
dns_submit(LoopObject *loop, tl_dns_req *r)
{
    tl_dns *d = dns_get(loop);
    if (d == NULL) {
        dns_free(r);
        return NULL;
    }
    /* By name, not tl_loop_create_future(): asyncio's getaddrinfo() goes
     * through run_in_executor() and wrap_future(), which call
     * loop.create_future(), so a subclass's create_future() is honoured
     * there; keep that.  (Once a lookup, not a hot path.) */
    PyObject *fut = PyObject_CallMethod((PyObject *)loop, "create_future",
                                        NULL);
    if (fut == NULL) {
        dns_free(r);
        return NULL;
    }
    /* In the in-flight list before libuv may complete it. */
    r->future = Py_NewRef(fut);
    r->prev = NULL;
    r->next = d->inflight;
    if (r->next != NULL) {
        r->next->prev = r;
    }
    d->inflight = r;
    d->count++;
    r->work.data = r;
    int err = uv_queue_work(&d->loop, &r->work, dns_work, dns_after);
    if (err < 0) {
        dns_unlink(d, r);
        Py_CLEAR(r->future);
        Py_DECREF(fut);
        dns_free(r);
        PyErr_Format(PyExc_OSError, "uv_queue_work: %s", uv_strerror(err));
        return NULL;
    }
    if (!d->primed) {
        /* libuv registers its own fds (the pool's completion eventfd)
         * in its epoll set lazily, inside a poll; the loop only polls
         * libuv when that set is readable, so let it register now.  The
         * request keeps the loop alive, so this pass really polls; what
         * it completes waits on the done list. */
        uv_run(&d->loop, UV_RUN_NOWAIT);
        d->primed = 1;
    }
    return fut;
}

/* Only the thread that runs the loop may queue work on it (libuv is not
 * thread-safe); elsewhere, return None and let the caller use the
 * executor, as stock asyncio does. */
static int
dns_usable(LoopObject *loop)
{
    if (loop->uv == NULL || loop->closed) {
        return 0;
    }
    if (loop->thread_id != NULL && loop->thread_id != Py_None) {
        unsigned long tid = PyLong_AsUnsignedLong(loop->thread_id);
        if (tid == (unsigned long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        return tid == PyThread_get_thread_ident();
    }
    /* Not running: the caller runs in the only thread using it. */
    return 1;
}

static char *
dns_strdup(const char *s, Py_ssize_t n)
{
    char *p = PyMem_RawMalloc((size_t)n + 1);
    if (p == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(p, s, (size_t)n);
    p[n] = '\0';
    return p;
}

/* _getaddrinfo(host, port, family, type, proto, flags) -> Future or None.
 * The arguments were validated by socket.getaddrinfo() already; they are
 * converted here the way socketmodule.c converts them. */
PyObject *
tl_dns_getaddrinfo(LoopObject *loop, PyObject *args)
{
    PyObject *hobj, *pobj;
    int family = AF_UNSPEC, socktype = 0, proto = 0, flags = 0;
    if (!PyArg_ParseTuple(args, "OO|iiii:_getaddrinfo", &hobj, &pobj,
                          &family, &socktype, &proto, &flags)) {
        return NULL;
    }
    if (!dns_usable(loop)) {
        Py_RETURN_NONE;
    }
    tl_dns_req *r = PyMem_RawCalloc(1, sizeof(*r));
    if (r == NULL) {
        return PyErr_NoMemory();
    }
    r->kind = DNS_ADDRINFO;
    if (hobj != Py_None) {
        PyObject *b;
        if (PyUnicode_Check(hobj)) {
            b = PyObject_CallMethod(hobj, "encode", "s", "idna");
        }
        else if (PyBytes_Check(hobj)) {
            b = Py_NewRef(hobj);
        }
        else {
            PyErr_SetString(PyExc_TypeError,
                            "getaddrinfo() argument 1 must be string or None");
            b = NULL;
        }
        if (b == NULL || !PyBytes_Check(b)) {
            if (b != NULL) {
                PyErr_SetString(PyExc_TypeError, "idna codec gave no bytes");
            }
            Py_XDECREF(b);
            dns_free(r);
            return NULL;
        }
        r->host = dns_strdup(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b));
        Py_DECREF(b);
        if (r->host == NULL) {
            dns_free(r);
            return NULL;
        }
    }
    if (pobj != Py_None) {
        const char *p;
        Py_ssize_t n;
        PyObject *decimal = NULL;
        if (PyLong_CheckExact(pobj)) {
            /* Its decimal string, as 3.12+ passes any int; before 3.12 an
             * int beyond a C long raised OverflowError in the check that
             * socket.getaddrinfo() made before we got here. */
            decimal = PyObject_Str(pobj);
            p = decimal == NULL ? NULL
                : PyUnicode_AsUTF8AndSize(decimal, &n);
        }
        else if (PyUnicode_Check(pobj)) {
            p = PyUnicode_AsUTF8AndSize(pobj, &n);
        }
        else if (PyBytes_Check(pobj)) {
            p = PyBytes_AS_STRING(pobj);
            n = PyBytes_GET_SIZE(pobj);
        }
        else {
            PyErr_SetString(PyExc_OSError, "Int or String expected");
            p = NULL;
        }
        if (p == NULL) {
            Py_XDECREF(decimal);
            dns_free(r);
            return NULL;
        }
        /* C strings end at the first NUL, as in socketmodule.c. */
        r->port = dns_strdup(p, (Py_ssize_t)strnlen(p, (size_t)n));
        Py_XDECREF(decimal);
        if (r->port == NULL) {
            dns_free(r);
            return NULL;
        }
    }
    r->hints.ai_family = family;
    r->hints.ai_socktype = socktype;
    r->hints.ai_protocol = proto;
    r->hints.ai_flags = flags;
    return dns_submit(loop, r);
}

/* _getnameinfo(sockaddr, flags) -> Future or None.  The sockaddr passed
 * socket.getnameinfo() already: its host is numeric. */
PyObject *
tl_dns_getnameinfo(LoopObject *loop, PyObject *args)
{
    PyObject *sa;
    int flags;
    const char *hostp;
    int port;
    unsigned int flowinfo = 0, scope_id = 0;
    if (!PyArg_ParseTuple(args, "Oi:_getnameinfo", &sa, &flags)) {
        return NULL;
    }
    if (!PyTuple_Check(sa)) {
        PyErr_SetString(PyExc_TypeError,
                        "getnameinfo() argument 1 must be a tuple");
        return NULL;
    }
    if (!PyArg_ParseTuple(sa, "si|II;getnameinfo(): illegal sockaddr argument",
                          &hostp, &port, &flowinfo, &scope_id)) {
        return NULL;
    }
    if (!dns_usable(loop)) {
        Py_RETURN_NONE;
    }
    /* The same numeric lookup socketmodule.c does to find the family. */
    char pbuf[32];
    struct addrinfo hints, *res = NULL;
    PyOS_snprintf(pbuf, sizeof(pbuf), "%d", port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST;
    int err = getaddrinfo(hostp, pbuf, &hints, &res);
    if (err != 0 || res == NULL ||
        res->ai_addrlen > sizeof(struct sockaddr_storage)) {
        /* socket.getnameinfo() accepted it a moment ago, unless it is not
         * the real one (a test's mock): let the caller use it. */
        if (res != NULL) {
            freeaddrinfo(res);
        }
        Py_RETURN_NONE;
    }
    tl_dns_req *r = PyMem_RawCalloc(1, sizeof(*r));
    if (r == NULL) {
        freeaddrinfo(res);
        return PyErr_NoMemory();
    }
    r->kind = DNS_NAMEINFO;
    memcpy(&r->sa, res->ai_addr, res->ai_addrlen);
    r->salen = res->ai_addrlen;
    if (res->ai_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&r->sa;
        a->sin6_flowinfo = htonl(flowinfo);
        a->sin6_scope_id = scope_id;
    }
    freeaddrinfo(res);
    r->ni_flags = flags;
    return dns_submit(loop, r);
}

/* ---- poll, close and fork ------------------------------------------ */

/* The libuv loop's fd is readable: let libuv finish what it has (its
 * callbacks only move answers to the done list). */
void
tl_dns_poll(tl_uv *u)
{
    if (u->dns != NULL) {
        uv_run(&u->dns->loop, UV_RUN_NOWAIT);
    }
}

static void
dns_release(tl_dns *d)
{
    (void)uv_loop_close(&d->loop);
    PyMem_RawFree(d);
}

static void *
dns_reaper(void *arg)
{
    tl_dns *d = arg;
    while (d->count > 0) {
        uv_run(&d->loop, UV_RUN_ONCE);
    }
    dns_release(d);
    return NULL;
}

/* Lookups still run in the pool: let a detached thread wait for them and
 * free the libuv loop.  Returns 0 if it does, -1 if the caller must wait
 * itself. */
static int
dns_handoff(tl_dns *d)
{
    pthread_t t;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        return -1;
    }
    (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(&t, &attr, dns_reaper, d);
    pthread_attr_destroy(&attr);
    return err == 0 ? 0 : -1;
}

/* At close(), with the GIL, once the backend closed its libuv handles:
 * drop every Future (completed or not), cancel what has not started, and
 * free the libuv loop, or have it freed once the lookups still running
 * end. */
void
tl_dns_close(tl_uv *u)
{
    tl_dns *d = u->dns;
    if (d == NULL) {
        return;
    }
    u->dns = NULL;
    while (d->done != NULL) {
        tl_dns_req *r = d->done;
        d->done = r->next;
        Py_CLEAR(r->future);
        dns_free(r);
    }
    d->done_tail = NULL;
    for (tl_dns_req *r = d->inflight; r != NULL; r = r->next) {
        Py_CLEAR(r->future);
        (void)uv_cancel((uv_req_t *)&r->work);
    }
    /* Deliver what was cancelled, and run the close callbacks of the
     * backend's handles. */
    uv_run(&d->loop, UV_RUN_NOWAIT);
    if (d->count > 0 && dns_handoff(d) == 0) {
        return;
    }
    Py_BEGIN_ALLOW_THREADS
    while (d->count > 0) {
        uv_run(&d->loop, UV_RUN_ONCE);
    }
    Py_END_ALLOW_THREADS
    dns_release(d);
}

/* In a child after fork(), once the backend has new kernel objects: the
 * pool threads did not survive, so the lookups in flight will never
 * finish.  Their Futures stay pending, as the executor's do under stock
 * asyncio; forget the requests.  The libuv loop gets new kernel objects
 * (uv_loop_fork: the libuv backend's after_fork() did it) and the backend
 * watches it again. */
int
tl_dns_after_fork(LoopObject *loop)
{
    tl_dns *d = loop->uv->dns;
    if (d == NULL) {
        return 0;
    }
    tl_dns_req *r = d->inflight;
    while (r != NULL) {
        tl_dns_req *next = r->next;
        Py_CLEAR(r->future);
        /* The memory may still be in libuv's (dead) queues: leak it. */
        r = next;
    }
    d->inflight = NULL;
    d->count = 0;
    if (loop->uv->be->waits_in_uv) {
        return 0;
    }
    int err = uv_loop_fork(&d->loop);
    if (err < 0) {
        PyErr_Format(PyExc_OSError, "uv_loop_fork: %s", uv_strerror(err));
        return -1;
    }
    return dns_watch(loop);
}
