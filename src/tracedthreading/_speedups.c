/* tracedthreading._speedups: the C hot path of tracedthreading's Lock and RLock.
 *
 * The same design as the pure-Python hot path (src/tracedthreading/_pylock.py, which documents it), in
 * C so that each call is as atomic as the stdlib's: between taking the real lock and recording who took
 * it, and between un-recording it and releasing the real lock, no Python code runs, so no signal
 * handler, garbage-collector finalizer or thread switch can observe or break a half-done state.
 *
 * State. Each lock owns a real lock (PyThread_type_lock, what _thread.lock is made of); it alone decides
 * whether the lock is held, and a thread waits for it the way _thread does (the GIL released, woken by
 * signals, which run their handlers and then go on waiting). An RLock keeps its owner's thread id and its
 * recursion count beside it, as _thread.RLock does.
 *
 * Bookkeeping. The calling thread's held stack (a list of lock keys, shared with the pure path: see
 * tracedthreading._threads) is found in the thread state's dict. A take pushes the lock's key, reads the
 * clock and compares the stack with the context the lock cached; a release pops the key, adds the hold to
 * the lock's total and counts it into its name's histogram (every hold: no sampling here). Anything rare
 * calls back into tracedthreading._lockcore, the slow paths both hot paths share, always with the lock's
 * state consistent: a context not seen before (new_context), a wait (begin_wait, wait_long, end_wait), a
 * hold past the lock's cap (past_cap). A callback that raises after a take undoes the take, so an acquire
 * that raises has not acquired.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <pythread.h>
#include <stdint.h>
#if PY_VERSION_HEX < 0x030B0000
#include <frameobject.h>  /* 3.10: PyFrameObject's fields (f_globals) */
#endif

#if PY_VERSION_HEX < 0x030A0000
#error "tracedthreading needs Python 3.10 or newer"
#endif

/* What the Python side expects of this module (tracedthreading._cext.API): a build from older sources
   left in place (an editable install not rebuilt) is not loaded, the pure-Python path runs instead. */
#define SPEEDUPS_API 3

/* -- hooks into the Python side (set once by _setup) ------------------------------------------ */

static PyObject *hook_current;      /* _threads.current(): the calling thread's held stack */
static PyObject *hook_new_context;  /* _lockcore.new_context(lock, held, timed, edges) -> inversion|None */
static PyObject *hook_begin_wait;   /* _lockcore.begin_wait(lock, held, timeout, holder_id, mine, refuse) */
static PyObject *hook_wait_long;    /* _lockcore.wait_long(lock, wait) -> remaining seconds (-1: for ever) */
static PyObject *hook_end_wait;     /* _lockcore.end_wait(lock, wait, got, taken_at_ns) */
static PyObject *hook_short_wait;   /* _lockcore.short_wait(lock, start_ns, end_ns, got, holder_id) */
static double short_wait_s = 0.001; /* _lockcore.SHORT_WAIT */
static PyObject *hook_abort_wait;   /* _lockcore.abort_wait(wait) */
static PyObject *hook_note_failure; /* _lockcore.note_failure(lock) */
static PyObject *hook_past_cap;     /* _lockcore.past_cap(lock, hold_s, start_s, owner_id) */
static PyObject *hook_grow;         /* _stats.count_into(hist, ns, weight) */
static PyObject *lock_order_error;  /* _lockcore.LockOrderError */
/* Containers of the Python side that C reads and writes directly (never rebound there, see _setup): */
static PyObject *name_stats_dict;   /* _stats._name_stats: (name, module, line, kind) -> NameStats */
static PyObject *name_stats_make;   /* _stats.name_stats(name, module, line, kind): a name's first lock */
static PyObject *dead_locks;        /* _stats._dead_locks: counters of dead locks, waiting to be folded */
static PyObject *try_drain;         /* _stats.try_drain(): fold them (never blocks) */
static PyObject *order_names;       /* _lockorder._names: keys the order graph knows */
static PyObject *order_retire;      /* _lockorder.retire(key, ctx, ctxn) */
static Py_ssize_t drain_at = 4096;  /* _stats._DRAIN_AT */
static double held_long_s = 1.0;    /* held_long_threshold in seconds (inf: none); set by _set_caps */
static int tracing;                 /* a timeline trace is recorded: every hold goes to past_cap */
static PyObject *validate_factory;  /* _thread.allocate_lock: a real lock's acquire() checks arguments */
static PyObject *held_key;          /* key of the held stack in the thread state's dict */
static PyObject *str_hist, *str_acquire, *str_name, *str_hold_max, *str_tally;
static PyObject *str_name_kw;  /* "name", the keyword */
static PyObject *zero;
static PyObject *str_lock, *str_rlock;
static unsigned long long next_key_value;

/* -- the clock ----------------------------------------------------------------------------------- */

static inline int64_t
now_ns(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    (void)PyTime_PerfCounterRaw(&t);
    return (int64_t)t;
#else
    return (int64_t)_PyTime_GetPerfCounter();
#endif
}

/* -- the object ---------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;    /* the real lock */
    char locked;                /* mirrors the real lock, as _thread.lock's own flag does (set under the GIL) */
    char rlock;
    unsigned long owner;        /* thread id of the thread that took it (0: nobody) */
    unsigned long count;        /* RLock: recursion level (0 when free) */
    PyObject *holder;           /* the taker's held stack, or NULL */
    PyObject *key;              /* an int, made by the first take */
    unsigned long long key_num; /* the same key as a C number (0: none yet) */
    PyObject *ctx;              /* the held-lock context last verified (a list), or NULL */
    Py_ssize_t ctxn;            /* takes counted against ctx since */
    int64_t t0;                 /* start of the current hold, ns */
    int64_t hold_total;         /* ns */
    int64_t n;                  /* completed holds */
    int64_t reentries;
    int64_t cap;                /* ns: a longer hold calls past_cap */
    PyObject *ns;               /* the name's NameStats (set by _lockcore.activate), or NULL */
    PyObject *hist;             /* ns.hist, the name's hold histogram (a list of ints) */
    PyObject *tally;            /* ns.tally, where the name's dead locks add up (a Tally), or NULL */
    PyObject *rare;             /* _stats.Counters of the rare events, or NULL */
    PyObject *tname;            /* explicit name (str), or NULL */
    PyObject *module;           /* creation site: module name (str), or NULL */
    int line;                   /* creation site: line */
    PyObject *weakreflist;
} TLock;

static PyTypeObject LockType;
static PyTypeObject RLockType;

static int
check_setup(void)
{
    if (hook_current == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tracedthreading._speedups is used before _setup()");
        return -1;
    }
    return 0;
}

/* The calling thread's held stack (borrowed: the thread state's dict keeps it). */
static PyObject *
current_held(void)
{
    PyObject *dict = PyThreadState_GetDict();
    PyObject *held;
    if (dict != NULL) {
        held = PyDict_GetItemWithError(dict, held_key);
        if (held != NULL) {
            return held;
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    if (check_setup() < 0) {
        return NULL;
    }
    held = PyObject_CallNoArgs(hook_current);
    if (held == NULL) {
        return NULL;
    }
    if (!PyList_CheckExact(held)) {
        Py_DECREF(held);
        PyErr_SetString(PyExc_TypeError, "tracedthreading: a held stack must be a list");
        return NULL;
    }
    if (dict == NULL || PyDict_SetItem(dict, held_key, held) < 0) {
        Py_DECREF(held);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "tracedthreading: no thread state dict");
        }
        return NULL;
    }
    Py_DECREF(held);  /* the dict (and the thread's local storage) keep it */
    return held;
}

/* Remove the key from a held stack: the top in the common case, else the last occurrence. No Python
   code runs: the stack holds the lock's own key object, so dropping it frees nothing. */
static void
unhold(PyObject *stack, PyObject *key)
{
    Py_ssize_t size = PyList_GET_SIZE(stack);
    if (size > 0 && PyList_GET_ITEM(stack, size - 1) == key) {
        Py_SET_SIZE(stack, size - 1);  /* keeps the storage: the next push does not reallocate */
        Py_DECREF(key);
        return;
    }
    for (Py_ssize_t i = size - 1; i >= 0; i--) {
        if (PyList_GET_ITEM(stack, i) == key) {
            (void)PyList_SetSlice(stack, i, i + 1, NULL);
            return;
        }
    }
}

/* Is the stack's content the cached context (same keys, same order)? */
static inline int
same_context(PyObject *held, PyObject *ctx)
{
    if (ctx == NULL || !PyList_CheckExact(ctx)) {
        return 0;
    }
    Py_ssize_t size = PyList_GET_SIZE(held);
    if (size != PyList_GET_SIZE(ctx)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        if (PyList_GET_ITEM(held, i) != PyList_GET_ITEM(ctx, i)) {
            return 0;  /* (an equal key in another int object: treated as new, which only costs a call) */
        }
    }
    return 1;
}

/* Give back a take that must not stand (a callback raised, or refused it): as if it never happened. */
static void
undo_take(TLock *self)
{
    PyObject *holder = self->holder;
    self->holder = NULL;
    if (holder != NULL && self->key != NULL) {
        unhold(holder, self->key);
    }
    self->owner = 0;
    self->count = 0;
    self->locked = 0;
    PyThread_release_lock(self->lock);
    Py_XDECREF(holder);
}

