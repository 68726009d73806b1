# Reused memory for the large record outputs of core/options.pyx (included, not compiled alone).
#
# A 1M-row bs_price_greeks result is 88 MB. glibc serves any block above 32 MiB with a fresh mmap
# and unmaps it on free, so every such call had the kernel zero 88 MB of new pages before the
# loop could write a row: 38% of the call's time in a profile (clear_page_erms), more than the
# maths. NumPy's own temporaries under 32 MiB come back from glibc's heap already mapped. This
# keeps the last OUT_POOL_SLOTS freed output blocks (at most OUT_POOL_MAX_BYTES together) and hands
# one back to the next call that needs at most that many bytes, so a caller that recomputes a chain
# and drops the previous result reuses mapped, huge-page-backed memory. Blocks are 2 MiB aligned
# (whole huge pages, 64-byte aligned rows for streaming stores) and madvised for transparent huge
# pages. Only outputs of at least OUT_POOL_MIN_BYTES take this path; the rest are plain np.empty.
# The pool is touched only with the GIL held (allocation here, release in a __dealloc__).

from cpython.buffer cimport PyBUF_FORMAT

cdef extern from *:
    """
    #include <stdlib.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    #define AIOTS_POOL_SLOTS 4
    static void* aiots_pool_ptr[AIOTS_POOL_SLOTS];
    static size_t aiots_pool_cap[AIOTS_POOL_SLOTS];
    static size_t aiots_pool_bytes = 0;

    /* Fresh block of cap bytes: 2 MiB aligned, transparent huge pages asked for (Linux). */
    static void* aiots_block_new(size_t cap) {
        void* p = NULL;
        if (posix_memalign(&p, (size_t)1 << 21, cap) != 0) return NULL;
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        (void)madvise(p, cap, MADV_HUGEPAGE);
    #endif
        return p;
    }

    /* Held blocks sit in slots [0, count), oldest first. */
    static void aiots_pool_drop(int k) {
        int i;
        aiots_pool_bytes -= aiots_pool_cap[k];
        for (i = k; i + 1 < AIOTS_POOL_SLOTS; i++) {
            aiots_pool_ptr[i] = aiots_pool_ptr[i + 1];
            aiots_pool_cap[i] = aiots_pool_cap[i + 1];
        }
        aiots_pool_ptr[AIOTS_POOL_SLOTS - 1] = NULL;
    }

    /* The smallest held block of at least need bytes and at most 2 need (NULL if none). */
    static void* aiots_pool_take(size_t need, size_t* cap) {
        int i, best = -1;
        void* p;
        for (i = 0; i < AIOTS_POOL_SLOTS && aiots_pool_ptr[i]; i++)
            if (aiots_pool_cap[i] >= need && aiots_pool_cap[i] / 2 <= need
                && (best < 0 || aiots_pool_cap[i] < aiots_pool_cap[best]))
                best = i;
        if (best < 0) return NULL;
        p = aiots_pool_ptr[best];
        *cap = aiots_pool_cap[best];
        aiots_pool_drop(best);
        return p;
    }

    /* Keep a released block (evicting the oldest until nslots and max_bytes allow it), or free it
     * when it alone is over max_bytes or the pool is off. */
    static void aiots_pool_give(void* p, size_t cap, size_t max_bytes, int nslots) {
        int k;
        if (nslots > AIOTS_POOL_SLOTS) nslots = AIOTS_POOL_SLOTS;
        if (nslots <= 0 || cap > max_bytes) { free(p); return; }
        for (;;) {
            for (k = 0; k < AIOTS_POOL_SLOTS && aiots_pool_ptr[k]; k++) {}
            if (k < nslots && aiots_pool_bytes + cap <= max_bytes) break;
            free(aiots_pool_ptr[0]);
            aiots_pool_drop(0);
        }
        aiots_pool_ptr[k] = p;
        aiots_pool_cap[k] = cap;
        aiots_pool_bytes += cap;
    }

    static void aiots_pool_clear(void) {
        int i;
        for (i = 0; i < AIOTS_POOL_SLOTS; i++) {
            if (aiots_pool_ptr[i]) free(aiots_pool_ptr[i]);
            aiots_pool_ptr[i] = NULL;
        }
        aiots_pool_bytes = 0;
    }
    """
    int POOL_SLOTS_MAX "AIOTS_POOL_SLOTS"
    void* _block_new "aiots_block_new"(size_t cap) noexcept
    void* _pool_take "aiots_pool_take"(size_t need, size_t* cap) noexcept
    void _pool_give "aiots_pool_give"(void* p, size_t cap, size_t max_bytes, int nslots) noexcept
    void _pool_clear "aiots_pool_clear"() noexcept
    size_t _pool_bytes "aiots_pool_bytes"


