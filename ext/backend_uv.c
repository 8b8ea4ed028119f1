/* backend_uv.c: the libuv backend (backend.h): macOS, the BSDs, a
 * portable build, and Linux with TIDELOOP_BACKEND=libuv.
 *
 * - One uv_poll_t per watched fd, its events switched between reader and
 *   writer.  The loop waits in uv_run(UV_RUN_ONCE); the callbacks only
 *   record which fds fired, in libuv's (the kernel's) order.
 * - One uv_timer_t for the earliest deadline.  libuv's clock counts
 *   milliseconds and may lag: the delay is rounded up, and a timer that
 *   wakes the loop early is not run (the loop checks loop.time() >= when
 *   and arms again), so no timer ever runs before its `when`.
 * - A uv_async_t for wake-ups from other threads.
 * - The signal wake-up socket is watched like any fd.
 * - After fork, uv_loop_fork() re-creates the kernel objects.
 *
 * Deferred registration.  libuv applies uv_poll_start() inside the next
 * poll, and on Linux 1.44 abort()s when that epoll_ctl() fails: an fd
 * closed (or closed and replaced by a regular file) between add_reader()
 * and the next poll would kill the process.  So every watcher records the
 * file it was registered for (st_dev, st_ino) and, before each uv_run(),
 * the watchers started since the last one are checked with fstat(): one
 * whose fd is closed or now names another file is stopped (uv_poll_stop
 * removes it at once, without a deferred call) and stays "dead", which is
 * what asyncio observes: the kernel dropped the closed file from its
 * epoll set, and no callback ever runs for it.  Errors a live fd would
 * get (EBADF, EPERM for a regular file) are raised at add_reader() time,
 * as asyncio's selector raises them.  (Another thread closing the fd
 * between the check and the poll is outside what this can see.) */
#include "tideloop.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

struct tl_backend;

typedef struct tl_uvw {
    uv_poll_t h;                 /* h.data = this */
    struct tl_backend *b;
    struct tl_uvw *next_pending;
    uint64_t batch;              /* the wait that reported it last */
    int slot;                    /* its index in out[] for that wait */
    int fd;
    int events;                  /* TL_EV_* watched */
    char pending;                /* started since the last check */
    char dead;                   /* stopped: its file was closed */
    dev_t dev;                   /* the file it was registered for */
    ino_t ino;
} tl_uvw;

typedef struct tl_backend {
    tl_uv *u;
    uv_timer_t timer;
    uv_async_t async;
    uv_poll_t sig;
    char have_timer, have_async, have_sig, closed;
    tl_uvw **w;                  /* by fd */
    int nw;
    int n_watched;
    tl_uvw *pending;             /* started since the last check */
    uint64_t batch;
    tl_event *out;
    int nout;
    int cap;
} tl_backend;

static void
uvbe_on_close_free(uv_handle_t *h)
{
    PyMem_RawFree(h->data);
}

static void
uvbe_on_timer(uv_timer_t *t)
{
    tl_backend *b = t->data;
    b->u->timer_fired = 1;
}

static void
uvbe_on_async(uv_async_t *a)
{
    /* The wake-up is the whole job: the handles are queued. */
}

static void
uvbe_on_signal(uv_poll_t *h, int status, int events)
{
    tl_backend *b = h->data;
    b->u->sig_pending = 1;
    if (status < 0) {
        /* libuv stopped it (POLLERR): keep watching. */
        (void)uv_poll_start(h, UV_READABLE, uvbe_on_signal);
    }
}

static int
uvbe_create(tl_uv *u)
{
    tl_backend *b = PyMem_RawCalloc(1, sizeof(*b));
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    u->bd = b;
    b->u = u;
    /* libuv registers its own fds inside uv_run(), which is our wait. */
    u->uv_primed = 1;
    int err = uv_timer_init(&u->loop, &b->timer);
    if (err == 0) {
        b->have_timer = 1;
        b->timer.data = b;
        err = uv_async_init(&u->loop, &b->async, uvbe_on_async);
    }
    if (err == 0) {
        b->have_async = 1;
        err = uv_poll_init(&u->loop, &b->sig, u->sig_rfd);
    }
    if (err == 0) {
        b->have_sig = 1;
        b->sig.data = b;
        err = uv_poll_start(&b->sig, UV_READABLE, uvbe_on_signal);
    }
    if (err < 0) {
        PyErr_Format(PyExc_OSError, "libuv backend: %s", uv_strerror(err));
        return -1;
    }
    return 0;
}