/* -- the registry of activated C locks: key -> lock, without weak references ---------------------
   A lock enters it on its first take and leaves it as it dies (under the GIL, before its memory goes),
   so a pointer found here is a live lock. Open addressing; key 0 marks an empty slot, ~0 a removed one. */

typedef struct {
    unsigned long long key;
    TLock *lock;
} Slot;

#define SLOT_FREE 0ULL
#define SLOT_GONE (~0ULL)

static Slot *slots;
static size_t slot_count;  /* a power of two, or 0 */
static size_t slot_used;   /* live entries */
static size_t slot_fill;   /* live and removed entries */

static inline size_t
slot_start(unsigned long long key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 17) & (slot_count - 1);
}

static int
registry_grow(void)
{
    size_t count = 64;
    while (count < (slot_used + 1) * 2) {  /* half full at most after growing: 16-48 bytes a lock */
        count *= 2;
    }
    Slot *fresh = PyMem_Calloc(count, sizeof(Slot));
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Slot *old = slots;
    size_t old_count = slot_count;
    slots = fresh;
    slot_count = count;
    slot_fill = slot_used;
    for (size_t i = 0; i < old_count; i++) {
        unsigned long long key = old[i].key;
        if (key != SLOT_FREE && key != SLOT_GONE) {
            size_t at = slot_start(key);
            while (slots[at].key != SLOT_FREE) {
                at = (at + 1) & (slot_count - 1);
            }
            slots[at] = old[i];
        }
    }
    PyMem_Free(old);
    return 0;
}

static int
registry_add(TLock *lock)
{
    if ((slot_fill + 1) * 3 > slot_count * 2 && registry_grow() < 0) {  /* two thirds full: grow */
        return -1;
    }
    size_t at = slot_start(lock->key_num);
    while (slots[at].key != SLOT_FREE && slots[at].key != SLOT_GONE) {
        if (slots[at].key == lock->key_num) {
            slots[at].lock = lock;
            return 0;
        }
        at = (at + 1) & (slot_count - 1);
    }
    if (slots[at].key == SLOT_FREE) {
        slot_fill++;
    }
    slots[at].key = lock->key_num;
    slots[at].lock = lock;
    slot_used++;
    return 0;
}

static Slot *
registry_find(unsigned long long key)
{
    if (slot_count == 0 || key == SLOT_FREE || key == SLOT_GONE) {
        return NULL;
    }
    size_t at = slot_start(key);
    while (slots[at].key != SLOT_FREE) {
        if (slots[at].key == key) {
            return &slots[at];
        }
        at = (at + 1) & (slot_count - 1);
    }
    return NULL;
}

static void
registry_remove(unsigned long long key)
{
    Slot *slot = registry_find(key);
    if (slot != NULL) {
        slot->key = SLOT_GONE;
        slot->lock = NULL;
        slot_used--;
    }
}

/* -- a name's tally of its dead locks -----------------------------------------------------------
   A used lock that dies adds its counters here, in C, instead of queueing a record of its own for
   _stats to fold in Python: a program making a lock per object (every Future's Condition) pays a few
   additions per death. The first death since the tally was last taken queues one record carrying the
   tally, so the fold keeps the order names first died in; _stats takes the sums (and zeroes them) as
   it folds. Only the rare deaths (held, or with rare counters) still queue records of their own. */

typedef struct {
    PyObject_HEAD
    int64_t deaths;
    int64_t acquisitions;
    int64_t hold_total;
    int64_t reentries;
    char queued;   /* a record carrying this tally waits in _stats._dead_locks */
} Tally;

static PyTypeObject TallyType;

static PyObject *
tally_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Tally() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);  /* zeroed */
}

/* take() -> (deaths, acquisitions, hold_total_ns, reentries): the sums since the last take, zeroed at
   once (no Python code runs in between, so a lock dying meanwhile is in this take or the next). */
static PyObject *
tally_take(Tally *self, PyObject *unused)
{
    PyObject *sums = Py_BuildValue("(LLLL)", (long long)self->deaths, (long long)self->acquisitions,
                                   (long long)self->hold_total, (long long)self->reentries);
    if (sums == NULL) {
        return NULL;
    }
    self->deaths = self->acquisitions = self->hold_total = self->reentries = 0;
    self->queued = 0;
    return sums;
}

static PyObject *
tally_repr(Tally *self)
{
    return PyUnicode_FromFormat("<Tally deaths=%lld acquisitions=%lld hold_total=%lld reentries=%lld>",
                                (long long)self->deaths, (long long)self->acquisitions,
                                (long long)self->hold_total, (long long)self->reentries);
}

static PyMethodDef tally_methods[] = {
    {"take", (PyCFunction)tally_take, METH_NOARGS,
     "take() -> (deaths, acquisitions, hold_total_ns, reentries) since the last take; zeroes them."},
    {NULL},
};

static PyTypeObject TallyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tracedthreading._speedups.Tally",
    .tp_basicsize = sizeof(Tally),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Where the dead C locks of one name add up their counters until _stats folds them.",
    .tp_methods = tally_methods,
    .tp_repr = (reprfunc)tally_repr,
    .tp_new = tally_new,
};

static void
set_name_stats(TLock *self, PyObject *shared, PyObject *hist, PyObject *tally)
{
    if (tally != NULL && !Py_IS_TYPE(tally, &TallyType)) {
        tally = NULL;  /* None (a NameStats made without the extension): deaths queue records */
    }
    Py_INCREF(hist);
    Py_XSETREF(self->hist, hist);
    Py_XINCREF(tally);
    Py_XSETREF(self->tally, tally);
    Py_INCREF(shared);
    Py_XSETREF(self->ns, shared);
}

static void
clear_name_stats(TLock *self)
{
    Py_CLEAR(self->hist);
    Py_CLEAR(self->tally);
    Py_CLEAR(self->ns);
}

/* ns.tally into *tally (a new reference), or NULL when it has none (then deaths queue records). */
static int
get_tally(PyObject *shared, PyObject **tally)
{
    *tally = PyObject_GetAttr(shared, str_tally);
    if (*tally == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
    }
    return 0;
}

/* The name last activated, with what activate() read from its NameStats: a program making many locks
   of one name (a Future's Condition, under the patch, is always named after its creation site) finds
   them without building and hashing the tuple key. Strong references, compared by identity. _stats
   drops it (names_changed()) whenever a name's statistics are replaced, removed or reset, a name's
   maximum grows, or before it counts references to tell whether a name is alive. */
static struct {
    PyObject *tname;   /* the explicit name, or NULL */
    PyObject *module;  /* else the creation site's module... */
    int line;          /* ...and line */
    char rlock;
    PyObject *ns, *hist, *tally;  /* ns == NULL: empty */
    double high;
} last_name;

static void
forget_last_name(void)
{
    PyObject *tname = last_name.tname, *module = last_name.module, *ns = last_name.ns;
    PyObject *hist = last_name.hist, *tally = last_name.tally;
    memset(&last_name, 0, sizeof(last_name));
    Py_XDECREF(tname);
    Py_XDECREF(module);
    Py_XDECREF(ns);
    Py_XDECREF(hist);
    Py_XDECREF(tally);
}

static inline int
is_last_name(TLock *self)
{
    if (last_name.ns == NULL || last_name.rlock != self->rlock) {
        return 0;
    }
    if (self->tname != NULL) {
        return last_name.tname == self->tname;
    }
    return last_name.tname == NULL && self->module != NULL && last_name.module == self->module
           && last_name.line == self->line;
}

static void
remember_last_name(TLock *self, double high)
{
    forget_last_name();
    last_name.tname = Py_XNewRef(self->tname);
    last_name.module = self->tname == NULL ? Py_XNewRef(self->module) : NULL;
    last_name.line = self->line;
    last_name.rlock = self->rlock;
    last_name.hist = Py_NewRef(self->hist);
    last_name.tally = Py_XNewRef(self->tally);
    last_name.high = high;
    last_name.ns = Py_NewRef(self->ns);
}

/* The cap of a lock whose name's maximum is ``high`` seconds: see _lockcore.cap_for. */
static int64_t
cap_for(double high)
{
    if (tracing) {
        return -1;
    }
    double cap = high < held_long_s ? high : held_long_s;
    return cap >= 9e9 ? INT64_MAX : (int64_t)(cap * 1e9);
}

/* A lock's first take, in C (as _lockcore.activate does for the pure path): its name's shared
   statistics, its cap, its registry entry. Python code runs only for a name's very first lock. */