# Outputs below this take np.empty (glibc reuses heap memory under its 32 MiB mmap ceiling).
cdef Py_ssize_t OUT_POOL_MIN_BYTES = 32 << 20
# Freed output blocks kept for reuse: at most this many, this many bytes together (0 disables).
cdef int OUT_POOL_SLOTS = 2
cdef Py_ssize_t OUT_POOL_MAX_BYTES = 256 << 20


def _out_pool(min_bytes=None, slots=None, max_bytes=None, stream_min_bytes=None):
    """Read (and, for tests and benchmarks, set) the output pool's limits and the streaming-store
    threshold; returns the values in force and the bytes now held. Setting slots or max_bytes frees
    every held block."""
    global OUT_POOL_MIN_BYTES, OUT_POOL_SLOTS, OUT_POOL_MAX_BYTES, PG_STREAM_MIN_BYTES
    if stream_min_bytes is not None:
        PG_STREAM_MIN_BYTES = int(stream_min_bytes)
    if min_bytes is not None:
        OUT_POOL_MIN_BYTES = int(min_bytes)
    if slots is not None:
        OUT_POOL_SLOTS = max(0, min(int(slots), POOL_SLOTS_MAX))
        _pool_clear()
    if max_bytes is not None:
        OUT_POOL_MAX_BYTES = max(0, int(max_bytes))
        _pool_clear()
    return {"min_bytes": OUT_POOL_MIN_BYTES, "slots": OUT_POOL_SLOTS, "max_bytes": OUT_POOL_MAX_BYTES,
            "held_bytes": _pool_bytes, "stream_min_bytes": PG_STREAM_MIN_BYTES}


cdef class _OutBlock:
    """Owner of one output block: exposes it as a writable buffer and returns it to the pool when
    the last array over it is freed."""
    cdef char* ptr
    cdef size_t cap
    cdef Py_ssize_t nbytes
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer* buf, int flags):
        self.shape[0] = self.nbytes
        self.strides[0] = 1
        buf.buf = self.ptr
        buf.obj = self
        buf.len = self.nbytes
        buf.readonly = 0
        buf.itemsize = 1
        buf.format = NULL
        if flags & PyBUF_FORMAT:
            buf.format = b"B"
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer* buf):
        pass

    def __dealloc__(self):
        if self.ptr != NULL:
            _pool_give(self.ptr, self.cap, OUT_POOL_MAX_BYTES, OUT_POOL_SLOTS)
            self.ptr = NULL


cdef object _empty_records(Py_ssize_t n, object dtype, bint* mapped):
    """np.empty(n, dtype) for the record outputs; from the pool when it is large (see above).
    mapped: set when the block is a reused one (its pages already mapped and written)."""
    cdef Py_ssize_t nbytes = n * dtype.itemsize
    cdef size_t cap = 0
    cdef void* p
    cdef _OutBlock blk
    if nbytes < OUT_POOL_MIN_BYTES or OUT_POOL_SLOTS <= 0:
        return np.empty(n, dtype=dtype)
    p = _pool_take(<size_t>nbytes, &cap)
    mapped[0] = p != NULL
    if p == NULL:
        cap = <size_t>nbytes
        p = _block_new(cap)
        if p == NULL:
            return np.empty(n, dtype=dtype)
    blk = _OutBlock.__new__(_OutBlock)
    blk.ptr = <char*>p
    blk.cap = cap
    blk.nbytes = nbytes
    return np.frombuffer(blk, dtype=dtype, count=n)
