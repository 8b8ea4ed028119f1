/* getaddrinfo() and getnameinfo() on libuv's thread pool.
 *
 * Stock asyncio runs socket.getaddrinfo() in the loop's default
 * ThreadPoolExecutor: a Python thread takes the GIL, calls the C resolver
 * with the GIL released, builds the result list, and hands it back with
 * call_soon_threadsafe().  Here the C resolver runs on libuv's pool
 * (uv_queue_work) without ever touching Python; the loop thread turns the
 * raw result into the same Python objects socket.getaddrinfo() builds.
 *
 * Numeric hosts need no thread: _getaddrinfo() first asks the C resolver
 * with AI_NUMERICHOST | AI_NUMERICSERV added, which answers numeric
 * addresses and ports at once and fails at once for names, and returns
 * the list socket.getaddrinfo() would (dns_gai_fast).  It does so only
 * for plain arguments whose conversion runs no Python code and cannot
 * fail; for anything else it returns NotImplemented and the Python side
 * (Loop.getaddrinfo in _loop.py) makes socket.getaddrinfo() itself check
 * the arguments and answer numeric hosts (same errors as stock asyncio),
 * then calls again with checked=True for a name.
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

/* socket._intenum_converter(value, socket.AddressFamily) (which = 0) or
 * (value, socket.SocketKind) (which = 1), as socket.getaddrinfo() turns
 * the numbers into enums: its answers are kept in st->gai_enums[which]
 * (a dict by value).  New reference. */
static PyObject *
dns_intenum(tl_state *st, int which, int value)
{
    PyObject *key = PyLong_FromLong(value);
    if (key == NULL) {
        return NULL;
    }
    if (st->gai_enums[which] == NULL &&
        (st->gai_enums[which] = PyDict_New()) == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    PyObject *v = PyDict_GetItemWithError(st->gai_enums[which], key);
    if (v != NULL || PyErr_Occurred()) {
        Py_XINCREF(v);
        Py_DECREF(key);
        return v;
    }
    PyObject *sock = PyImport_ImportModule("socket");
    PyObject *conv = sock == NULL ? NULL
        : PyObject_GetAttrString(sock, "_intenum_converter");
    PyObject *klass = conv == NULL ? NULL
        : PyObject_GetAttrString(sock, which ? "SocketKind"
                                             : "AddressFamily");
    v = klass == NULL ? NULL
        : PyObject_CallFunctionObjArgs(conv, key, klass, NULL);
    if (v != NULL && PyDict_SetItem(st->gai_enums[which], key, v) < 0) {
        Py_CLEAR(v);
    }
    Py_XDECREF(klass);
    Py_XDECREF(conv);
    Py_XDECREF(sock);
    Py_DECREF(key);
    return v;
}

/* The list socket.getaddrinfo() makes of the C resolver's answer:
 * (family, type, proto, canonname, sockaddr) tuples in its order, family
 * and type as the socket module's enums. */
static PyObject *
dns_addrinfo_list(tl_state *st, const struct addrinfo *res)
{
    PyObject *all = PyList_New(0);
    if (all == NULL) {
        return NULL;
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        PyObject *one = PyTuple_New(5);
        if (one == NULL) {
            Py_DECREF(all);
            return NULL;
        }
        PyObject *items[5] = {
            dns_intenum(st, 0, ai->ai_family),
            dns_intenum(st, 1, ai->ai_socktype),
            PyLong_FromLong(ai->ai_protocol),
            PyUnicode_FromString(ai->ai_canonname ? ai->ai_canonname : ""),
            tl_sockaddr_to_py(ai->ai_addr, ai->ai_addrlen),
        };
        int bad = 0;
        for (int i = 0; i < 5; i++) {
            bad |= items[i] == NULL;
            PyTuple_SET_ITEM(one, i, items[i]);   /* NULL is fine here */
        }
        if (bad || PyList_Append(all, one) < 0) {
            Py_DECREF(one);
            Py_DECREF(all);
            return NULL;
        }
        Py_DECREF(one);
    }
    return all;
}

static PyObject *
dns_result(tl_state *st, tl_dns_req *r)
{
    if (r->kind == DNS_NAMEINFO) {
        return Py_BuildValue("ss", r->hbuf, r->pbuf);
    }
    return dns_addrinfo_list(st, r->res);
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
        value = dns_result(loop->st, r);
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

/* A request for getaddrinfo(host, port) (host and port NULL for None; C
 * strings end at their first NUL, as in socketmodule.c), or NULL with an
 * exception set. */
static tl_dns_req *
dns_gai_req(const char *host, Py_ssize_t hlen, const char *port,
            Py_ssize_t plen, const int ints[4])
{
    tl_dns_req *r = PyMem_RawCalloc(1, sizeof(*r));
    if (r == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    r->kind = DNS_ADDRINFO;
    if ((host != NULL && (r->host = dns_strdup(
             host, (Py_ssize_t)strnlen(host, (size_t)hlen))) == NULL) ||
        (port != NULL && (r->port = dns_strdup(
             port, (Py_ssize_t)strnlen(port, (size_t)plen))) == NULL)) {
        dns_free(r);
        return NULL;
    }
    r->hints.ai_family = ints[0];
    r->hints.ai_socktype = ints[1];
    r->hints.ai_protocol = ints[2];
    r->hints.ai_flags = ints[3];
    return r;
}

/* The Python idna codec's ASCII path leaves an ASCII name as it is, but
 * raises for an empty label (but the last) or one of 64 bytes or more:
 * 1 if it would take this one. */
static int
dns_idna_ascii_ok(const char *s, Py_ssize_t n)
{
    Py_ssize_t label = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] != '.') {
            label++;
        }
        else if (label == 0 || label >= 64) {
            return 0;
        }
        else {
            label = 0;
        }
    }
    return label < 64;
}