static int
activate(TLock *self)
{
    if (is_last_name(self)) {
        set_name_stats(self, last_name.ns, last_name.hist, last_name.tally);
        if (registry_add(self) < 0) {
            clear_name_stats(self);
            return -1;
        }
        self->cap = cap_for(last_name.high);
        return 0;
    }
    PyObject *ident = self->tname != NULL
        ? PyTuple_Pack(4, self->tname, Py_None, zero, self->rlock ? str_rlock : str_lock)
        : NULL;
    if (self->tname == NULL) {
        PyObject *line = PyLong_FromLong(self->line);
        if (line == NULL) {
            return -1;
        }
        ident = PyTuple_Pack(4, Py_None, self->module ? self->module : Py_None, line, self->rlock ? str_rlock : str_lock);
        Py_DECREF(line);
    }
    if (ident == NULL) {
        return -1;
    }
    PyObject *shared = PyDict_GetItemWithError(name_stats_dict, ident);  /* borrowed */
    Py_XINCREF(shared);
    if (shared == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(ident);
            return -1;
        }
        shared = PyObject_Call(name_stats_make, ident, NULL);
        if (shared == NULL) {
            Py_DECREF(ident);
            return -1;
        }
    }
    Py_DECREF(ident);
    /* Everything read before anything is set: a failure (a signal's exception) leaves no half activation. */
    PyObject *high_obj = PyObject_GetAttr(shared, str_hold_max);
    double high = high_obj != NULL ? PyFloat_AsDouble(high_obj) : -1.0;
    Py_XDECREF(high_obj);
    PyObject *hist = NULL, *tally = NULL;
    if ((high == -1.0 && PyErr_Occurred())
        || (hist = PyObject_GetAttr(shared, str_hist)) == NULL
        || get_tally(shared, &tally) < 0) {
        Py_XDECREF(hist);
        Py_DECREF(shared);
        return -1;
    }
    set_name_stats(self, shared, hist, tally);
    Py_DECREF(hist);
    Py_XDECREF(tally);
    Py_DECREF(shared);
    if (registry_add(self) < 0) {
        clear_name_stats(self);
        return -1;
    }
    self->cap = cap_for(high);
    if (self->tname != NULL || self->module != NULL) {
        remember_last_name(self, high);
    }
    return 0;
}

/* Record a take of the real lock (this thread has it). No Python code runs until the state is whole;
   then, for a context not seen before or a first take, the lock core is told (and may refuse: raise
   mode). Returns -1 with the take undone on error. */
static int
record_take(TLock *self, PyObject *held, unsigned long me, unsigned long count, int timed, int edges, int refuse)
{
    /* A take holding nothing else has no edge: it neither needs nor changes the cached context. */
    Py_ssize_t depth = PyList_GET_SIZE(held);
    int known = depth == 0 || (edges && !timed && same_context(held, self->ctx));
    if (self->key == NULL) {
        self->key = PyLong_FromUnsignedLongLong(next_key_value + 1);
        if (self->key == NULL) {
            self->locked = 1;
            undo_take(self);
            return -1;
        }
        self->key_num = ++next_key_value;
    }
    self->locked = 1;
    self->owner = me;
    self->count = count;
    Py_INCREF(held);
    Py_XSETREF(self->holder, held);
    if (PyList_Append(held, self->key) < 0) {
        undo_take(self);
        return -1;
    }
    self->t0 = now_ns();
    if (self->ns == NULL) {
        /* The state is whole: the first take registers the lock (Python runs only for a new name). */
        if (activate(self) < 0) {
            undo_take(self);
            return -1;
        }
    }
    if (depth == 0) {
        return 0;
    }
    if (known) {
        self->ctxn++;
        return 0;
    }
    if (!edges && self->ns != NULL) {
        return 0;  /* a try, or a take after a wait (its edges were recorded before it blocked) */
    }
    /* The state is whole: the slow path may run Python code (and so a finalizer or a signal handler
       taking this very lock: an RLock re-enters, as with the stdlib). */
    PyObject *verdict = PyObject_CallFunctionObjArgs(hook_new_context, (PyObject *)self, held,
                                                     timed ? Py_True : Py_False, edges ? Py_True : Py_False, NULL);
    if (verdict == NULL) {
        undo_take(self);
        return -1;
    }
    if (verdict != Py_None && refuse) {
        undo_take(self);
        PyObject *error = PyObject_CallOneArg(lock_order_error, verdict);
        Py_DECREF(verdict);
        if (error != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(error), error);
            Py_DECREF(error);
        }
        return -1;
    }
    Py_DECREF(verdict);
    return 0;
}

/* Wait for the real lock, the way _thread does: a try with the GIL held, then a timed wait without it,
   interrupted by signals whose handlers run here (an exception they raise ends the wait). The new owner
   is published as soon as the wait succeeds, before the GIL is back, so a thread that starts waiting
   meanwhile names it. Returns 1 (acquired), 0 (timed out) or -1 (a handler raised). */
static int
wait_real(TLock *self, double seconds, unsigned long me)
{
    PyLockStatus status;
    int64_t timeout = seconds < 0 ? -1 : (int64_t)(seconds * 1e9);
    int64_t deadline = timeout > 0 ? now_ns() + timeout : 0;
    do {
        PY_TIMEOUT_T microseconds = timeout < 0 ? -1 : (PY_TIMEOUT_T)((timeout + 999) / 1000);
        status = PyThread_acquire_lock_timed(self->lock, 0, 0);
        if (status == PY_LOCK_FAILURE && microseconds != 0) {
            Py_BEGIN_ALLOW_THREADS
            status = PyThread_acquire_lock_timed(self->lock, microseconds, 1);
#if defined(__GNUC__) || defined(__clang__)
            if (status == PY_LOCK_ACQUIRED) {
                __atomic_store_n(&self->owner, me, __ATOMIC_RELAXED);
            }
#endif
            Py_END_ALLOW_THREADS
        }
        if (status == PY_LOCK_INTR) {
            if (Py_MakePendingCalls() < 0) {
                return -1;
            }
            if (timeout > 0) {
                timeout = deadline - now_ns();
                if (timeout < 0) {
                    status = PY_LOCK_FAILURE;
                }
            }
        }
    } while (status == PY_LOCK_INTR);
    return status == PY_LOCK_ACQUIRED;
}

/* Call a hook that must not lose the exception being raised (it runs while one is set). */
static void
call_keeping_error(PyObject *hook, PyObject *arg)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyObject *result = PyObject_CallOneArg(hook, arg);
    Py_XDECREF(result);
    PyErr_Clear();
    PyErr_Restore(type, value, traceback);
}

/* The real lock is taken by another thread (or, for a Lock, by this one): wait for it, measured. Up to
   SHORT_WAIT the wait is C's alone, with one call for its accounting; a longer one goes through the lock
   core's wait protocol (order check, wait-for graph, long-wait slices). Returns 1, 0 (timed out) or -1
   (error; nothing taken). */
static int
contended(TLock *self, PyObject *held, double timeout, unsigned long me, unsigned long count, int refuse)
{
    unsigned long holder_ident = self->owner;
    int mine = self->holder == held && held != NULL;
    int64_t start = now_ns();
    int short_only = timeout >= 0 && timeout <= short_wait_s;
    int got = 0;
    if (!mine) {  /* (a self-wait goes to the lock core at once: it is reported) */
        got = wait_real(self, short_only ? timeout : short_wait_s, me);
        if (got < 0) {
            return -1;  /* a signal handler raised: nothing taken, nothing counted */
        }
    }
    if (got || short_only) {
        if (got && record_take(self, held, me, count, timeout >= 0, 1, refuse) < 0) {
            return -1;
        }
        PyObject *args[5];
        args[0] = (PyObject *)self;
        args[1] = PyLong_FromLongLong(start);
        args[2] = PyLong_FromLongLong(got ? self->t0 : now_ns());
        args[3] = got ? Py_True : Py_False;
        args[4] = holder_ident ? PyLong_FromUnsignedLong(holder_ident) : Py_NewRef(Py_None);
        PyObject *done = NULL;
        if (args[1] != NULL && args[2] != NULL && args[4] != NULL) {
            done = PyObject_Vectorcall(hook_short_wait, args, 5, NULL);
        }
        Py_XDECREF(args[1]);
        Py_XDECREF(args[2]);
        Py_XDECREF(args[4]);
        if (done == NULL) {
            if (got) {
                undo_take(self);
            }
            return -1;
        }
        Py_DECREF(done);
        return got;
    }

    double rest = -1.0;
    if (timeout >= 0) {
        rest = timeout - (now_ns() - start) / 1e9;
        if (rest < 0) {
            rest = 0.0;
        }
    }
    PyObject *args[7];
    args[0] = (PyObject *)self;
    args[1] = held;
    args[2] = PyFloat_FromDouble(rest);
    args[3] = holder_ident ? PyLong_FromUnsignedLong(holder_ident) : Py_NewRef(Py_None);
    args[4] = mine ? Py_True : Py_False;
    args[5] = refuse ? Py_True : Py_False;
    args[6] = PyLong_FromLongLong(start);
    PyObject *begun = NULL;
    if (args[2] != NULL && args[3] != NULL && args[6] != NULL) {
        begun = PyObject_Vectorcall(hook_begin_wait, args, 7, NULL);
    }
    Py_XDECREF(args[2]);
    Py_XDECREF(args[3]);
    Py_XDECREF(args[6]);
    if (begun == NULL) {
        return -1;
    }
    PyObject *wait;
    double first;
    if (!PyArg_ParseTuple(begun, "Od", &wait, &first)) {
        Py_DECREF(begun);
        return -1;
    }
    Py_INCREF(wait);
    Py_DECREF(begun);

    got = wait_real(self, first, me);
    if (got == 0 && first != rest) {
        PyObject *remaining = PyObject_CallFunctionObjArgs(hook_wait_long, (PyObject *)self, wait, NULL);
        if (remaining == NULL) {
            call_keeping_error(hook_abort_wait, wait);
            Py_DECREF(wait);
            return -1;
        }
        double more = PyFloat_AsDouble(remaining);
        Py_DECREF(remaining);
        if (more == -1.0 && PyErr_Occurred()) {
            call_keeping_error(hook_abort_wait, wait);
            Py_DECREF(wait);
            return -1;
        }
        got = wait_real(self, more, me);
    }
    if (got < 0) {
        /* a signal handler raised while we waited: nothing is taken, and the wait is not counted */
        call_keeping_error(hook_abort_wait, wait);
        Py_DECREF(wait);
        return -1;
    }
    if (got) {
        /* its order edges were recorded before it blocked (begin_wait) */
        if (record_take(self, held, me, count, 0, 0, 0) < 0) {
            call_keeping_error(hook_abort_wait, wait);
            Py_DECREF(wait);
            return -1;
        }
    }
    PyObject *taken_at = got ? PyLong_FromLongLong(self->t0) : Py_NewRef(Py_None);
    PyObject *ended = taken_at == NULL ? NULL : PyObject_CallFunctionObjArgs(
        hook_end_wait, (PyObject *)self, wait, got ? Py_True : Py_False, taken_at, NULL);
    Py_XDECREF(taken_at);
    Py_DECREF(wait);
    if (ended == NULL) {
        if (got) {
            undo_take(self);
        }
        return -1;
    }
    Py_DECREF(ended);
    return got;
}

