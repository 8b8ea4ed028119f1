/* The loop's timer heap: a binary min-heap of TimerHandles ordered by
 * (when, seq), so equal deadlines run in the order they were scheduled.
 * Each timer knows its index, which makes cancel() an O(log n) removal:
 * a cancelled timer leaves the heap at once, as libuv's timers do, so
 * the heap never holds dead entries and needs no compaction.
 *
 * The sort key lives in the heap's own array (tl_timer_slot), next to
 * the pointer: sifting compares keys in one contiguous array instead of
 * loading each timer object, which for a heap of 100,000 timers was a
 * cache miss per level.  Only the moved timer's heap_index is written.
 *
 * The heap holds a strong reference to each timer in it. */
#include "tideloop.h"

#include <math.h>

static inline int
slot_before(const tl_timer_slot *a, const tl_timer_slot *b)
{
    if (a->when != b->when) {
        return a->when < b->when;
    }
    return a->seq < b->seq;
}

static inline void
heap_set(LoopObject *self, Py_ssize_t i, tl_timer_slot s)
{
    self->heap[i] = s;
    s.t->heap_index = i;
}

static void
heap_sift_up(LoopObject *self, Py_ssize_t i)
{
    tl_timer_slot s = self->heap[i];
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (!slot_before(&s, &self->heap[parent])) {
            break;
        }
        heap_set(self, i, self->heap[parent]);
        i = parent;
    }
    heap_set(self, i, s);
}

static void
heap_sift_down(LoopObject *self, Py_ssize_t i)
{
    tl_timer_slot s = self->heap[i];
    Py_ssize_t n = self->heap_len;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= n) {
            break;
        }
        if (child + 1 < n &&
            slot_before(&self->heap[child + 1], &self->heap[child])) {
            child++;
        }
        if (!slot_before(&self->heap[child], &s)) {
            break;
        }
        heap_set(self, i, self->heap[child]);
        i = child;
    }
    heap_set(self, i, s);
}

int
tl_timers_push(LoopObject *self, TimerHandleObject *t)
{
    if (self->heap_len == self->heap_cap) {
        Py_ssize_t cap = self->heap_cap ? self->heap_cap * 2 : 64;
        tl_timer_slot *n = PyMem_Realloc(self->heap, cap * sizeof(*n));
        if (n == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->heap = n;
        self->heap_cap = cap;
    }
    Py_INCREF(t);
    t->seq = self->timer_seq++;
    /* A NaN deadline is due at once (as in asyncio), so it sorts first. */
    tl_timer_slot s = {isnan(t->when) ? -INFINITY : t->when, t->seq, t};
    self->heap[self->heap_len] = s;
    self->heap_len++;
    heap_sift_up(self, self->heap_len - 1);
    return 0;
}

/* Removes the timer at index i; returns the reference the heap held. */
TimerHandleObject *
tl_timers_remove(LoopObject *self, Py_ssize_t i)
{
    TimerHandleObject *t = self->heap[i].t;
    Py_ssize_t last = --self->heap_len;
    t->heap_index = -1;
    if (i != last) {
        heap_set(self, i, self->heap[last]);
        if (i > 0 && slot_before(&self->heap[i], &self->heap[(i - 1) / 2])) {
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
    if (i >= 0 && i < self->heap_len && self->heap[i].t == t) {
        TimerHandleObject *r = tl_timers_remove(self, i);
        self->n_timers_cancelled++;
        /* The caller (cancel) holds its own reference. */
        Py_DECREF(r);
    }
}
