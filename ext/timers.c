/* The loop's timer heap: a binary min-heap of TimerHandles ordered by
 * (when, seq), so equal deadlines run in the order they were scheduled.
 * Each timer knows its index, which makes cancel() an O(log n) removal:
 * a cancelled timer leaves the heap at once, as libuv's timers do, so
 * the heap never holds dead entries and needs no compaction.
 *
 * The heap holds a strong reference to each timer in it. */
#include "tideloop.h"

#include <math.h>

static inline int
timer_before(TimerHandleObject *a, TimerHandleObject *b)
{
    /* A NaN deadline is due at once (as in asyncio), so it sorts first. */
    double wa = isnan(a->when) ? -INFINITY : a->when;
    double wb = isnan(b->when) ? -INFINITY : b->when;
    if (wa != wb) {
        return wa < wb;
    }
    return a->seq < b->seq;
}

static inline void
heap_set(LoopObject *self, Py_ssize_t i, TimerHandleObject *t)
{
    self->heap[i] = t;
    t->heap_index = i;
}

static void
heap_sift_up(LoopObject *self, Py_ssize_t i)
{
    TimerHandleObject *t = self->heap[i];
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (!timer_before(t, self->heap[parent])) {
            break;
        }
        heap_set(self, i, self->heap[parent]);
        i = parent;
    }
    heap_set(self, i, t);
}

static void
heap_sift_down(LoopObject *self, Py_ssize_t i)
{
    TimerHandleObject *t = self->heap[i];
    Py_ssize_t n = self->heap_len;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= n) {
            break;
        }
        if (child + 1 < n &&
            timer_before(self->heap[child + 1], self->heap[child])) {
            child++;
        }
        if (!timer_before(self->heap[child], t)) {
            break;
        }
        heap_set(self, i, self->heap[child]);
        i = child;
    }
    heap_set(self, i, t);
}

/* Takes a new reference to t. */
int
tl_timers_push(LoopObject *self, TimerHandleObject *t)
{
    if (self->heap_len == self->heap_cap) {
        Py_ssize_t cap = self->heap_cap ? self->heap_cap * 2 : 64;
        TimerHandleObject **n =
            PyMem_Realloc(self->heap, cap * sizeof(*n));
        if (n == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->heap = n;
        self->heap_cap = cap;
    }
    Py_INCREF(t);
    t->seq = self->timer_seq++;
    self->heap[self->heap_len] = t;
    t->heap_index = self->heap_len;
    self->heap_len++;
    heap_sift_up(self, self->heap_len - 1);
    return 0;
}

/* Removes the timer at index i; returns the reference the heap held. */
TimerHandleObject *
tl_timers_remove(LoopObject *self, Py_ssize_t i)
{
    TimerHandleObject *t = self->heap[i];
    Py_ssize_t last = --self->heap_len;
    t->heap_index = -1;
    if (i != last) {
        heap_set(self, i, self->heap[last]);
        if (i > 0 && timer_before(self->heap[i], self->heap[(i - 1) / 2])) {
            heap_sift_up(self, i);
        }
        else {
            heap_sift_down(self, i);
        }
    }
    return t;
}

void
tl_loop_timer_cancelled(LoopObject *self, TimerHandleObject *t)
{
    Py_ssize_t i = t->heap_index;
    if (i >= 0 && i < self->heap_len && self->heap[i] == t) {
        TimerHandleObject *r = tl_timers_remove(self, i);
        self->n_timers_cancelled++;
        /* The caller (cancel) holds its own reference. */
        Py_DECREF(r);
    }
}