/* -- argument checks, exactly the stdlib's ------------------------------------------------------ */

/* Parse acquire(blocking=True, timeout=-1) as _thread does. Out: *blocking, *timeout (seconds; -1: for
   ever). Unusual values are checked by a real _thread lock, which raises the stdlib's own errors. */
static int
parse_acquire(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int *blocking, double *timeout)
{
    PyObject *blocking_obj = NULL, *timeout_obj = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        goto delegate;
    }
    if (nargs >= 1) {
        blocking_obj = args[0];
    }
    if (nargs == 2) {
        timeout_obj = args[1];
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(name, "blocking") == 0 && blocking_obj == NULL) {
            blocking_obj = args[nargs + i];
        }
        else if (PyUnicode_CompareWithASCIIString(name, "timeout") == 0 && timeout_obj == NULL) {
            timeout_obj = args[nargs + i];
        }
        else {
            goto delegate;
        }
    }
    /* The fast way takes only plainly valid values; anything else (errors included, whose wording
       differs between Python versions) is checked by a real lock below. */
    *blocking = 1;
    if (blocking_obj != NULL) {
        if (blocking_obj == Py_True) {
            *blocking = 1;
        }
        else if (blocking_obj == Py_False) {
            *blocking = 0;
        }
        else {
            goto delegate;
        }
    }
    *timeout = -1.0;
    if (timeout_obj == NULL) {
        if (!*blocking) {
            *timeout = 0.0;  /* a try */
        }
        return 0;
    }
    double seconds;
    if (PyFloat_CheckExact(timeout_obj)) {
        seconds = PyFloat_AS_DOUBLE(timeout_obj);
    }
    else if (PyLong_CheckExact(timeout_obj)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(timeout_obj, &overflow);
        if (overflow || value > 1000000000LL || value < -1) {
            goto delegate;
        }
        seconds = (double)value;
    }
    else {
        goto delegate;
    }
    if (seconds == -1.0) {
        if (!*blocking) {
            *timeout = 0.0;  /* blocking=False with the default timeout: a try */
        }
        return 0;
    }
    if (!*blocking || !(seconds >= 0.0 && seconds <= 1e9)) {
        goto delegate;  /* an error (or NaN, or near the maximum): the stdlib's own words */
    }
    *timeout = seconds;
    return 0;

delegate: {
        /* A fresh real lock checks the arguments: it raises exactly the stdlib's error, or takes itself
           (a private lock, dropped at once) and the values are read the way it read them. */
        PyObject *checker = PyObject_CallNoArgs(validate_factory);
        if (checker == NULL) {
            return -1;
        }
        PyObject *acquire = PyObject_GetAttr(checker, str_acquire);
        Py_DECREF(checker);
        if (acquire == NULL) {
            return -1;
        }
        PyObject *result = PyObject_Vectorcall(acquire, args, nargs, kwnames);
        Py_DECREF(acquire);
        if (result == NULL) {
            return -1;
        }
        Py_DECREF(result);
        *blocking = 1;
        if (blocking_obj != NULL) {
            int truth = PyObject_IsTrue(blocking_obj);
            if (truth < 0) {
                return -1;
            }
            *blocking = truth;
        }
        *timeout = -1.0;
        if (timeout_obj != NULL) {
            double value = PyFloat_AsDouble(timeout_obj);
            if (value == -1.0 && PyErr_Occurred()) {
                return -1;
            }
            if (value < 0) {
                value = -1.0;  /* the stdlib accepted it: it rounds to "no timeout" */
            }
            *timeout = value > 9e9 ? 9e9 : value;
        }
        if (!*blocking) {
            *timeout = 0.0;
        }
        return 0;
    }
}

/* -- acquire ------------------------------------------------------------------------------------ */

/* The whole acquire, once the arguments are known. Returns a new reference to True/False, or NULL. */
static PyObject *
do_acquire(TLock *self, int blocking, double timeout, unsigned long count, int refuse)
{
    unsigned long me = PyThread_get_thread_ident();
    if (self->rlock && self->count && self->owner == me) {
        if (self->count == ULONG_MAX) {
            PyErr_SetString(PyExc_OverflowError, "Internal lock count overflowed");
            return NULL;
        }
        self->count++;
        self->reentries++;
        Py_RETURN_TRUE;
    }
    PyObject *held = current_held();
    if (held == NULL) {
        return NULL;
    }
    if (PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        int trylock = !blocking || timeout == 0.0;
        if (record_take(self, held, me, count, !trylock && timeout >= 0, !trylock, refuse) < 0) {
            return NULL;
        }
        Py_RETURN_TRUE;
    }
    if (!blocking || timeout == 0.0) {
        PyObject *done = PyObject_CallOneArg(hook_note_failure, (PyObject *)self);
        if (done == NULL) {
            return NULL;
        }
        Py_DECREF(done);
        Py_RETURN_FALSE;
    }
    int got = contended(self, held, timeout, me, count, refuse);
    if (got < 0) {
        return NULL;
    }
    return PyBool_FromLong(got);
}

static PyObject *
tlock_acquire(TLock *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int blocking = 1;
    double timeout = -1.0;
    if ((nargs || kwnames) && parse_acquire(args, nargs, kwnames, &blocking, &timeout) < 0) {
        return NULL;
    }
    return do_acquire(self, blocking, timeout, 1, 1);
}

static PyObject *
tlock_enter(TLock *self, PyObject *unused)
{
    return do_acquire(self, 1, -1.0, 1, 1);
}

/* -- release ------------------------------------------------------------------------------------ */

/* Count one hold into the name's histogram: bucket = bit length of the hold in ns. Returns 1 when the
   histogram is too short (the caller grows it through Python once the lock is released). */
/* int.bit_length() of a duration: its histogram bucket. */
static inline Py_ssize_t
bit_length(uint64_t value)
{
#if defined(__GNUC__) || defined(__clang__)
    return value ? 64 - __builtin_clzll(value) : 0;
#else
    Py_ssize_t bits = 0;
    while (value) {
        bits++;
        value >>= 1;
    }
    return bits;
#endif
}