static void
uvbe_close_handle(uv_handle_t *h, char *have)
{
    if (*have && !uv_is_closing(h)) {
        uv_close(h, NULL);
    }
    *have = 0;
}

static void
uvbe_close(tl_uv *u)
{
    tl_backend *b = u->bd;
    if (b == NULL || b->closed) {
        return;
    }
    b->closed = 1;
    uvbe_close_handle((uv_handle_t *)&b->timer, &b->have_timer);
    uvbe_close_handle((uv_handle_t *)&b->async, &b->have_async);
    uvbe_close_handle((uv_handle_t *)&b->sig, &b->have_sig);
    for (int fd = 0; fd < b->nw; fd++) {
        tl_uvw *w = b->w[fd];
        if (w != NULL) {
            b->w[fd] = NULL;
            uv_close((uv_handle_t *)&w->h, uvbe_on_close_free);
        }
    }
    b->pending = NULL;
}

static void
uvbe_release(tl_uv *u)
{
    tl_backend *b = u->bd;
    if (b == NULL) {
        return;
    }
    PyMem_RawFree(b->w);
    PyMem_RawFree(b->out);
    PyMem_RawFree(b);
    u->bd = NULL;
}

static int
uvbe_owns_fd(tl_uv *u, int fd)
{
    return fd == uv_backend_fd(&u->loop);
}

static void
pending_push(tl_backend *b, tl_uvw *w)
{
    if (!w->pending) {
        w->pending = 1;
        w->next_pending = b->pending;
        b->pending = w;
    }
}

static int
uv_events(int events)
{
    return (events & TL_EV_READ ? UV_READABLE : 0) |
           (events & TL_EV_WRITE ? UV_WRITABLE : 0);
}

static void uvbe_on_poll(uv_poll_t *h, int status, int events);

static int
table_reserve(tl_backend *b, int fd)
{
    if (fd < b->nw) {
        return 0;
    }
    int n = b->nw ? b->nw : 64;
    while (n <= fd) {
        n *= 2;
    }
    tl_uvw **a = PyMem_RawRealloc(b->w, (size_t)n * sizeof(*a));
    if (a == NULL) {
        errno = ENOMEM;
        return -1;
    }
    memset(a + b->nw, 0, (size_t)(n - b->nw) * sizeof(*a));
    b->w = a;
    b->nw = n;
    return 0;
}

/* A new watcher for `fd`: uv_poll_init() checks the fd as the kernel's
 * set would (EPERM for a regular file, EBADF, ...). */
static tl_uvw *
watcher_new(tl_backend *b, int fd)
{
    if (table_reserve(b, fd) < 0) {
        return NULL;
    }
    tl_uvw *w = PyMem_RawCalloc(1, sizeof(*w));
    if (w == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    /* uv_poll_init() makes the fd non-blocking; asyncio's add_reader()
     * leaves its flags alone, and readiness polling does not need it. */
    int flags = fcntl(fd, F_GETFL);
    int err = uv_poll_init(&b->u->loop, &w->h, fd);
    if (err < 0) {
        PyMem_RawFree(w);
        errno = -err;
        return NULL;
    }
    if (flags >= 0 && !(flags & O_NONBLOCK)) {
        (void)fcntl(fd, F_SETFL, flags);
    }
    w->h.data = w;
    w->b = b;
    w->fd = fd;
    w->batch = (uint64_t)-1;
    b->w[fd] = w;
    b->n_watched++;
    return w;
}

static int
uvbe_watch(tl_uv *u, int fd, int events, int old)
{
    tl_backend *b = u->bd;
    tl_uvw *w = fd < b->nw ? b->w[fd] : NULL;
    if (events == 0) {
        if (w != NULL) {
            b->w[fd] = NULL;
            b->n_watched--;
            /* Not checked any more; freed by libuv's close callback, after
             * the pending list is cleared. */
            w->dead = 1;
            uv_close((uv_handle_t *)&w->h, uvbe_on_close_free);
        }
        return 0;
    }
    /* What the kernel's set would say about this fd now. */
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        return -1;
    }
#ifdef __linux__
    if (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)) {
        errno = EPERM;
        return -1;
    }
#endif
    if (w == NULL && (w = watcher_new(b, fd)) == NULL) {
        return -1;
    }
    w->events = events;
    w->dev = sb.st_dev;
    w->ino = sb.st_ino;
    w->dead = 0;
    /* uv_poll_start() removes the old registration at once and adds the
     * new one in the next poll: checked before it (pending_check). */
    (void)uv_poll_start(&w->h, uv_events(events), uvbe_on_poll);
    pending_push(b, w);
    return 0;
}

