/* Backpressure on call_soon_threadsafe() producers.
 *
 * Appending a handle from another thread costs a fraction of what running
 * it costs the loop, and CPython hands the GIL around only every switch
 * interval (5 ms): eight threads posting in a tight loop outran the loop
 * fifty to one, its ready queue grew by a gigabyte, and a timer due in
 * 10 ms ran seconds late.  (Stock asyncio is saved by its wake-up write,
 * a send() per call that releases the GIL every time.)
 *
 * So a producer that finds TL_TSAFE_HIGH threadsafe handles still queued
 * waits, with the GIL released, until the loop has run its batch and is
 * down to TL_TSAFE_LOW; the loop then broadcasts (tl_tsafe_drained).  The
 * loop's own batch stays asyncio's: every handle ready at the start of
 * an iteration runs in it, and that batch is now bounded by the producers.
 *
 * A producer never waits:
 *   - on a loop that is not running, stopping or closed (a loop that is
 *     not running does not drain; asyncio never blocks there either);
 *   - in a thread that runs an event loop, this one or another (blocking
 *     it would stall that loop's timers, and two loops flooding each
 *     other would wait on each other);
 *   - while the interpreter is finalizing;
 *   - while the loop is stalled: a wait that times out (TL_TSAFE_STALL_MS)
 *     without the loop having run anything marks the loop stalled, and
 *     no producer waits again until it makes progress.  A callback that
 *     joins a producer thread, or waits for a lock a producer holds, so
 *     costs one timeout and never deadlocks.
 * Run exit, stop() and close() wake every waiter; a waiter that wakes
 * re-checks all of this, and then goes through call_soon_threadsafe's own
 * checks (a closed loop raises RuntimeError('Event loop is closed')).
 *
 * Synchronisation.  `gen` counts broadcasts; the loop changes it holding
 * both the GIL and `mu`, so a producer reads it under the GIL (deciding
 * to wait) and under `mu` (waiting) without a race, and a broadcast
 * between the two is seen as a changed `gen`: no lost wake-up.  Nobody
 * holds `mu` while waiting for the GIL.  Everything else is under the
 * GIL.  The state is made on the first wait (a loop that is never flooded
 * pays nothing but one compare per call), and after fork() the child
 * abandons its copy: a thread that no longer exists may have held `mu`. */
#include "tideloop.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

/* How long a waiter sleeps before it looks whether the loop still makes
 * progress (and, in the main thread, runs the signal handlers). */
#define TL_TSAFE_STALL_MS 50

struct tl_tsafe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    clockid_t clock;             /* the clock of cv's deadlines */
    pid_t pid;                   /* the process that made it */
    uint64_t gen;                /* broadcasts so far (see above) */
    int waiters;                 /* registered since the last broadcast */
    char stalled;                /* the loop made no progress in a wait */
    uint64_t stall_mark;         /* its progress when found stalled */
};

static int
tsafe_cond_init(struct tl_tsafe *ts)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        return -1;
    }
    ts->clock = CLOCK_REALTIME;
#if defined(_POSIX_CLOCK_SELECTION) && _POSIX_CLOCK_SELECTION >= 0
    /* Deadlines on the monotonic clock where the system offers it: a
     * wall-clock step must not stretch a wait (macOS has no setclock). */
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0) {
        ts->clock = CLOCK_MONOTONIC;
    }
#endif
    int err = pthread_cond_init(&ts->cv, &attr);
    pthread_condattr_destroy(&attr);
    return err == 0 ? 0 : -1;
}

/* The loop's wait state, made on first use; NULL if it cannot be made
 * (the producer then simply does not wait).  In a child after fork(), the
 * parent's copy is dropped unfreed: its mutex may be held forever. */
static struct tl_tsafe *
tsafe_get(LoopObject *loop)
{
    struct tl_tsafe *ts = loop->ts;
    if (ts != NULL && ts->pid == getpid()) {
        return ts;
    }
    loop->ts = NULL;
    ts = PyMem_RawCalloc(1, sizeof(*ts));
    if (ts == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&ts->mu, NULL) != 0) {
        PyMem_RawFree(ts);
        return NULL;
    }
    if (tsafe_cond_init(ts) < 0) {
        pthread_mutex_destroy(&ts->mu);
        PyMem_RawFree(ts);
        return NULL;
    }
    ts->pid = getpid();
    loop->ts = ts;
    return ts;
}

void
tl_tsafe_free(LoopObject *loop)
{
    struct tl_tsafe *ts = loop->ts;
    loop->ts = NULL;
    if (ts != NULL && ts->pid == getpid()) {
        pthread_cond_destroy(&ts->cv);
        pthread_mutex_destroy(&ts->mu);
        PyMem_RawFree(ts);
    }
}

