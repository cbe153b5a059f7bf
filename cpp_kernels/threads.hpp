// OpenMP is optional: without it the kernels run on one thread. Errors: an exception must never
// leave an OpenMP region (that calls std::terminate), so every region runs its work through a
// ThreadErrors and rethrows after it; the bindings turn what is thrown into Python exceptions.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace mlclass {

// Index of the calling thread within the current parallel region (0 outside one).
inline int this_thread() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// The first exception thrown by the work of a parallel region, kept for rethrow() after the region;
// once one is kept, the remaining work is skipped. Work that cannot throw costs nothing here.
class ThreadErrors {
public:
    template <typename Work>
    void run(Work&& work) noexcept {
        if (failed_.load(std::memory_order_relaxed)) return;
        try {
            work();
        } catch (...) {
#pragma omp critical(mlclass_thread_errors)
            if (!first_) first_ = std::current_exception();
            failed_.store(true, std::memory_order_relaxed);
        }
    }
    void rethrow() const {
        if (first_) std::rethrow_exception(first_);
    }

private:
    std::atomic<bool> failed_{false};
    std::exception_ptr first_;
};

inline std::string gib(double bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g GiB", bytes / double(1 << 30));
    return text;
}

// An allocation that failed, with the size asked for (MemoryError in Python).
struct OutOfMemory : std::runtime_error {
    explicit OutOfMemory(double bytes)
        : std::runtime_error("could not allocate " + gib(bytes) + " of memory") {}
};

// The machine's physical memory in bytes (infinite where unknown): no computation may plan to use more.
inline double physical_memory() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0) return double(pages) * double(page);
#endif
    return INFINITY;
}

// Whether the caller runs inside an OpenMP parallel region (also one of a single thread).
inline bool in_parallel_region() {
#ifdef _OPENMP
    return omp_get_level() > 0;
#else
    return false;
#endif
}

// Large blocks of memory (a frame's bins and sorted positions, ...) kept for the next call that asks
// for the same size: memory fresh from the operating system costs time to map and zero, on a busy
// machine at times as much as the work itself, and a trajectory asks for the same sizes frame after
// frame. Only the blocks of the calling thread outside parallel regions, the frame-sized arrays (a
// thread's scratch inside a region grows with what it meets, a size that seldom comes again). Up to
// a sixteenth of the machine's memory is kept, the longest unused let go first; Python lets go of
// all of it with its own kept arrays (release_blocks(), from work_arrays.py).
class BlockCache {
public:
    static constexpr size_t kMinBytes = size_t(1) << 20;  // smaller blocks: malloc keeps them well

    static BlockCache& instance() {
        static BlockCache* cache = new BlockCache();  // never destroyed: no order of destruction at exit
        return *cache;
    }
    static bool applies(size_t bytes) { return bytes >= kMinBytes && !in_parallel_region(); }

    void* take(size_t bytes) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (size_t b = 0; b < blocks_.size(); ++b)
            if (blocks_[b].second == bytes) {
                void* block = blocks_[b].first;
                blocks_.erase(blocks_.begin() + b);
                kept_ -= bytes;
                return block;
            }
        return nullptr;
    }
    bool keep(void* block, size_t bytes) {
        const double limit = physical_memory() / 16;
        if (double(bytes) > limit) return false;
        std::vector<void*> dropped;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            while (!blocks_.empty() && double(kept_ + bytes) > limit) {  // the longest unused first
                dropped.push_back(blocks_.front().first);
                kept_ -= blocks_.front().second;
                blocks_.erase(blocks_.begin());
            }
            blocks_.emplace_back(block, bytes);
            kept_ += bytes;
        }
        for (void* old : dropped) ::operator delete(old);
        return true;
    }
    size_t kept_bytes() {
        std::lock_guard<std::mutex> lock(mutex_);
        return kept_;
    }
    void release() {
        std::vector<std::pair<void*, size_t>> blocks;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            blocks.swap(blocks_);
            kept_ = 0;
        }
        for (const auto& block : blocks) ::operator delete(block.first);
    }

private:
    std::mutex mutex_;
    std::vector<std::pair<void*, size_t>> blocks_;  // oldest first
    size_t kept_ = 0;
};

// std::vector's allocator, except that a failure names its size and large blocks are kept for the
// next call (BlockCache).
template <typename T>
struct SizedAllocator : std::allocator<T> {
    using value_type = T;
    // blocks from plain operator new (std::allocator's, and BlockCache's release)
    static constexpr bool kCached = alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;
    template <typename U>
    struct rebind {
        using other = SizedAllocator<U>;
    };
    SizedAllocator() = default;
    template <typename U>
    SizedAllocator(const SizedAllocator<U>&) noexcept {}
    T* allocate(size_t count) {
        const size_t bytes = count * sizeof(T);
        if (kCached && count <= SIZE_MAX / sizeof(T) && BlockCache::applies(bytes))
            if (void* block = BlockCache::instance().take(bytes)) return static_cast<T*>(block);
        try {
            return std::allocator<T>::allocate(count);
        } catch (const std::bad_alloc&) {
            throw OutOfMemory(double(count) * sizeof(T));
        } catch (const std::length_error&) {
            throw OutOfMemory(double(count) * sizeof(T));
        }
    }
    void deallocate(T* block, size_t count) noexcept {
        const size_t bytes = count * sizeof(T);
        if (kCached && BlockCache::applies(bytes) && BlockCache::instance().keep(block, bytes)) return;
        std::allocator<T>::deallocate(block, count);
    }
};
template <typename T, typename U>
bool operator==(const SizedAllocator<T>&, const SizedAllocator<U>&) { return true; }
template <typename T, typename U>
bool operator!=(const SizedAllocator<T>&, const SizedAllocator<U>&) { return false; }

// For the arrays whose size grows with the input (atoms, bonds, candidates).
template <typename T>
using Buffer = std::vector<T, SizedAllocator<T>>;

// Refuses (ValueError) a computation planned to need more than the machine's memory.
inline void require_memory(double bytes, const std::string& what) {
    const double limit = physical_memory();
    if (bytes > limit)
        throw std::invalid_argument(what + " would need about " + gib(bytes) + " of memory, more than this machine has (" +
                                    gib(limit) + ")");
}

[[noreturn]] inline void throw_zero_length_bonds(int64_t count) {
    throw std::invalid_argument(std::to_string(count) +
                                " neighbour vector(s) of zero length: two atoms occupy the same position");
}

// Atoms found at distance zero from another atom (or from a periodic image of one) by a neighbour
// search, from any thread: refused, as no neighbourhood is defined there.
class Coincidence {
public:
    void note(int64_t atom) {
        count_.fetch_add(1, std::memory_order_relaxed);
        int64_t first = first_.load(std::memory_order_relaxed);
        while (atom < first && !first_.compare_exchange_weak(first, atom, std::memory_order_relaxed)) {
        }
    }
    // positions: (n, 3) as given to the search
    void check(const double* positions) const {
        const int64_t count = count_.load(), i = first_.load();
        if (count == 0) return;
        char where[96];
        std::snprintf(where, sizeof where, "particle %lld at (%.6g, %.6g, %.6g)", static_cast<long long>(i),
                      positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]);
        throw std::invalid_argument(std::to_string(count) + " particle(s) have another particle at distance zero (the first: " +
                                    where + "): two atoms occupy the same position");
    }

private:
    std::atomic<int64_t> count_{0}, first_{INT64_MAX};
};

}  // namespace mlclass