static int
count_hold(TLock *self, int64_t hold)
{
    PyObject *hist = self->hist;
    if (hist == NULL) {
        return 0;
    }
    Py_ssize_t bucket = bit_length(hold > 0 ? (uint64_t)hold : 0);
    if (bucket >= 64) {
        bucket = 63;
    }
    if (!PyList_CheckExact(hist) || bucket >= PyList_GET_SIZE(hist)) {
        return 1;
    }
    PyObject *old = PyList_GET_ITEM(hist, bucket);
    long long count = PyLong_AsLongLong(old);
    if (count == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    PyObject *updated = PyLong_FromLongLong(count + 1);
    if (updated == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyList_SET_ITEM(hist, bucket, updated);
    Py_DECREF(old);  /* an int: frees nothing that runs Python code */
    return 0;
}

/* The outermost release: un-record, count, release the real lock (the last step), then the rare
   follow-ups (a hold past the cap, a histogram to grow) with the lock already free. */
static PyObject *
release_outermost(TLock *self)
{
    int64_t end = now_ns();
    int64_t start = self->t0;
    int64_t hold = end - start;
    PyObject *holder = self->holder;
    unsigned long owner = self->owner;
    self->holder = NULL;
    if (holder != NULL && self->key != NULL) {
        unhold(holder, self->key);
    }
    self->n++;
    self->hold_total += hold;
    int grow = count_hold(self, hold);
    PyObject *hist = grow ? Py_NewRef(self->hist) : NULL;
    self->owner = 0;
    self->count = 0;
    self->locked = 0;
    PyThread_release_lock(self->lock);
    Py_XDECREF(holder);
    if (grow) {
        PyObject *done = PyObject_CallFunction(hook_grow, "OLi", hist, (long long)hold, 1);
        Py_DECREF(hist);
        if (done == NULL) {
            return NULL;
        }
        Py_DECREF(done);
    }
    if (hold > self->cap) {
        PyObject *owner_id = PyLong_FromUnsignedLong(owner);
        if (owner_id == NULL) {
            return NULL;
        }
        PyObject *done = PyObject_CallFunction(hook_past_cap, "OddO", (PyObject *)self, hold / 1e9, start / 1e9,
                                               owner_id);
        Py_DECREF(owner_id);
        if (done == NULL) {
            return NULL;
        }
        Py_DECREF(done);
    }
    Py_RETURN_NONE;
}

static PyObject *
tlock_release(TLock *self, PyObject *unused)
{
    if (self->rlock) {
        if (self->count == 0 || self->owner != PyThread_get_thread_ident()) {
            PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
            return NULL;
        }
        if (--self->count > 0) {
            Py_RETURN_NONE;
        }
        self->count = 1;
    }
    else if (!self->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    return release_outermost(self);
}

static PyObject *
tlock_exit(TLock *self, PyObject *const *args, Py_ssize_t nargs)
{
    return tlock_release(self, NULL);
}

/* -- the protocol threading.Condition uses, fork support ---------------------------------------- */

static PyObject *
tlock_locked(TLock *self, PyObject *unused)
{
    return PyBool_FromLong(self->locked);
}

static PyObject *
tlock_is_owned(TLock *self, PyObject *unused)
{
    if (self->rlock) {
        return PyBool_FromLong(self->count > 0 && self->owner == PyThread_get_thread_ident());
    }
    return PyBool_FromLong(self->locked);  /* a Lock has no owner: "locked", as Condition's fallback */
}

static PyObject *
tlock_recursion_count(TLock *self, PyObject *unused)
{
    return PyLong_FromUnsignedLong(self->owner == PyThread_get_thread_ident() ? self->count : 0);
}

static PyObject *
tlock_release_save(TLock *self, PyObject *unused)
{
    if (!self->rlock) {
        PyObject *done = tlock_release(self, NULL);
        if (done == NULL) {
            return NULL;
        }
        Py_DECREF(done);
        Py_RETURN_NONE;
    }
    if (self->count == 0 || self->owner != PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return NULL;
    }
    PyObject *state = Py_BuildValue("(kk)", self->count, self->owner);
    if (state == NULL) {
        return NULL;
    }
    self->count = 1;
    PyObject *done = release_outermost(self);
    if (done == NULL) {
        Py_DECREF(state);
        return NULL;
    }
    Py_DECREF(done);
    return state;
}

static PyObject *
tlock_acquire_restore(TLock *self, PyObject *state)
{
    /* Condition.wait must return holding its lock: an inversion is reported here, never refused. */
    unsigned long count = 1;
    if (self->rlock) {
        unsigned long owner;
        if (!PyArg_ParseTuple(state, "kk:_acquire_restore", &count, &owner)) {
            return NULL;
        }
    }
    PyObject *got = do_acquire(self, 1, -1.0, count, 0);
    if (got == NULL) {
        return NULL;
    }
    Py_DECREF(got);
    if (self->rlock) {
        self->count = count;
    }
    Py_RETURN_NONE;
}

static PyObject *
tlock_at_fork_reinit(TLock *self, PyObject *unused)
{
    /* The child of a fork: the lock is free again. The old real lock may be held by a thread that does
       not exist here; it is left alone (as _thread does), a new one takes its place. */
    PyThread_type_lock fresh = PyThread_allocate_lock();
    if (fresh == NULL) {
        PyErr_SetString(PyExc_MemoryError, "cannot allocate lock");
        return NULL;
    }
    PyObject *holder = self->holder;
    self->holder = NULL;
    if (holder != NULL && self->key != NULL) {
        unhold(holder, self->key);
    }
    Py_XDECREF(holder);
    self->lock = fresh;
    self->locked = 0;
    self->owner = 0;
    self->count = 0;
    Py_RETURN_NONE;
}

/* -- the tracer protocol ------------------------------------------------------------------------ */

static PyObject *
tlock_tt_owner(TLock *self, PyObject *unused)
{
    unsigned long owner = self->owner;
    if (owner == 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong(owner);
}

static PyObject *
tlock_tt_totals(TLock *self, PyObject *unused)
{
    return Py_BuildValue("(LOLL)", (long long)self->n, self->locked ? Py_True : Py_False,
                         (long long)self->hold_total, (long long)self->reentries);
}

static PyObject *
tlock_tt_reset(TLock *self, PyObject *unused)
{
    self->n = 0;
    self->hold_total = 0;
    self->reentries = 0;
    self->ctxn = 0;
    Py_CLEAR(self->rare);
    Py_RETURN_NONE;
}

/* -- life ---------------------------------------------------------------------------------------- */

static PyObject *
tlock_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    TLock *self = (TLock *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate lock");
        return NULL;
    }
    self->rlock = PyType_IsSubtype(type, &RLockType);
    self->cap = INT64_MAX;
    return (PyObject *)self;
}

/* The name (NULL or None: the creation site, the caller's module and line). */
static int
set_identity(TLock *self, PyObject *name)
{
    if (name != NULL && name != Py_None) {
        if (!PyUnicode_Check(name)) {
            PyErr_Format(PyExc_TypeError, "name must be a str, got %s", Py_TYPE(name)->tp_name);
            return -1;
        }
        Py_INCREF(name);
        Py_XSETREF(self->tname, name);
        Py_CLEAR(self->module);
        self->line = 0;
        return 0;
    }
    /* No name: the creation site, from the calling frame (the line that called Lock()). */
    PyFrameObject *frame = PyEval_GetFrame();
    PyObject *module = NULL;
    int line = 0;
    if (frame != NULL) {
#if PY_VERSION_HEX >= 0x030B0000
        PyObject *globals = PyFrame_GetGlobals(frame);
#else
        PyObject *globals = frame->f_globals;
        Py_XINCREF(globals);
#endif
        if (globals != NULL && PyDict_Check(globals)) {
            module = PyDict_GetItemWithError(globals, str_name);
            Py_XINCREF(module);
        }
        Py_XDECREF(globals);
        if (PyErr_Occurred()) {
            Py_XDECREF(module);
            return -1;
        }
        line = PyFrame_GetLineNumber(frame);
    }
    if (module == NULL || !PyUnicode_Check(module)) {
        Py_XDECREF(module);
        module = PyUnicode_FromString("?");
        if (module == NULL) {
            return -1;
        }
    }
    Py_CLEAR(self->tname);
    Py_XSETREF(self->module, module);
    self->line = line;
    return 0;
}

/* __init__(*, name=None) */
static int
tlock_init(TLock *self, PyObject *args, PyObject *kwargs)
{
    PyObject *name = NULL;
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no positional arguments", Py_TYPE(self)->tp_name);
        return -1;
    }
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        if (PyDict_GET_SIZE(kwargs) != 1 || (name = PyDict_GetItemWithError(kwargs, str_name_kw)) == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument", Py_TYPE(self)->tp_name);
            }
            return -1;
        }
    }
    return set_identity(self, name);
}

/* Lock(*, name=None) for the public classes themselves (set as their tp_vectorcall by _fast_classes):
   what tlock_new and tlock_init do, without building a dict of keywords or looking __init__ up. A
   subclass is built the usual way (tp_vectorcall is not inherited). */
static PyObject *
tlock_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyTypeObject *cls = (PyTypeObject *)type;
    PyObject *name = NULL;
    if (PyVectorcall_NARGS(nargsf) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no positional arguments", cls->tp_name);
        return NULL;
    }
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyObject *keyword = PyTuple_GET_ITEM(kwnames, 0);
        if (PyTuple_GET_SIZE(kwnames) != 1
            || (keyword != str_name_kw && PyUnicode_CompareWithASCIIString(keyword, "name") != 0)) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument", cls->tp_name);
            return NULL;
        }
        name = args[0];
    }
    PyObject *self = tlock_new(cls, NULL, NULL);
    if (self != NULL && set_identity((TLock *)self, name) < 0) {
        Py_CLEAR(self);
    }
    return self;
}

/* (key, name, module, line, kind, held, completed holds, hold total ns, rare, reentries): the record
   _stats.retire_lock takes, built item by item (a Py_BuildValue format is parsed on every call). */
static PyObject *
retire_record(TLock *self, int held)
{
    PyObject *record = PyTuple_New(10);
    if (record == NULL) {
        return NULL;
    }
    PyObject *line = PyLong_FromLong(self->line);
    PyObject *n = PyLong_FromLongLong((long long)self->n);
    PyObject *total = PyLong_FromLongLong((long long)self->hold_total);
    PyObject *reentries = PyLong_FromLongLong((long long)self->reentries);
    if (line == NULL || n == NULL || total == NULL || reentries == NULL) {
        Py_XDECREF(line);
        Py_XDECREF(n);
        Py_XDECREF(total);
        Py_XDECREF(reentries);
        Py_DECREF(record);
        return NULL;
    }
    PyTuple_SET_ITEM(record, 0, Py_NewRef(self->key));
    PyTuple_SET_ITEM(record, 1, Py_NewRef(self->tname ? self->tname : Py_None));
    PyTuple_SET_ITEM(record, 2, Py_NewRef(self->module ? self->module : Py_None));
    PyTuple_SET_ITEM(record, 3, line);
    PyTuple_SET_ITEM(record, 4, Py_NewRef(self->rlock ? str_rlock : str_lock));
    PyTuple_SET_ITEM(record, 5, Py_NewRef(held ? Py_True : Py_False));
    PyTuple_SET_ITEM(record, 6, n);
    PyTuple_SET_ITEM(record, 7, total);
    PyTuple_SET_ITEM(record, 8, Py_NewRef(self->rare ? self->rare : Py_None));
    PyTuple_SET_ITEM(record, 9, reentries);
    return record;
}