/* Handles the loop has dealt with: moves while it makes progress. */
static inline uint64_t
tsafe_progress(LoopObject *loop)
{
    return loop->n_iterations + loop->n_callbacks;
}

static int
tsafe_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* Whether the calling thread runs an event loop (asyncio's running-loop
 * slot, whatever the loop).  Errors count as "yes": do not wait. */
static int
tsafe_thread_runs_a_loop(LoopObject *loop)
{
    unsigned long owner = PyLong_AsUnsignedLong(loop->thread_id);
    if (owner == (unsigned long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 1;
    }
    if (owner == PyThread_get_thread_ident()) {
        return 1;
    }
    PyObject *name = PyUnicode_FromString("asyncio.events");
    PyObject *events = name ? PyImport_GetModule(name) : NULL;
    PyObject *running = NULL;
    Py_XDECREF(name);
    if (events != NULL) {
        running = PyObject_CallMethod(events, "_get_running_loop", NULL);
        Py_DECREF(events);
    }
    if (running == NULL) {
        PyErr_Clear();
        return 1;
    }
    int r = running != Py_None;
    Py_DECREF(running);
    return r;
}

/* Whether a producer in this thread should wait now (GIL held). */
static int
tsafe_may_wait(LoopObject *loop, struct tl_tsafe *ts)
{
    if (loop->ts_pending < TL_TSAFE_HIGH || !loop->in_run ||
        loop->stopping || loop->closed || loop->uv == NULL ||
        loop->thread_id == Py_None || tsafe_finalizing()) {
        return 0;
    }
    if (ts->stalled && ts->stall_mark == tsafe_progress(loop)) {
        return 0;
    }
    ts->stalled = 0;
    return !tsafe_thread_runs_a_loop(loop);
}

/* Sleep until the broadcast after `gen`, or TL_TSAFE_STALL_MS.  Without
 * the GIL.  Returns 1 if woken by a broadcast, 0 on timeout. */
static int
tsafe_sleep(struct tl_tsafe *ts, uint64_t gen)
{
    struct timespec deadline;
    int woken = 1;
    clock_gettime(ts->clock, &deadline);
    deadline.tv_nsec += TL_TSAFE_STALL_MS * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ts->mu);
    while (ts->gen == gen) {
        if (pthread_cond_timedwait(&ts->cv, &ts->mu, &deadline) ==
            ETIMEDOUT) {
            woken = ts->gen != gen;
            break;
        }
    }
    pthread_mutex_unlock(&ts->mu);
    return woken;
}

int
tl_tsafe_wait(LoopObject *loop)
{
    struct tl_tsafe *ts = tsafe_get(loop);
    if (ts == NULL || !tsafe_may_wait(loop, ts)) {
        return 0;
    }
    /* Our caller's frame holds the loop; this reference makes sure. */
    Py_INCREF(loop);
    int r = 0;
    uint64_t mark = tsafe_progress(loop);
    do {
        uint64_t gen = ts->gen;
        int woken;
        ts->waiters++;
        Py_BEGIN_ALLOW_THREADS
        woken = tsafe_sleep(ts, gen);
        Py_END_ALLOW_THREADS
        /* Re-entrancy: the signal handlers may do anything (Ctrl-C in a
         * main thread that posts to a loop in another thread). */
        if (PyErr_CheckSignals() < 0) {
            r = -1;
            break;
        }
        /* The state is the loop's until it is deallocated, which our
         * reference prevents; after fork() it may have been replaced. */
        ts = tsafe_get(loop);
        if (ts == NULL) {
            break;
        }
        if (!woken) {
            uint64_t now = tsafe_progress(loop);
            if (now == mark) {
                ts->stalled = 1;
                ts->stall_mark = now;
            }
            mark = now;
        }
    } while (tsafe_may_wait(loop, ts));
    Py_DECREF(loop);
    return r;
}

/* Wake every waiting producer (GIL held). */
void
tl_tsafe_release(LoopObject *loop)
{
    struct tl_tsafe *ts = loop->ts;
    if (ts == NULL || ts->waiters == 0) {
        return;
    }
    if (ts->pid != getpid()) {
        /* Waiters of the parent: those threads are gone. */
        loop->ts = NULL;
        return;
    }
    ts->waiters = 0;
    pthread_mutex_lock(&ts->mu);
    ts->gen++;
    pthread_cond_broadcast(&ts->cv);
    pthread_mutex_unlock(&ts->mu);
}

void
tl_tsafe_drained(LoopObject *loop)
{
    if (loop->ts_pending <= TL_TSAFE_LOW) {
        tl_tsafe_release(loop);
    }
}
