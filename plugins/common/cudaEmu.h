// Host emulation of the small slice of CUDA that the cait kernels use, so that the kernel
// sources themselves run (and are tested) on a machine without a GPU.
//
// Mapping: one host std::thread per CUDA thread of a block; blocks of a grid run one after the
// other (so `__shared__` can be a function-local static and dynamic shared memory one buffer);
// __syncthreads is a block-wide barrier, warp shuffles exchange through a per-warp buffer between
// two warp barriers, atomics take a global mutex. fp16 uses the host side of cuda_fp16.h.
//
// What this cannot catch (see plugins/README.md): races whose outcome depends on warp scheduling
// or on lanes of one warp running in lockstep, the CUDA memory model (host threads are more
// strongly ordered than SMs), bank conflicts, register spills, occupancy, launch-bound violations,
// alignment faults of vector loads, and shared-memory overflows beyond the requested size are
// only caught where the host allocator notices. Divergent __syncthreads is reported as a deadlock.
#pragma once

#if !defined(CAIT_EMULATION)
#error "cudaEmu.h is for the host emulation build only"
#endif

#include <cuda_fp16.h>         // host side: __half, __float2half_rn, __half2float
#include <cuda_runtime_api.h> // types only (dim3, cudaError_t, cudaStream_t); nothing is called

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

// cuda headers define these as attributes that g++ does not know; they mean nothing on the host.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static // blocks run one at a time, so a static is one block's shared memory
#define __align__(n) alignas(n)

#ifndef __restrict__
#define __restrict__
#endif


namespace cuda_emu
{

// Generation barrier on a futex: arrivals count atomically, the last one bumps the generation and
// wakes everyone. No mutex, so 256 waking threads do not convoy on a lock (a condition-variable
// barrier made the emulation ~3x slower on 2 cores).
class Barrier
{
public:
    explicit Barrier(unsigned count = 0) : mCount(count) {}
    void reset(unsigned count)
    {
        mCount = count;
        mArrived.store(0);
        mGeneration.store(0);
    }
    void wait()
    {
        unsigned const gen = mGeneration.load(std::memory_order_acquire);
        if (mArrived.fetch_add(1, std::memory_order_acq_rel) + 1 == mCount)
        {
            mArrived.store(0, std::memory_order_relaxed);
            mGeneration.fetch_add(1, std::memory_order_acq_rel);
            syscall(SYS_futex, reinterpret_cast<uint32_t*>(&mGeneration), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr,
                nullptr, 0);
            return;
        }
        auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (mGeneration.load(std::memory_order_acquire) == gen)
        {
            timespec timeout{1, 0};
            syscall(SYS_futex, reinterpret_cast<uint32_t*>(&mGeneration), FUTEX_WAIT_PRIVATE, gen, &timeout,
                nullptr, 0);
            // A thread that never arrives (a barrier inside divergent code) would hang the test
            // forever; fail loudly instead.
            if (std::chrono::steady_clock::now() > deadline)
            {
                std::fprintf(stderr, "cuda_emu: barrier deadlock (divergent __syncthreads/__syncwarp?)\n");
                std::abort();
            }
        }
    }

private:
    unsigned mCount{0};
    std::atomic<unsigned> mArrived{0};
    std::atomic<unsigned> mGeneration{0};
    static_assert(sizeof(std::atomic<unsigned>) == sizeof(uint32_t), "futex needs a 32-bit word");
};

struct Warp
{
    Barrier barrier{32};
    uint64_t lanes[32]{};
};

struct BlockState
{
    Barrier barrier;
    std::vector<std::unique_ptr<Warp>> warps;
    unsigned char* dynamicSmem{nullptr};
};

struct ThreadState
{
    dim3 threadIdx, blockIdx, blockDim, gridDim;
    BlockState* block{nullptr};
    unsigned linear{0};
};

inline thread_local ThreadState tls;

inline std::mutex& atomicMutex()
{
    static std::mutex m;
    return m;
}

inline void syncthreads()
{
    tls.block->barrier.wait();
}

template <typename T>
T shuffle(T v, unsigned mask, unsigned srcLaneOf(unsigned lane, int arg), int arg, int width)
{
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a type wider than 64 bits");
    if (mask != 0xffffffffu || width != 32)
    {
        std::fprintf(stderr, "cuda_emu: only full-warp shuffles are emulated\n");
        std::abort();
    }
    Warp& w = *tls.block->warps[tls.linear / 32];
    unsigned const lane = tls.linear % 32;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    w.lanes[lane] = bits;
    w.barrier.wait();
    unsigned src = srcLaneOf(lane, arg);
    uint64_t const got = w.lanes[src < 32 ? src : lane];
    w.barrier.wait(); // nobody overwrites lanes[] before every lane has read
    T r;
    std::memcpy(&r, &got, sizeof(T));
    return r;
}

inline unsigned laneXor(unsigned lane, int m)
{
    return lane ^ static_cast<unsigned>(m);
}
inline unsigned laneDown(unsigned lane, int d)
{
    return lane + static_cast<unsigned>(d); // out of range -> own value, as on the GPU
}
inline unsigned laneIdx(unsigned, int src)
{
    return static_cast<unsigned>(src) % 32;
}

// Runs every block of the grid, one block at a time, with one host thread per CUDA thread.
template <typename... KArgs, typename... Args>
cudaError_t launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smemBytes, Args... args)
{
    unsigned const nThreads = block.x * block.y * block.z;
    if (nThreads == 0 || nThreads % 32 != 0 || nThreads > 1024)
    {
        std::fprintf(stderr, "cuda_emu: block size must be a multiple of 32 and <= 1024\n");
        return cudaErrorInvalidValue;
    }
    BlockState state;
    state.barrier.reset(nThreads);
    for (unsigned w = 0; w < nThreads / 32; ++w)
    {
        state.warps.emplace_back(new Warp);
    }
    // Poisoned with 0xff bytes (NaN as float, NaN as half): a read of shared memory that the
    // kernel never wrote shows up as NaN in the output.
    std::vector<unsigned char> smem(smemBytes + 16, 0xff);
    state.dynamicSmem = smem.data();
    unsigned const nBlocks = grid.x * grid.y * grid.z;

    std::vector<std::thread> threads;
    threads.reserve(nThreads);
    for (unsigned t = 0; t < nThreads; ++t)
    {
        threads.emplace_back([&, t] {
            tls.block = &state;
            tls.linear = t;
            tls.blockDim = block;
            tls.gridDim = grid;
            tls.threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            for (unsigned b = 0; b < nBlocks; ++b)
            {
                tls.blockIdx = dim3(b % grid.x, (b / grid.x) % grid.y, b / (grid.x * grid.y));
                kernel(args...);
                state.barrier.wait(); // the block is done before its shared memory is reused
                if (t == 0)
                {
                    std::memset(smem.data(), 0xff, smem.size());
                }
                state.barrier.wait();
            }
        });
    }
    for (auto& th : threads)
    {
        th.join();
    }
    return cudaSuccess;
}

} // namespace cuda_emu