/* The record queued for a name's tally: (tally, name, module, line, kind, False, 0, 0, None, 0); the
   fold takes the tally's sums in place of the zeros. */
static PyObject *
tally_record(TLock *self)
{
    PyObject *line = PyLong_FromLong(self->line);
    if (line == NULL) {
        return NULL;
    }
    PyObject *record = PyTuple_Pack(10, self->tally, self->tname ? self->tname : Py_None,
                                    self->module ? self->module : Py_None, line,
                                    self->rlock ? str_rlock : str_lock, Py_False, zero, zero, Py_None, zero);
    Py_DECREF(line);
    return record;
}

static void
tlock_dealloc(TLock *self)
{
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    PyObject *holder = self->holder;
    self->holder = NULL;
    if (holder != NULL && self->key != NULL) {
        unhold(holder, self->key);  /* dropped while held (legal): nobody holds it any more */
    }
    if (self->key_num != 0) {
        registry_remove(self->key_num);
    }
    if (self->ns != NULL && self->key != NULL && dead_locks != NULL) {
        /* A used lock: its counters queue for folding into its name's record (as _stats.retire_lock
           does), and its order-graph node, if it has one, is dropped. Never raises, never blocks. */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        Tally *tally = (Tally *)self->tally;
        if (tally != NULL && holder == NULL && self->rare == NULL) {
            /* The common death: its counters add up in its name's tally (queued once per fold). */
            tally->deaths++;
            tally->acquisitions += self->n;
            tally->hold_total += self->hold_total;
            tally->reentries += self->reentries;
            if (!tally->queued) {
                PyObject *record = tally_record(self);
                if (record != NULL) {
                    tally->queued = PyList_Append(dead_locks, record) == 0;
                    Py_DECREF(record);
                }
            }
        }
        else {
            PyObject *record = retire_record(self, holder != NULL);
            if (record != NULL) {
                (void)PyList_Append(dead_locks, record);
                Py_DECREF(record);
            }
        }
        if (PyDict_Contains(order_names, self->key) == 1) {
            /* With its cached context: the takes counted against it belong to edges into this lock. */
            PyObject *done = PyObject_CallFunction(order_retire, "OOn", self->key,
                                                   self->ctx ? self->ctx : Py_None, self->ctxn);
            Py_XDECREF(done);
        }
        if (PyList_GET_SIZE(dead_locks) >= drain_at) {
            PyObject *done = PyObject_CallNoArgs(try_drain);
            Py_XDECREF(done);
        }
        PyErr_Clear();
        PyErr_Restore(type, value, traceback);
    }
    Py_XDECREF(holder);
    if (self->lock != NULL) {
        if (self->locked) {
            PyThread_release_lock(self->lock);
        }
        PyThread_free_lock(self->lock);
    }
    Py_CLEAR(self->key);
    Py_CLEAR(self->ctx);
    Py_CLEAR(self->ns);
    Py_CLEAR(self->hist);
    Py_CLEAR(self->tally);
    Py_CLEAR(self->rare);
    Py_CLEAR(self->tname);
    Py_CLEAR(self->module);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* -- attributes the Python side reads and writes --------------------------------------------------- */

static PyObject *
get_object(PyObject *value)
{
    return Py_NewRef(value != NULL ? value : Py_None);
}

static PyObject *get_key(TLock *self, void *c) { return get_object(self->key); }
static PyObject *get_holder(TLock *self, void *c) { return get_object(self->holder); }
static PyObject *get_ns(TLock *self, void *c) { return get_object(self->ns); }
static PyObject *get_rare(TLock *self, void *c) { return get_object(self->rare); }
static PyObject *get_ctx(TLock *self, void *c) { return get_object(self->ctx); }
static PyObject *get_tname(TLock *self, void *c) { return get_object(self->tname); }
static PyObject *get_module(TLock *self, void *c) { return get_object(self->module); }
static PyObject *get_line(TLock *self, void *c) { return PyLong_FromLong(self->line); }
static PyObject *get_ctxn(TLock *self, void *c) { return PyLong_FromSsize_t(self->ctxn); }
static PyObject *get_count(TLock *self, void *c) { return PyLong_FromUnsignedLong(self->count); }
static PyObject *get_t0(TLock *self, void *c) { return PyFloat_FromDouble(self->t0 / 1e9); }

static PyObject *
get_cap(TLock *self, void *c)
{
    return PyFloat_FromDouble(self->cap == INT64_MAX ? Py_HUGE_VAL : self->cap / 1e9);
}

static int
no_delete(PyObject *value)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete this attribute");
        return -1;
    }
    return 0;
}

/* Set an object slot: None stands for "none" (NULL); ``str_only`` refuses anything but str/None. */
static int
set_object(PyObject **slot, PyObject *value, int str_only)
{
    if (no_delete(value) < 0) {
        return -1;
    }
    if (str_only && value != Py_None && !PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "expected a str or None");
        return -1;
    }
    Py_XSETREF(*slot, value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

static int set_rare(TLock *self, PyObject *v, void *c) { return set_object(&self->rare, v, 0); }
static int set_tname(TLock *self, PyObject *v, void *c) { return set_object(&self->tname, v, 1); }
static int set_module(TLock *self, PyObject *v, void *c) { return set_object(&self->module, v, 1); }

static int
set_ctx(TLock *self, PyObject *value, void *c)
{
    if (no_delete(value) < 0) {
        return -1;
    }
    if (value != Py_None && !PyList_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "_ctx must be a list or None");
        return -1;
    }
    return set_object(&self->ctx, value, 0);
}

static int
set_ns(TLock *self, PyObject *value, void *c)
{
    if (no_delete(value) < 0) {
        return -1;
    }
    if (value == Py_None) {
        clear_name_stats(self);
        return 0;
    }
    PyObject *hist = PyObject_GetAttr(value, str_hist);
    if (hist == NULL) {
        return -1;
    }
    PyObject *tally;
    if (get_tally(value, &tally) < 0) {
        Py_DECREF(hist);
        return -1;
    }
    set_name_stats(self, value, hist, tally);
    Py_DECREF(hist);
    Py_XDECREF(tally);
    return 0;
}

static int
set_ctxn(TLock *self, PyObject *value, void *c)
{
    if (no_delete(value) < 0) {
        return -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(value);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    self->ctxn = n;
    return 0;
}

static int
set_line(TLock *self, PyObject *value, void *c)
{
    if (no_delete(value) < 0) {
        return -1;
    }
    long line = PyLong_AsLong(value);
    if (line == -1 && PyErr_Occurred()) {
        return -1;
    }
    self->line = (int)line;
    return 0;
}

static int
set_cap(TLock *self, PyObject *value, void *c)
{
    if (no_delete(value) < 0) {
        return -1;
    }
    double seconds = PyFloat_AsDouble(value);
    if (seconds == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (seconds < 0) {
        self->cap = -1;
    }
    else if (seconds >= 9e9) {
        self->cap = INT64_MAX;
    }
    else {
        self->cap = (int64_t)(seconds * 1e9);
    }
    return 0;
}

static PyGetSetDef tlock_getset[] = {
    {"_key", (getter)get_key, NULL, "the lock's key (None before its first take)", NULL},
    {"_holder", (getter)get_holder, NULL, "the held stack of the thread holding it", NULL},
    {"_ns", (getter)get_ns, (setter)set_ns, "the name's shared statistics", NULL},
    {"_rare", (getter)get_rare, (setter)set_rare, "counters of rare events", NULL},
    {"_ctx", (getter)get_ctx, (setter)set_ctx, "the held-lock context last verified", NULL},
    {"_ctxn", (getter)get_ctxn, (setter)set_ctxn, "takes counted against _ctx", NULL},
    {"_cap", (getter)get_cap, (setter)set_cap, "seconds: a longer hold calls the slow path", NULL},
    {"_tname", (getter)get_tname, (setter)set_tname, "explicit name", NULL},
    {"_module", (getter)get_module, (setter)set_module, "creation site: module", NULL},
    {"_line", (getter)get_line, (setter)set_line, "creation site: line", NULL},
    {"_count", (getter)get_count, NULL, "RLock recursion level (0 when free)", NULL},
    {"_t0", (getter)get_t0, NULL, "start of the current hold (perf_counter seconds)", NULL},
    {NULL},
};

#define ACQUIRE_DOC "acquire(blocking=True, timeout=-1) -> bool\n\nAcquire the lock, like threading's; True when acquired."

static PyMethodDef lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))tlock_acquire, METH_FASTCALL | METH_KEYWORDS, ACQUIRE_DOC},
    {"release", (PyCFunction)tlock_release, METH_NOARGS, "Release the lock (from any thread, as Lock allows)."},
    {"__enter__", (PyCFunction)tlock_enter, METH_NOARGS, "Acquire the lock."},
    {"__exit__", (PyCFunction)(void (*)(void))tlock_exit, METH_FASTCALL, "Release the lock."},
    {"locked", (PyCFunction)tlock_locked, METH_NOARGS, "True if the lock is held by any thread."},
    {"_is_owned", (PyCFunction)tlock_is_owned, METH_NOARGS, NULL},
    {"_release_save", (PyCFunction)tlock_release_save, METH_NOARGS, NULL},
    {"_acquire_restore", (PyCFunction)tlock_acquire_restore, METH_O, NULL},
    {"_at_fork_reinit", (PyCFunction)tlock_at_fork_reinit, METH_NOARGS, NULL},
    {"_tt_owner", (PyCFunction)tlock_tt_owner, METH_NOARGS, NULL},
    {"_tt_totals", (PyCFunction)tlock_tt_totals, METH_NOARGS, NULL},
    {"_tt_reset", (PyCFunction)tlock_tt_reset, METH_NOARGS, NULL},
    {NULL},
};

