/* The loop's timer heap: a binary min-heap of TimerHandles ordered by
 * (when, seq), so equal deadlines run in the order they were scheduled.
 *
 * Cancellation is asyncio's: cancel() only marks the timer and counts
 * it; tl_timers_prune, once per loop iteration, drops the cancelled
 * timers at the head, or all of them (and re-heapifies) when they are
 * over half of more than 100 timers.  TimerHandle._scheduled stays true
 * until then, as in asyncio.  So a timer never needs its position in the
 * heap: sifting moves only the slots.
 *
 * The sort key lives in the heap's own array (tl_timer_slot), next to
 * the pointer: sifting compares keys in one contiguous array and never
 * loads or writes a timer object, which for a heap of 100,000 timers
 * was a cache miss per level.
 *
 * The heap holds a strong reference to each timer in it.  While the loop
 * runs, a timer in the heap is not tracked by the GC (loop_gc_untrack in
 * loop.h; one scheduled then never was, loop_gc_adopt): the heap lets go
 * of it with loop_gc_release, which tracks it again if it lives on. */
#include "loop.h"

#include <math.h>

#define TL_MIN_SCHEDULED_TIMERS 100   /* asyncio's _MIN_SCHEDULED_TIMER_HANDLES */

static inline int
slot_before(const tl_timer_slot *a, const tl_timer_slot *b)
{
    if (a->when != b->when) {
        return a->when < b->when;
    }
    return a->seq < b->seq;
}

/* Puts s at the hole i of the heap, moving it up while it sorts before
 * its parent, but not above index top. */
static void
heap_sift_up(tl_timer_slot *heap, Py_ssize_t top, Py_ssize_t i,
             tl_timer_slot s)
{
    while (i > top) {
        Py_ssize_t parent = (i - 1) / 2;
        if (!slot_before(&s, &heap[parent])) {
            break;
        }
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = s;
}

/* Puts s at the hole i of heap[0..n): Floyd's variant, which moves the
 * hole down to a leaf along the smaller children (one comparison per
 * level) and then sifts s up from there, usually by a level or two. */
static void
heap_sift_down(tl_timer_slot *heap, Py_ssize_t n, Py_ssize_t i,
               tl_timer_slot s)
{
    Py_ssize_t start = i;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= n) {
            break;
        }
        if (child + 1 < n && slot_before(&heap[child + 1], &heap[child])) {
            child++;
        }
        heap[i] = heap[child];
        i = child;
    }
    heap_sift_up(heap, start, i, s);
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
    t->in_heap = 1;
    loop_gc_adopt(self, &t->base);
    /* A NaN deadline is due at once (as in asyncio), so it sorts first. */
    tl_timer_slot s = {isnan(t->when) ? -INFINITY : t->when, t->seq, t};
    heap_sift_up(self->heap, 0, self->heap_len++, s);
    return 0;
}

TimerHandleObject *
tl_timers_pop(LoopObject *self)
{
    TimerHandleObject *t = self->heap[0].t;
    Py_ssize_t last = --self->heap_len;
    if (last > 0) {
        heap_sift_down(self->heap, last, 0, self->heap[last]);
    }
    t->in_heap = 0;
    if (t->base.cancelled) {
        self->heap_cancelled--;
    }
    return t;
}

/* Moves the live timers to the front and re-heapifies them; the
 * cancelled ones go to dead[] (the caller drops them). */
static void
timers_compact(LoopObject *self, TimerHandleObject **dead)
{
    Py_ssize_t w = 0, nd = 0, n = self->heap_len;
    for (Py_ssize_t i = 0; i < n; i++) {
        TimerHandleObject *t = self->heap[i].t;
        if (t->base.cancelled && nd < self->heap_cancelled) {
            t->in_heap = 0;
            dead[nd++] = t;
        }
        else {
            self->heap[w++] = self->heap[i];
        }
    }
    self->heap_len = w;
    self->heap_cancelled -= nd;
    self->timer_cancelled_count = 0;
    for (Py_ssize_t i = w / 2 - 1; i >= 0; i--) {
        heap_sift_down(self->heap, w, i, self->heap[i]);
    }
}

void
tl_timers_prune(LoopObject *self)
{
    Py_ssize_t nd = self->heap_cancelled;
    if (self->heap_len > TL_MIN_SCHEDULED_TIMERS &&
        2 * self->timer_cancelled_count > self->heap_len) {
        TimerHandleObject **dead = PyMem_Malloc(nd * sizeof(*dead));
        if (dead != NULL) {
            timers_compact(self, dead);
            /* The heap is consistent: dropping the timers may run code
             * that schedules more. */
            nd -= self->heap_cancelled;
            for (Py_ssize_t i = 0; i < nd; i++) {
                loop_gc_release(self, &dead[i]->base);
            }
            PyMem_Free(dead);
            return;
        }
        /* No memory for the list: drop only the head ones. */
    }
    while (self->heap_len > 0 && self->heap[0].t->base.cancelled) {
        TimerHandleObject *t = tl_timers_pop(self);
        self->timer_cancelled_count--;
        loop_gc_release(self, &t->base);
    }
}

void
tl_loop_timer_cancelled(LoopObject *self, TimerHandleObject *t)
{
    if (t->in_heap) {
        self->heap_cancelled++;
        self->timer_cancelled_count++;
        self->n_timers_cancelled++;
    }
}
