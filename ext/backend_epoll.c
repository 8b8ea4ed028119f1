/* backend_epoll.c: the Linux backend (backend.h).
 *
 * The loop waits in one epoll_wait() on a set of its own, holding the
 * watched fds (add_reader & co., transports) and the loop's own fds:
 * an eventfd for wake-ups, a timerfd for the earliest deadline, the
 * signal socket, and, once DNS made its libuv loop (at the first lookup:
 * a loop that never resolves a name holds none of libuv's fds), libuv's
 * backend fd, whose readiness means libuv has work to finish (uv_run
 * NOWAIT).  Own fds carry
 * data.fd = -1 - fd, the watchers their fd and, in the upper 32 bits of
 * data.u64, the generation of their registration (see below).
 *
 * A closed fd leaves the set only when its file is closed: if a dup of it
 * lives on (os.dup(), a forked child, socket.fromfd()), its item stays,
 * out of reach of EPOLL_CTL_DEL (which finds items by the fd's current
 * file), and keeps reporting events under the old number, maybe reused
 * by another file meanwhile.  Each ADD gets a new generation, kept per fd
 * in `regs`: an event whose generation is not the fd's current one comes
 * from such a stale item.  It is dropped, never delivered, and the set is
 * rebuilt without it (a new epoll set on the same fd number, as after a
 * fork), so that a level-triggered stale item cannot spin the loop.
 *
 * Registration is an epoll_ctl() at add_reader() time, with the errors
 * asyncio's EpollSelector raises there (EPERM for a regular file, EBADF,
 * ...); events are level-triggered; and libuv never sees the user's fds
 * (libuv 1.44 abort()s when a deferred epoll_ctl() of a uv_poll fails).
 * The timerfd is armed in absolute nanoseconds: a timer never runs
 * early, and one wait per iteration suffices. */
#include "tideloop.h"

#ifdef TL_HAVE_EPOLL

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct tl_backend {
    int epfd;
    int uv_fd;                   /* uv_backend_fd(&u->dns->loop), or -1 */
    int timerfd;
    int wakefd;                  /* eventfd */
    int n_watched;               /* watched fds in the set */
    int cap;                     /* room in evs and out */
    struct epoll_event *evs;
    tl_event *out;
    /* Per watched fd: its registration's generation (0: not registered)
     * and events, indexed by fd, nregs long. */
    struct epoll_reg {
        uint32_t gen;
        int events;
    } *regs;
    int nregs;
    uint32_t last_gen;
} tl_backend;

static int
epoll_add_one(tl_backend *b, int fd)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = -1 - fd;
    return epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int