static PyMethodDef rlock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))tlock_acquire, METH_FASTCALL | METH_KEYWORDS, ACQUIRE_DOC},
    {"release", (PyCFunction)tlock_release, METH_NOARGS, "Leave one level; the last one releases."},
    {"__enter__", (PyCFunction)tlock_enter, METH_NOARGS, "Acquire the lock (or re-enter it)."},
    {"__exit__", (PyCFunction)(void (*)(void))tlock_exit, METH_FASTCALL, "Leave one level."},
    {"locked", (PyCFunction)tlock_locked, METH_NOARGS, "True if some thread holds the lock."},
    {"_is_owned", (PyCFunction)tlock_is_owned, METH_NOARGS, NULL},
    {"_recursion_count", (PyCFunction)tlock_recursion_count, METH_NOARGS, NULL},
    {"_release_save", (PyCFunction)tlock_release_save, METH_NOARGS, NULL},
    {"_acquire_restore", (PyCFunction)tlock_acquire_restore, METH_O, NULL},
    {"_at_fork_reinit", (PyCFunction)tlock_at_fork_reinit, METH_NOARGS, NULL},
    {"_tt_owner", (PyCFunction)tlock_tt_owner, METH_NOARGS, NULL},
    {"_tt_totals", (PyCFunction)tlock_tt_totals, METH_NOARGS, NULL},
    {"_tt_reset", (PyCFunction)tlock_tt_reset, METH_NOARGS, NULL},
    {NULL},
};

static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tracedthreading._speedups.Lock",
    .tp_basicsize = sizeof(TLock),
    .tp_dealloc = (destructor)tlock_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C hot path of tracedthreading.Lock.",
    .tp_weaklistoffset = offsetof(TLock, weakreflist),
    .tp_methods = lock_methods,
    .tp_getset = tlock_getset,
    .tp_init = (initproc)tlock_init,
    .tp_new = tlock_new,
};

static PyTypeObject RLockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tracedthreading._speedups.RLock",
    .tp_basicsize = sizeof(TLock),
    .tp_dealloc = (destructor)tlock_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C hot path of tracedthreading.RLock.",
    .tp_weaklistoffset = offsetof(TLock, weakreflist),
    .tp_methods = rlock_methods,
    .tp_getset = tlock_getset,
    .tp_init = (initproc)tlock_init,
    .tp_new = tlock_new,
};

/* -- the patch's class stand-ins ------------------------------------------------------------------
   Under tracedthreading.patch(), threading.Condition, Semaphore... are stand-ins whose metaclass
   (patching._FactoryClass) derives from StandinMeta: calling one builds the traced primitive, named
   after the calling line, unless the caller is threading itself (or the patch is off), which gets the
   stdlib's. Every Future makes a Condition this way, so the common case is here, in C: the site's name
   is cached per (code object, instruction), and only a site not seen before (or one of logging's, whose
   names depend on more than the line) calls back into patching. A user's subclass of a stand-in is
   built as usual. */

static PyObject *patch_globals;      /* patching.__dict__: its _active says whether the patch is on */
static PyObject *threading_globals;  /* threading.__dict__: calls from threading itself build raw objects */
static PyObject *factories;          /* _factories.current: "Condition" -> the factory to call now */
static PyObject *hook_site_name;     /* patching._site_name_of(frame) -> str, or None: patching decides */
static PyObject *hook_dispatch;      /* patching._dispatch(name, original, frame, args, kwargs) */
static PyObject *str_tt_name, *str_tt_original, *str_active, *kwnames_name;

#define SITE_SLOTS 1024  /* a power of two: bounds the code objects the cache keeps alive */
typedef struct {
    PyObject *code;     /* strong: while cached, no other code object can have its address */
    PyObject *globals;  /* strong, the same way: code exec'd in another module is another site */
    int lasti;
    PyObject *name;
} SiteSlot;
static SiteSlot sites[SITE_SLOTS];

static inline int
frame_lasti(PyFrameObject *frame)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyFrame_GetLasti(frame);
#else
    return frame->f_lasti;
#endif
}

/* The name of what ``frame``'s current instruction creates (a new reference), or None when patching
   must decide (then nothing is cached). ``globals``: the frame's. */
static PyObject *
site_name(PyFrameObject *frame, PyObject *globals)
{
    PyCodeObject *code = PyFrame_GetCode(frame);  /* new reference */
    int lasti = frame_lasti(frame);
    size_t at = ((((uintptr_t)code) >> 4) ^ ((size_t)lasti * 0x9E3779B1u)) & (SITE_SLOTS - 1);
    if (sites[at].code == (PyObject *)code && sites[at].lasti == lasti && sites[at].globals == globals) {
        Py_DECREF(code);
        return Py_NewRef(sites[at].name);
    }
    PyObject *name = PyObject_CallOneArg(hook_site_name, (PyObject *)frame);
    if (name == NULL || !PyUnicode_CheckExact(name)) {
        Py_DECREF(code);
        return name;  /* NULL (an error) or None */
    }
    /* Python code ran: the slot may have been refilled meanwhile; ours replaces it either way. */
    SiteSlot old = sites[at];
    sites[at].code = (PyObject *)code;  /* our reference */
    sites[at].globals = Py_NewRef(globals);
    sites[at].lasti = lasti;
    sites[at].name = Py_NewRef(name);
    Py_XDECREF(old.code);
    Py_XDECREF(old.globals);
    Py_XDECREF(old.name);
    return name;
}

/* factory(*args, name=name, **kwargs) */
static PyObject *
call_named(PyObject *factory, PyObject *args, PyObject *kwargs, PyObject *name)
{
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (kwargs == NULL || PyDict_GET_SIZE(kwargs) == 0) {
        PyObject *small[8];
        PyObject **stack = nargs < 8 ? small : PyMem_Malloc((nargs + 1) * sizeof(PyObject *));
        if (stack == NULL) {
            return PyErr_NoMemory();
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            stack[i] = PyTuple_GET_ITEM(args, i);
        }
        stack[nargs] = name;
        PyObject *result = PyObject_Vectorcall(factory, stack, nargs, kwnames_name);
        if (stack != small) {
            PyMem_Free(stack);
        }
        return result;
    }
    PyObject *named = PyDict_Copy(kwargs);
    if (named == NULL) {
        return NULL;
    }
    PyObject *result = NULL;
    if (PyDict_SetItem(named, str_name_kw, name) == 0) {
        result = PyObject_Call(factory, args, named);
    }
    Py_DECREF(named);
    return result;
}

static PyObject *
standin_call(PyObject *cls, PyObject *args, PyObject *kwargs)
{
    PyObject *own = ((PyTypeObject *)cls)->tp_dict;
    PyObject *tt_name = own != NULL ? PyDict_GetItemWithError(own, str_tt_name) : NULL;  /* borrowed */
    PyObject *original = tt_name != NULL ? PyDict_GetItemWithError(own, str_tt_original) : NULL;
    if (original == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        return PyType_Type.tp_call(cls, args, kwargs);  /* a user's subclass, or not set up: as usual */
    }
    Py_INCREF(tt_name);
    Py_INCREF(original);
    PyObject *result = NULL, *name = NULL;
    PyObject *globals = PyEval_GetGlobals();  /* the caller's (borrowed) */
    PyFrameObject *frame = PyEval_GetFrame();  /* borrowed */
    PyObject *active = patch_globals != NULL ? PyDict_GetItemWithError(patch_globals, str_active) : NULL;
    if (globals == NULL || frame == NULL || globals == threading_globals || active != Py_True) {
        if (!PyErr_Occurred()) {  /* threading itself (or no Python caller, or the patch is off): raw */
            result = PyObject_Call(original, args, kwargs);
        }
        goto done;
    }
    int named = kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0 ? PyDict_Contains(kwargs, str_name_kw) : 0;
    if (named < 0) {
        goto done;
    }
    if (!named) {
        name = site_name(frame, globals);
        if (name == NULL) {
            goto done;
        }
        if (name == Py_None) {  /* patching decides (logging's locks), the whole call */
            result = PyObject_CallFunctionObjArgs(hook_dispatch, tt_name, original, (PyObject *)frame,
                                                  args, kwargs != NULL ? kwargs : Py_None, NULL);
            goto done;
        }
    }
    PyObject *factory = PyDict_GetItemWithError(factories, tt_name);  /* borrowed */
    if (factory == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_RuntimeError, "tracedthreading: no factory for %R", tt_name);
        }
        goto done;
    }
    Py_INCREF(factory);
    result = named ? PyObject_Call(factory, args, kwargs) : call_named(factory, args, kwargs, name);
    Py_DECREF(factory);
done:
    Py_XDECREF(name);
    Py_DECREF(tt_name);
    Py_DECREF(original);
    return result;
}

static PyTypeObject StandinMetaType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tracedthreading._speedups.StandinMeta",
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_TYPE_SUBCLASS,
    .tp_doc = "Base metaclass of patching's class stand-ins: their construction, in C.",
    .tp_call = standin_call,
};