#define threadIdx (cuda_emu::tls.threadIdx)
#define blockIdx (cuda_emu::tls.blockIdx)
#define blockDim (cuda_emu::tls.blockDim)
#define gridDim (cuda_emu::tls.gridDim)

inline void __syncthreads()
{
    cuda_emu::syncthreads();
}
inline void __syncwarp(unsigned = 0xffffffffu)
{
    cuda_emu::tls.block->warps[cuda_emu::tls.linear / 32]->barrier.wait();
}
inline void __threadfence_block()
{
    std::atomic_thread_fence(std::memory_order_seq_cst);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32)
{
    return cuda_emu::shuffle(v, mask, cuda_emu::laneXor, laneMask, width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    return cuda_emu::shuffle(v, mask, cuda_emu::laneDown, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_sync(unsigned mask, T v, int srcLane, int width = 32)
{
    return cuda_emu::shuffle(v, mask, cuda_emu::laneIdx, srcLane, width);
}
inline float atomicAdd(float* p, float v)
{
    std::lock_guard<std::mutex> lock(cuda_emu::atomicMutex());
    float const old = *p;
    *p = old + v;
    return old;
}
inline int atomicAdd(int* p, int v)
{
    std::lock_guard<std::mutex> lock(cuda_emu::atomicMutex());
    int const old = *p;
    *p = old + v;
    return old;
}
inline int atomicMax(int* p, int v)
{
    std::lock_guard<std::mutex> lock(cuda_emu::atomicMutex());
    int const old = *p;
    *p = old > v ? old : v;
    return old;
}
inline float __expf(float x)
{
    return std::exp(x);
}
inline float __fdividef(float a, float b)
{
    return a / b;
}

#define CAIT_EMU_DYNAMIC_SMEM() (cuda_emu::tls.block->dynamicSmem)