/* Before uv_run(): stop the watchers started since the last run whose fd
 * no longer names the file they were registered for (see the top). */
static void
pending_check(tl_backend *b)
{
    tl_uvw *w = b->pending;
    b->pending = NULL;
    while (w != NULL) {
        tl_uvw *next = w->next_pending;
        w->pending = 0;
        w->next_pending = NULL;
        if (!w->dead) {
            struct stat sb;
            if (fstat(w->fd, &sb) < 0 || sb.st_dev != w->dev ||
                sb.st_ino != w->ino) {
                uv_poll_stop(&w->h);
                w->dead = 1;
            }
        }
        w = next;
    }
}

static void
uvbe_on_poll(uv_poll_t *h, int status, int events)
{
    tl_uvw *w = h->data;
    tl_backend *b = w->b;
    int ev;
    if (status < 0) {
        /* POLLERR: libuv stopped the handle.  As EpollSelector, wake both
         * sides, and keep watching: level-triggered, the error is
         * reported again until it is dealt with. */
        ev = TL_EV_READ | TL_EV_WRITE;
        (void)uv_poll_start(h, uv_events(w->events), uvbe_on_poll);
        pending_push(b, w);
    }
    else {
        ev = ((events & (UV_READABLE | UV_DISCONNECT)) ? TL_EV_READ : 0) |
             ((events & UV_WRITABLE) ? TL_EV_WRITE : 0);
    }
    if (w->batch == b->batch) {
        /* libuv polled twice in one run: one entry per fd, as epoll. */
        b->out[w->slot].events |= ev;
        return;
    }
    if (b->nout >= b->cap) {
        return;                  /* cannot happen: reserved per watcher */
    }
    w->batch = b->batch;
    w->slot = b->nout;
    b->out[b->nout].fd = w->fd;
    b->out[b->nout].events = ev;
    b->nout++;
}

static int
uvbe_wait(tl_uv *u, int block, tl_event **out)
{
    tl_backend *b = u->bd;
    int want = b->n_watched + 1;
    if (want > b->cap) {
        tl_event *o = PyMem_RawRealloc(b->out, (size_t)want * sizeof(*o));
        if (o == NULL) {
            errno = ENOMEM;
            return -1;
        }
        b->out = o;
        b->cap = want;
    }
    pending_check(b);
    b->batch++;
    b->nout = 0;
    uv_run(&u->loop, block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
    *out = b->out;
    return b->nout;
}

static void
uvbe_arm(tl_uv *u, int64_t ns)
{
    tl_backend *b = u->bd;
    if (ns == 0) {
        uv_timer_stop(&b->timer);
        return;
    }
    /* libuv counts from its cached millisecond clock: refresh it, and
     * round the delay up.  An early wake-up only makes the loop arm again
     * (it runs a timer only once loop.time() >= when). */
    uv_update_time(&u->loop);
    int64_t delta = ns - tl_monotonic_ns();
    uint64_t ms = delta > 0 ? (uint64_t)((delta + 999999) / 1000000) : 0;
    (void)uv_timer_start(&b->timer, uvbe_on_timer, ms, 0);
}

static void
uvbe_wakeup(tl_uv *u)
{
    (void)uv_async_send(&u->bd->async);
}

static int
uvbe_after_fork(tl_uv *u)
{
    tl_backend *b = u->bd;
    uv_timer_stop(&b->timer);
    int err = uv_loop_fork(&u->loop);
    if (err < 0) {
        errno = -err;
        return -1;
    }
    return 0;
}

/* uv_loop_fork() registers every watcher again in the next poll: check
 * them before it, as new registrations. */
static void
uvbe_rewatch(tl_uv *u, int fd, int events)
{
    tl_backend *b = u->bd;
    tl_uvw *w = fd < b->nw ? b->w[fd] : NULL;
    if (w != NULL) {
        pending_push(b, w);
    }
}

const tl_backend_ops tl_backend_uv = {
    .name = "libuv",
    .create = uvbe_create,
    .close = uvbe_close,
    .release = uvbe_release,
    .watch = uvbe_watch,
    .owns_fd = uvbe_owns_fd,
    .wait = uvbe_wait,
    .arm = uvbe_arm,
    .wakeup = uvbe_wakeup,
    .after_fork = uvbe_after_fork,
    .rewatch = uvbe_rewatch,
};