/* _set_standins(patching_globals, threading_globals, factories, site_name_of, dispatch) */
static PyObject *
module_set_standins(PyObject *module, PyObject *args)
{
    PyObject *patching, *threading, *current, *site_name_of, *slow;
    if (!PyArg_ParseTuple(args, "O!O!O!OO:_set_standins", &PyDict_Type, &patching, &PyDict_Type, &threading,
                          &PyDict_Type, &current, &site_name_of, &slow)) {
        return NULL;
    }
    Py_XSETREF(patch_globals, Py_NewRef(patching));
    Py_XSETREF(threading_globals, Py_NewRef(threading));
    Py_XSETREF(factories, Py_NewRef(current));
    Py_XSETREF(hook_site_name, Py_NewRef(site_name_of));
    Py_XSETREF(hook_dispatch, Py_NewRef(slow));
    Py_RETURN_NONE;
}

/* -- the module ---------------------------------------------------------------------------------- */

static PyObject *
module_next_key(PyObject *module, PyObject *unused)
{
    return PyLong_FromUnsignedLongLong(++next_key_value);
}

static PyObject *
module_lookup(PyObject *module, PyObject *key)
{
    unsigned long long number = PyLong_AsUnsignedLongLong(key);
    if (number == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Slot *slot = registry_find(number);
    if (slot == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef((PyObject *)slot->lock);
}

static PyObject *
module_live(PyObject *module, PyObject *unused)
{
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < slot_count; i++) {
        if (slots[i].key != SLOT_FREE && slots[i].key != SLOT_GONE) {
            if (PyList_Append(out, (PyObject *)slots[i].lock) < 0) {
                Py_DECREF(out);
                return NULL;
            }
        }
    }
    return out;
}

/* _fast_classes(Lock, RLock): the public classes (Python subclasses of the types here) are built by
   tlock_vectorcall. */
static PyObject *
module_fast_classes(PyObject *module, PyObject *args)
{
    PyObject *lock, *rlock;
    if (!PyArg_ParseTuple(args, "O!O!:_fast_classes", &PyType_Type, &lock, &PyType_Type, &rlock)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)lock, &LockType) || !PyType_IsSubtype((PyTypeObject *)rlock, &RLockType)
        || ((PyTypeObject *)lock)->tp_init != LockType.tp_init || ((PyTypeObject *)rlock)->tp_init != RLockType.tp_init) {
        PyErr_SetString(PyExc_TypeError, "_fast_classes: the classes must subclass Lock and RLock, keeping __init__");
        return NULL;
    }
    ((PyTypeObject *)lock)->tp_vectorcall = tlock_vectorcall;
    ((PyTypeObject *)rlock)->tp_vectorcall = tlock_vectorcall;
    Py_RETURN_NONE;
}

static PyObject *
module_names_changed(PyObject *module, PyObject *unused)
{
    forget_last_name();
    Py_RETURN_NONE;
}

static PyObject *
module_set_caps(PyObject *module, PyObject *args)
{
    double held_long;
    int trace_on;
    if (!PyArg_ParseTuple(args, "dp:_set_caps", &held_long, &trace_on)) {
        return NULL;
    }
    held_long_s = held_long;
    tracing = trace_on;
    Py_RETURN_NONE;
}

static int
take_hook(PyObject *source, const char *name, PyObject **slot)
{
    PyObject *value = PyObject_GetAttrString(source, name);
    if (value == NULL) {
        return -1;
    }
    Py_XSETREF(*slot, value);
    return 0;
}

/* _setup(lockcore, stats, lockorder, current): the Python slow paths this module calls back, and the
   containers of _stats and _lockorder it uses directly (those modules never rebind them). */
static PyObject *
module_setup(PyObject *module, PyObject *args)
{
    PyObject *lockcore, *stats, *lockorder, *current;
    if (!PyArg_ParseTuple(args, "OOOO:_setup", &lockcore, &stats, &lockorder, &current)) {
        return NULL;
    }
    PyObject *drain = PyObject_GetAttrString(stats, "_DRAIN_AT");
    if (drain == NULL) {
        return NULL;
    }
    drain_at = PyLong_AsSsize_t(drain);
    Py_DECREF(drain);
    if (drain_at == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (take_hook(stats, "count_into", &hook_grow) < 0
        || take_hook(stats, "_name_stats", &name_stats_dict) < 0
        || take_hook(stats, "name_stats", &name_stats_make) < 0
        || take_hook(stats, "_dead_locks", &dead_locks) < 0
        || take_hook(stats, "try_drain", &try_drain) < 0
        || take_hook(lockorder, "_names", &order_names) < 0
        || take_hook(lockorder, "retire", &order_retire) < 0
        ) {
        return NULL;
    }
    if (!PyDict_Check(name_stats_dict) || !PyList_Check(dead_locks) || !PyDict_Check(order_names)) {
        PyErr_SetString(PyExc_TypeError, "tracedthreading._speedups._setup: unexpected containers");
        return NULL;
    }
    if (take_hook(lockcore, "new_context", &hook_new_context) < 0
        || take_hook(lockcore, "begin_wait", &hook_begin_wait) < 0
        || take_hook(lockcore, "wait_long", &hook_wait_long) < 0
        || take_hook(lockcore, "end_wait", &hook_end_wait) < 0
        || take_hook(lockcore, "short_wait", &hook_short_wait) < 0
        || take_hook(lockcore, "abort_wait", &hook_abort_wait) < 0
        || take_hook(lockcore, "note_failure", &hook_note_failure) < 0
        || take_hook(lockcore, "past_cap", &hook_past_cap) < 0
        || take_hook(lockcore, "LockOrderError", &lock_order_error) < 0) {
        return NULL;
    }
    PyObject *short_wait = PyObject_GetAttrString(lockcore, "SHORT_WAIT");
    if (short_wait == NULL) {
        return NULL;
    }
    short_wait_s = PyFloat_AsDouble(short_wait);
    Py_DECREF(short_wait);
    if (short_wait_s == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    Py_INCREF(current);
    Py_XSETREF(hook_current, current);  /* last: check_setup() tests it */
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"next_key", module_next_key, METH_NOARGS, "A new key for a traced primitive (one counter for all)."},
    {"_setup", module_setup, METH_VARARGS, "Connect the hot path to its Python slow paths."},
    {"_set_caps", module_set_caps, METH_VARARGS, "held_long_threshold (seconds, inf: none) and tracing, for new locks."},
    {"lookup", module_lookup, METH_O, "The live C lock registered under a key, or None."},
    {"live", module_live, METH_NOARGS, "Every live C lock that was ever taken (a new list)."},
    {"_fast_classes", module_fast_classes, METH_VARARGS, "Build these Lock and RLock classes by vectorcall."},
    {"_set_standins", module_set_standins, METH_VARARGS,
     "patching's globals, threading's globals, the factories, and patching's site-name and dispatch hooks."},
    {"names_changed", module_names_changed, METH_NOARGS,
     "A name's statistics were replaced, removed or reset, or its maximum grew: forget the one cached."},
    {NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tracedthreading._speedups",
    .m_doc = "The C hot path of tracedthreading's Lock and RLock (see _speedups.c).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    held_key = PyUnicode_InternFromString("tracedthreading.held");
    str_hist = PyUnicode_InternFromString("hist");
    str_acquire = PyUnicode_InternFromString("acquire");
    str_name = PyUnicode_InternFromString("__name__");
    str_hold_max = PyUnicode_InternFromString("hold_max");
    str_tally = PyUnicode_InternFromString("tally");
    str_tt_name = PyUnicode_InternFromString("_tt_name");
    str_tt_original = PyUnicode_InternFromString("_tt_original");
    str_active = PyUnicode_InternFromString("_active");
    str_name_kw = PyUnicode_InternFromString("name");
    if (!str_tt_name || !str_tt_original || !str_active || !str_name_kw) {
        return NULL;
    }
    kwnames_name = PyTuple_Pack(1, str_name_kw);
    if (kwnames_name == NULL) {
        return NULL;
    }
    StandinMetaType.tp_base = &PyType_Type;
    zero = PyLong_FromLong(0);
    if (!str_hold_max || !str_tally || !zero) {
        return NULL;
    }
    str_lock = PyUnicode_InternFromString("lock");
    str_rlock = PyUnicode_InternFromString("rlock");
    if (!held_key || !str_hist || !str_acquire || !str_name || !str_lock || !str_rlock) {
        return NULL;
    }
    PyObject *thread_module = PyImport_ImportModule("_thread");
    if (thread_module == NULL) {
        return NULL;
    }
    validate_factory = PyObject_GetAttrString(thread_module, "allocate_lock");
    Py_DECREF(thread_module);
    if (validate_factory == NULL) {
        return NULL;
    }
    if (PyType_Ready(&LockType) < 0 || PyType_Ready(&RLockType) < 0 || PyType_Ready(&TallyType) < 0
        || PyType_Ready(&StandinMetaType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "API", SPEEDUPS_API) < 0
        || PyModule_AddObjectRef(module, "Lock", (PyObject *)&LockType) < 0
        || PyModule_AddObjectRef(module, "RLock", (PyObject *)&RLockType) < 0
        || PyModule_AddObjectRef(module, "Tally", (PyObject *)&TallyType) < 0
        || PyModule_AddObjectRef(module, "StandinMeta", (PyObject *)&StandinMetaType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