epoll_add_own(tl_uv *u)
{
    tl_backend *b = u->bd;
    int fds[] = {b->wakefd, b->timerfd, u->sig_rfd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (epoll_add_one(b, fds[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* DNS made (or forked) its libuv loop: its fd goes in the set. */
static int
epoll_uv_attach(tl_uv *u)
{
    tl_backend *b = u->bd;
    int fd = uv_backend_fd(&u->dns->loop);
    if (epoll_add_one(b, fd) < 0) {
        return -1;
    }
    b->uv_fd = fd;
    u->dns->primed = 0;
    return 0;
}

static int
epoll_create_be(tl_uv *u)
{
    tl_backend *b = PyMem_RawCalloc(1, sizeof(*b));
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    u->bd = b;
    b->uv_fd = -1;
    /* The epoll set first: its fd number is then the one asyncio's
     * selector gets in the same process state. */
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    b->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    b->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->timerfd < 0 || b->wakefd < 0 || b->epfd < 0 ||
        tl_sig_pair(u) < 0 || epoll_add_own(u) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static void
epoll_close_be(tl_uv *u)
{
    /* No libuv handles of its own. */
}

static void
close_if_open(int fd)
{
    if (fd >= 0) {
        close(fd);
    }
}

static void
epoll_release(tl_uv *u)
{
    tl_backend *b = u->bd;
    if (b == NULL) {
        return;
    }
    close_if_open(b->timerfd);
    close_if_open(b->wakefd);
    close_if_open(b->epfd);
    PyMem_RawFree(b->evs);
    PyMem_RawFree(b->out);
    PyMem_RawFree(b->regs);
    PyMem_RawFree(b);
    u->bd = NULL;
}

/* Room in b->regs for `fd`: 0, or -1 with errno. */
static int
epoll_regs_reserve(tl_backend *b, int fd)
{
    void *t = b->regs;
    int r = tl_fd_table_reserve(&t, &b->nregs, sizeof(*b->regs), fd);
    b->regs = t;
    return r;
}

/* epoll_ctl(op) of a watched fd for `events` under generation `gen`. */
static int
epoll_ctl_watched(tl_backend *b, int op, int fd, int events, uint32_t gen)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = (events & TL_EV_READ ? EPOLLIN : 0) |
                (events & TL_EV_WRITE ? EPOLLOUT : 0);
    ev.data.u64 = (uint64_t)gen << 32 | (uint32_t)fd;
    return epoll_ctl(b->epfd, op, fd, &ev);
}

/* `fd` is about to be closed: its registration is forgotten without a
 * syscall.  The close removes the item from the set, or, if a dup keeps
 * the file open, leaves it stale (see above). */
static void
epoll_forget(tl_uv *u, int fd)
{
    tl_backend *b = u->bd;
    if (fd < b->nregs) {
        b->regs[fd].gen = 0;
    }
    b->n_watched--;
}

static int
epoll_watch(tl_uv *u, int fd, int events, int old)
{
    tl_backend *b = u->bd;
    if (events == 0) {
        /* Fails harmlessly for an fd closed meanwhile (the kernel already
         * dropped it from the set, or it is stale: see above); selectors
         * ignores that too. */
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        (void)epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, &ev);
        epoll_forget(u, fd);
        return 0;
    }
    if (epoll_regs_reserve(b, fd) < 0) {
        return -1;
    }
    uint32_t gen = b->regs[fd].gen;
    if (!old) {
        if (++b->last_gen == 0) {
            b->last_gen = 1;     /* 0 means "not registered" */
        }
        gen = b->last_gen;
    }
    /* EEXIST: a stale item of this very file under this number (forgotten
     * while a dup kept the file open, which then came back on the number):
     * it becomes the registration. */
    if (epoll_ctl_watched(b, old ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, events,
                          gen) < 0 &&
        (old || errno != EEXIST ||
         epoll_ctl_watched(b, EPOLL_CTL_MOD, fd, events, gen) < 0)) {
        return -1;
    }
    b->regs[fd].gen = gen;
    b->regs[fd].events = events;
    if (!old) {
        b->n_watched++;
    }
    return 0;
}

static int
epoll_owns_fd(tl_uv *u, int fd)
{
    /* The loop's own epoll set cannot be watched (the kernel says EINVAL
     * for asyncio's selector adding itself), nor its other own fds,
     * which are in the set already. */
    tl_backend *b = u->bd;
    return fd == b->epfd || fd == b->uv_fd || fd == b->wakefd ||
           fd == b->timerfd;
}

/* Room for every member, as asyncio's selector asks for every registered
 * fd: the set is level-triggered, so a second call would report the
 * same fds again (their handles have not run yet). */
static int
epoll_reserve(tl_backend *b, int want)
{
    if (want <= b->cap) {
        return 0;
    }
    struct epoll_event *e = PyMem_RawRealloc(b->evs, want * sizeof(*e));
    if (e == NULL) {
        errno = ENOMEM;
        return -1;
    }
    b->evs = e;
    tl_event *o = PyMem_RawRealloc(b->out, want * sizeof(*o));
    if (o == NULL) {
        errno = ENOMEM;
        return -1;
    }
    b->out = o;
    b->cap = want;
    return 0;
}

/* An event came from a stale item (see above): a new set on the same fd
 * number, holding the loop's own fds and the current registrations.  If
 * that fails, the old set stays, its stale events dropped as they come. */
static void
epoll_rebuild(tl_uv *u)
{
    tl_backend *b = u->bd;
    int pfd = epoll_create1(EPOLL_CLOEXEC);
    if (pfd < 0 || tl_fd_replace(pfd, b->epfd) < 0) {
        return;
    }
    (void)epoll_add_own(u);
    if (b->uv_fd >= 0) {
        (void)epoll_add_one(b, b->uv_fd);
    }
    for (int fd = 0; fd < b->nregs; fd++) {
        if (b->regs[fd].gen != 0) {
            /* A closed fd fails: DEL and MOD then fail as they would. */
            (void)epoll_ctl_watched(b, EPOLL_CTL_ADD, fd, b->regs[fd].events,
                                    b->regs[fd].gen);
        }
    }
}

/* One of the loop's own fds is ready. */
static void
epoll_own_ready(tl_uv *u, int fd, int *uv_ready)
{
    tl_backend *b = u->bd;
    if (fd == b->wakefd) {
        /* The wake-up is the whole job: the handles are queued.  One
         * read resets the eventfd counter. */
        uint64_t v;
        (void)read(b->wakefd, &v, sizeof(v));
    }
    else if (fd == b->timerfd) {
        /* Drain it so that the level-triggered set does not report it
         * again; it is now disarmed. */
        uint64_t ticks;
        while (read(b->timerfd, &ticks, sizeof(ticks)) > 0) {
        }
        u->timer_fired = 1;
    }
    else if (fd == u->sig_rfd) {
        u->sig_pending = 1;
    }
    else if (fd == b->uv_fd) {
        *uv_ready = 1;
    }
}

static int
epoll_wait_be(tl_uv *u, int block, tl_event **out)
{
    tl_backend *b = u->bd;
    int cap = b->n_watched + 4;
    if (epoll_reserve(b, cap) < 0) {
        return -1;
    }
    int n = epoll_wait(b->epfd, b->evs, cap, block ? -1 : 0);
    if (n < 0) {
        if (errno != EINTR) {
            return -1;
        }
        n = 0;                  /* a signal: the loop checks for it */
    }
    /* selectors.EpollSelector: anything but EPOLLOUT wakes the reader,
     * anything but EPOLLIN wakes the writer. */
    int uv_ready = 0, stale = 0, k = 0;
    for (int i = 0; i < n; i++) {
        uint64_t data = b->evs[i].data.u64;
        int fd = (int)(uint32_t)data;
        uint32_t e = b->evs[i].events;
        if (fd < 0) {
            epoll_own_ready(u, -1 - fd, &uv_ready);
            continue;
        }
        if (fd >= b->nregs || b->regs[fd].gen != (uint32_t)(data >> 32)) {
            stale = 1;
            continue;
        }
        b->out[k].fd = fd;
        b->out[k].events = ((e & ~(uint32_t)EPOLLOUT) ? TL_EV_READ : 0) |
                           ((e & ~(uint32_t)EPOLLIN) ? TL_EV_WRITE : 0);
        k++;
    }
    if (stale) {
        epoll_rebuild(u);
    }
    if (uv_ready) {
        /* libuv has something to finish (a DNS lookup's completion): its
         * callbacks only record it in C. */
        tl_dns_poll(u);
    }
    *out = b->out;
    return k;
}

static void
epoll_arm(tl_uv *u, int64_t ns)
{
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = ns / 1000000000LL;
    its.it_value.tv_nsec = ns % 1000000000LL;
    (void)timerfd_settime(u->bd->timerfd, ns ? TFD_TIMER_ABSTIME : 0, &its,
                          NULL);
}

/* The eventfd: one write wakes epoll_wait(). */
static void
epoll_wakeup(tl_uv *u)
{
    uint64_t one = 1;
    while (write(u->bd->wakefd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

/* New epoll set, timerfd and eventfd on the same fd numbers (the
 * inherited ones are shared with the parent); the watched fds come back
 * through rewatch(), libuv's new backend fd through uv_attach() (dns.c
 * forks its loop). */
static int
epoll_after_fork(tl_uv *u)
{
    tl_backend *b = u->bd;
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int pfd = epoll_create1(EPOLL_CLOEXEC);
    if (tfd < 0 || efd < 0 || pfd < 0) {
        int e = errno;
        close_if_open(tfd);
        close_if_open(efd);
        close_if_open(pfd);
        errno = e;
        return -1;
    }
    if (tl_fd_replace(tfd, b->timerfd) < 0 ||
        tl_fd_replace(efd, b->wakefd) < 0 ||
        tl_fd_replace(pfd, b->epfd) < 0) {
        return -1;
    }
    b->uv_fd = -1;
    return epoll_add_own(u);
}

static void
epoll_rewatch(tl_uv *u, int fd, int events)
{
    tl_backend *b = u->bd;
    uint32_t gen = fd < b->nregs ? b->regs[fd].gen : 0;
    (void)epoll_ctl_watched(b, EPOLL_CTL_ADD, fd, events, gen);
}

const tl_backend_ops tl_backend_epoll = {
    .name = "epoll",
    .waits_in_uv = 0,
    .lazy_unwatch = 1,
    .create = epoll_create_be,
    .uv_attach = epoll_uv_attach,
    .close = epoll_close_be,
    .release = epoll_release,
    .watch = epoll_watch,
    .forget = epoll_forget,
    .owns_fd = epoll_owns_fd,
    .wait = epoll_wait_be,
    .arm = epoll_arm,
    .wakeup = epoll_wakeup,
    .after_fork = epoll_after_fork,
    .rewatch = epoll_rewatch,
};

#endif /* TL_HAVE_EPOLL */
