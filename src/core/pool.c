/*
 * A fixed pool of threads running one parallel loop at a time.
 *
 * Work is handed out by an atomic counter, so uneven items balance
 * themselves. Workers spin briefly before sleeping: the decoder runs dozens
 * of short loops per token and a sleep/wake round trip on every one of them
 * would cost more than the work.
 */
#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Pause instructions to spin before sleeping: long enough to cover the gap
 * between two loops of a decoding step (a few microseconds), short enough
 * that a pool sharing its cores with other work does not burn them. */
#define POOL_SPIN 4000

struct DiPool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done;
    /* The current loop. */
    DiPoolFn fn;
    void *ctx;
    int n;
    atomic_int next;     /* next item to take */
    atomic_int finished; /* workers done with this loop */
    atomic_uint epoch;   /* bumped for each loop */
    int stop;
};

typedef struct {
    DiPool *pool;
    int thread;
} WorkerArg;

static void run_items(DiPool *p, int thread) {
    for (;;) {
        int i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) break;
        p->fn(p->ctx, i, thread);
    }
}

static void *worker_main(void *arg) {
    WorkerArg *wa = arg;
    DiPool *p = wa->pool;
    int thread = wa->thread;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        /* Spin a little for the next loop before going to sleep. */
        unsigned e = atomic_load(&p->epoch);
        for (int spin = 0; e == seen && spin < POOL_SPIN; spin++) {
#if defined(__x86_64__)
            __builtin_ia32_pause();
#endif
            e = atomic_load(&p->epoch);
        }
        if (e == seen) {
            pthread_mutex_lock(&p->lock);
            while (atomic_load(&p->epoch) == seen && !p->stop)
                pthread_cond_wait(&p->wake, &p->lock);
            pthread_mutex_unlock(&p->lock);
            e = atomic_load(&p->epoch);
        }
        if (p->stop) return NULL;
        seen = e;
        run_items(p, thread);
        if (atomic_fetch_add(&p->finished, 1) + 1 == p->n_threads - 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

int di_pool_create(int n_threads, DiPool **out) {
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 256) return DI_EINVAL;
    DiPool *p = calloc(1, sizeof *p);
    if (!p) return DI_ENOMEM;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        di_pool_destroy(p);
        return DI_ENOMEM;
    }
    for (int t = 1; t < n_threads; t++) {
        WorkerArg *wa = malloc(sizeof *wa);
        if (wa) *wa = (WorkerArg){p, t};
        if (!wa || pthread_create(&p->threads[t], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n_threads = t; /* only the started ones are joined */
            di_pool_destroy(p);
            return DI_ENOMEM;
        }
    }
    *out = p;
    return 0;
}

void di_pool_destroy(DiPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    atomic_fetch_add(&p->epoch, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int t = 1; t < p->n_threads; t++)
        if (p->threads && p->threads[t]) pthread_join(p->threads[t], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int di_pool_threads(const DiPool *p) {
    return p ? p->n_threads : 1;
}

void di_pool_run(DiPool *p, int n, DiPoolFn fn, void *ctx) {
    if (n <= 0) return;
    if (!p || p->n_threads == 1 || n == 1) {
        for (int i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->finished, 0);
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->epoch, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_items(p, 0);
    /* Wait for the others; they finish soon after the items run out. */
    for (int spin = 0; atomic_load(&p->finished) < p->n_threads - 1 && spin < POOL_SPIN; spin++) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    }
    if (atomic_load(&p->finished) < p->n_threads - 1) {
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->finished) < p->n_threads - 1)
            pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
}