/* A host or port of a type whose conversion runs no Python code and that
 * has no NUL: its bytes (str: only ASCII, which the idna codec keeps as
 * they are when is_host), NULL for None.  Returns 0, or -1 if it is
 * anything else (nothing raised). */
static int
dns_plain_arg(PyObject *o, int is_host, char *buf, size_t bufsize,
              const char **p, Py_ssize_t *n)
{
    if (o == Py_None) {
        *p = NULL;
        *n = 0;
        return 0;
    }
    if (PyUnicode_CheckExact(o)) {
#if PY_VERSION_HEX < 0x030C0000
        if (!PyUnicode_IS_READY(o)) {
            return -1;
        }
#endif
        if (!PyUnicode_IS_ASCII(o)) {
            return -1;
        }
        *p = (const char *)PyUnicode_DATA(o);
        *n = PyUnicode_GET_LENGTH(o);
        if (is_host && !dns_idna_ascii_ok(*p, *n)) {
            return -1;
        }
    }
    else if (PyBytes_CheckExact(o)) {
        *p = PyBytes_AS_STRING(o);
        *n = PyBytes_GET_SIZE(o);
    }
    else if (!is_host && PyLong_CheckExact(o)) {
        /* "%ld" of a C long (<= 3.11) and str() (3.12+) agree there;
         * beyond, 3.11 raises OverflowError: socket.getaddrinfo()'s. */
        int overflow;
        long v = PyLong_AsLongAndOverflow(o, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        PyOS_snprintf(buf, bufsize, "%ld", v);
        *p = buf;
        *n = (Py_ssize_t)strlen(buf);
        return 0;
    }
    else {
        return -1;
    }
    return memchr(*p, '\0', (size_t)*n) == NULL ? 0 : -1;
}

/* The C ints of family, type, proto and flags, converted as the "i"
 * format converts them; 0, or -1: with an exception set if strict, else
 * (a non-int, or out of range) with none. */
static int
dns_gai_ints(PyObject *const *args, Py_ssize_t nargs, int strict,
             int ints[4])
{
    ints[0] = AF_UNSPEC;
    ints[1] = ints[2] = ints[3] = 0;
    for (Py_ssize_t i = 2; i < nargs && i < 6; i++) {
        if (!strict && !PyLong_Check(args[i])) {
            return -1;
        }
        long v = PyLong_AsLong(args[i]);
        if (v == -1 && PyErr_Occurred()) {
            if (!strict) {
                PyErr_Clear();
            }
            return -1;
        }
        if (v < INT_MIN || v > INT_MAX) {
            if (strict) {
                PyErr_SetString(PyExc_OverflowError,
                                "signed integer is out of range");
            }
            return -1;
        }
        ints[i - 2] = (int)v;
    }
    return 0;
}

/* The arguments checked by socket.getaddrinfo() already (checked=True):
 * converted the way socketmodule.c converts them. */
static PyObject *
dns_gai_checked(LoopObject *loop, PyObject *hobj, PyObject *pobj,
                const int ints[4])
{
    if (!dns_usable(loop)) {
        Py_RETURN_NONE;
    }
    PyObject *hbytes = NULL, *decimal = NULL;
    const char *h = NULL, *p = NULL;
    Py_ssize_t hn = 0, pn = 0;
    if (hobj != Py_None) {
        if (PyUnicode_Check(hobj)) {
            hbytes = PyObject_CallMethod(hobj, "encode", "s", "idna");
        }
        else if (PyBytes_Check(hobj)) {
            hbytes = Py_NewRef(hobj);
        }
        else {
            PyErr_SetString(PyExc_TypeError,
                            "getaddrinfo() argument 1 must be string or None");
        }
        if (hbytes != NULL && !PyBytes_Check(hbytes)) {
            PyErr_SetString(PyExc_TypeError, "idna codec gave no bytes");
            Py_CLEAR(hbytes);
        }
        if (hbytes == NULL) {
            return NULL;
        }
        h = PyBytes_AS_STRING(hbytes);
        hn = PyBytes_GET_SIZE(hbytes);
    }
    if (pobj != Py_None) {
        if (PyLong_CheckExact(pobj)) {
            /* Its decimal string, as 3.12+ passes any int; before 3.12 an
             * int beyond a C long raised OverflowError in the check that
             * socket.getaddrinfo() made before we got here. */
            decimal = PyObject_Str(pobj);
            p = decimal == NULL ? NULL
                : PyUnicode_AsUTF8AndSize(decimal, &pn);
        }
        else if (PyUnicode_Check(pobj)) {
            p = PyUnicode_AsUTF8AndSize(pobj, &pn);
        }
        else if (PyBytes_Check(pobj)) {
            p = PyBytes_AS_STRING(pobj);
            pn = PyBytes_GET_SIZE(pobj);
        }
        else {
            PyErr_SetString(PyExc_OSError, "Int or String expected");
        }
        if (p == NULL) {
            Py_XDECREF(decimal);
            Py_XDECREF(hbytes);
            return NULL;
        }
    }
    tl_dns_req *r = dns_gai_req(h, hn, p, pn, ints);
    Py_XDECREF(decimal);
    Py_XDECREF(hbytes);
    return r == NULL ? NULL : dns_submit(loop, r);
}

/* Plain arguments (dns_plain_arg): the list if the host and port are
 * numeric (the C resolver with AI_NUMERICHOST | AI_NUMERICSERV answers
 * them the same as without), else the lookup's Future (None from another
 * thread); NotImplemented where socket.getaddrinfo() must have its say. */
static PyObject *
dns_gai_fast(LoopObject *loop, const char *h, Py_ssize_t hn, const char *p,
             Py_ssize_t pn, const int ints[4])
{
#ifdef __APPLE__
    /* Old macOS getaddrinfo() crashes with AI_NUMERICSERV and no port or
     * "0"; socketmodule.c passes "00" instead: leave those to it. */
    if (p == NULL || (p[0] == '0' && p[1] == '\0')) {
        Py_RETURN_NOTIMPLEMENTED;
    }
#endif
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = ints[0];
    hints.ai_socktype = ints[1];
    hints.ai_protocol = ints[2];
    hints.ai_flags = ints[3] | AI_NUMERICHOST | AI_NUMERICSERV;
    int err = getaddrinfo(h, p, &hints, &res);
    if (err == 0) {
        PyObject *all = dns_addrinfo_list(loop->st, res);
        freeaddrinfo(res);
        return all;
    }
    if (err == EAI_SYSTEM) {
        /* socket.getaddrinfo() raises OSError(errno) for this one. */
        Py_RETURN_NOTIMPLEMENTED;
    }
    /* A name (or a service name), or arguments the resolver rejects:
     * the real lookup answers, or fails as socket.getaddrinfo() would. */
    if (!dns_usable(loop)) {
        Py_RETURN_NONE;
    }
    tl_dns_req *r = dns_gai_req(h, hn, p, pn, ints);
    return r == NULL ? NULL : dns_submit(loop, r);
}

/* _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0,
 * checked=False) -> list, Future, None or NotImplemented: the answer to a
 * numeric host, the Future of a lookup, None from another thread than
 * the loop's (the caller uses the executor, as stock asyncio does), and
 * NotImplemented (only if not checked) for arguments socket.getaddrinfo()
 * must check first. */
PyObject *
tl_dns_getaddrinfo(LoopObject *loop, PyObject *const *args,
                   Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 7) {
        PyErr_Format(PyExc_TypeError,
                     "_getaddrinfo expected 2 to 7 arguments, got %zd",
                     nargs);
        return NULL;
    }
    int checked = nargs > 6 ? PyObject_IsTrue(args[6]) : 0;
    if (checked < 0) {
        return NULL;
    }
    int ints[4];
    if (dns_gai_ints(args, nargs, checked, ints) < 0) {
        if (checked) {
            return NULL;
        }
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (checked) {
        return dns_gai_checked(loop, args[0], args[1], ints);
    }
    char pbuf[32];
    const char *h, *p;
    Py_ssize_t hn, pn;
    if (dns_plain_arg(args[0], 1, NULL, 0, &h, &hn) < 0 ||
        dns_plain_arg(args[1], 0, pbuf, sizeof(pbuf), &p, &pn) < 0) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    return dns_gai_fast(loop, h, hn, p, pn, ints);
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
