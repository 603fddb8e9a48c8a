// Host emulation of the slice of CUDA that the cait kernels use, so that the kernel sources
// themselves run (and are tested) on a machine without a GPU.
//
// Execution model: every CUDA thread of a block is a fiber (its own stack, cooperative
// switching on one host thread); the blocks of a grid run one after the other, so `__shared__`
// can be a function-local static and dynamic shared memory one buffer. A fiber runs until it
// reaches a barrier: `__syncthreads` (the block), `__syncwarp` and every warp-collective
// instruction (shuffles, `ldmatrix`, `mma`: the warp). The last fiber to arrive completes the
// collective for the whole warp and runs on; the others resume afterwards. Fibers instead of OS
// threads make a warp collective cost a few context switches rather than 32 futex wake-ups, which
// is what lets CI execute the tensor-core kernel (hundreds of thousands of `mma`s per test).
//
// Warp-collective data movement follows the PTX ISA's documented fragment layouts exactly
// (`mma.m16n8k16` / `mma.m16n8k8` with .f16 inputs and .f32 accumulators, `ldmatrix.m8n8` x1/x2/x4
// with and without .trans): a kernel that puts one fragment element in the wrong register gets a
// wrong result here, as it would on the GPU.
//
// Scheduling is deterministic: fibers run in index order (or reverse order, see
// `cuda_emu::setReverseOrder`). A thread that reads shared memory another thread writes without a
// barrier in between therefore sees the NaN poison (dynamic shared memory is filled with 0xff
// before every block) whenever the writer is scheduled later; running both orders catches both
// directions.
//
// What this cannot catch (see plugins/README.md): the CUDA memory model (no reordering here),
// bank conflicts, register spills, occupancy, launch-bound violations, alignment faults of vector
// loads, and shared-memory overflows beyond the requested size are only caught where the host
// allocator notices. A barrier that not every thread reaches is reported as a deadlock.
#pragma once

#if !defined(CAIT_EMULATION)
#error "cudaEmu.h is for the host emulation build only"
#endif

#include <cuda_fp16.h>         // host side: __half, __float2half_rn, __half2float
#include <cuda_runtime_api.h> // types only (dim3, cudaError_t, cudaStream_t); nothing is called

#include <sys/mman.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#if !defined(__x86_64__) && !defined(__aarch64__)
#include <ucontext.h>
#endif

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

// ---- context switch ---------------------------------------------------------------------------
// Saves the callee-saved registers of the running fiber on its stack, stores its stack pointer in
// *from and resumes the fiber whose stack pointer is `to`. A new fiber's stack is prepared so that
// the first switch "returns" into its entry function.
#if defined(__x86_64__)
extern "C" void caitEmuSwitch(void** from, void* to);
asm(R"(
    .text
    .p2align 4
    .type caitEmuSwitch,@function
caitEmuSwitch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size caitEmuSwitch,.-caitEmuSwitch
)");
#elif defined(__aarch64__)
extern "C" void caitEmuSwitch(void** from, void* to);
asm(R"(
    .text
    .p2align 4
    .type caitEmuSwitch,%function
caitEmuSwitch:
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x9, sp
    str x9, [x0]
    mov sp, x1
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .size caitEmuSwitch,.-caitEmuSwitch
)");
#endif

namespace cuda_emu
{

constexpr unsigned kWarp = 32;
constexpr size_t kFiberStack = 256 * 1024; // kernels keep register arrays of a few hundred floats

enum class Collective : int
{
    kNone = 0,
    kShuffle,
    kSyncWarp,
    kLdmatrix,
    kMma,
};

// One warp's mailbox for collectives: each lane deposits its operands, the last lane to arrive
// computes every lane's result.
struct WarpMailbox
{
    Collective kind{Collective::kNone};
    int variant{0}; // shape / flavour of the collective, must agree across lanes
    unsigned arrived{0};
    unsigned generation{0};
    uint64_t shuffleIn[kWarp]{};
    int shuffleSrc[kWarp]{};
    uint64_t shuffleOut[kWarp]{};
    void const* rowAddress[kWarp]{};
    uint32_t regIn[kWarp][8]{};
    float accIn[kWarp][4]{};
    uint32_t regOut[kWarp][4]{};
    float accOut[kWarp][4]{};
};

struct Fiber;

struct BlockState
{
    unsigned nThreads{0};
    unsigned arrived{0};
    unsigned generation{0};
    int orPending{0}; // __syncthreads_or: the predicates of the threads arrived so far
    int orResult{0};  // and the last completed barrier's verdict
    std::vector<WarpMailbox> warps;
    unsigned char* dynamicSmem{nullptr};
};

struct Fiber
{
    dim3 threadIdx, blockIdx, blockDim, gridDim;
    unsigned linear{0};
    void* sp{nullptr};
    unsigned char* stack{nullptr};
    bool done{false};
    unsigned const* waitGeneration{nullptr}; // the barrier this fiber waits on, or null
    unsigned waitValue{0};
#if !defined(__x86_64__) && !defined(__aarch64__)
    ucontext_t context{};
#endif
};

struct Scheduler
{
    BlockState* block{nullptr};
    std::vector<Fiber> fibers;
    Fiber* current{nullptr};
    void* schedulerSp{nullptr};
#if !defined(__x86_64__) && !defined(__aarch64__)
    ucontext_t schedulerContext{};
#endif
    void (*body)(void*){nullptr};
    void* bodyArg{nullptr};
};

inline thread_local Scheduler* tlsScheduler = nullptr;
inline bool& reverseOrder()
{
    static bool reverse = false;
    return reverse;
}
// Runs the threads of every block in reverse index order (tests run both orders).
inline void setReverseOrder(bool reverse)
{
    reverseOrder() = reverse;
}

inline Fiber& self()
{
    return *tlsScheduler->current;
}

inline void switchToScheduler()
{
    Scheduler& s = *tlsScheduler;
    Fiber& f = *s.current;
#if defined(__x86_64__) || defined(__aarch64__)
    caitEmuSwitch(&f.sp, s.schedulerSp);
#else
    swapcontext(&f.context, &s.schedulerContext);
#endif
}

// Blocks the running fiber until the barrier's generation moves on; the last arrival releases
// the others and returns true without switching.
inline bool arriveAndWait(unsigned& arrived, unsigned& generation, unsigned count)
{
    if (++arrived == count)
    {
        arrived = 0;
        ++generation;
        return true;
    }
    Fiber& f = self();
    f.waitGeneration = &generation;
    f.waitValue = generation;
    switchToScheduler();
    return false;
}

inline void syncthreads()
{
    BlockState& b = *tlsScheduler->block;
    arriveAndWait(b.arrived, b.generation, b.nThreads);
}

// A waiting fiber reads the verdict when it resumes, before it can reach the next barrier, and
// the verdict changes only when every thread has reached that one: no fiber misses its own.
inline int syncthreadsOr(int predicate)
{
    BlockState& b = *tlsScheduler->block;
    b.orPending |= predicate != 0 ? 1 : 0;
    if (arriveAndWait(b.arrived, b.generation, b.nThreads))
    {
        b.orResult = b.orPending;
        b.orPending = 0;
    }
    return b.orResult;
}

inline WarpMailbox& mailbox()
{
    return tlsScheduler->block->warps[self().linear / kWarp];
}

inline unsigned laneId()
{
    return self().linear % kWarp;
}

// Lane side of a collective: checks that every lane executes the same collective (the .sync
// .aligned instructions require it; divergent lanes are a bug on the GPU too).
inline void collectiveBegin(WarpMailbox& w, Collective kind, int variant)
{
    if (w.arrived == 0)
    {
        w.kind = kind;
        w.variant = variant;
    }
    else if (w.kind != kind || w.variant != variant)
    {
        std::fprintf(stderr, "cuda_emu: lanes of a warp execute different collectives (%d/%d vs %d/%d)\n",
            static_cast<int>(kind), variant, static_cast<int>(w.kind), w.variant);
        std::abort();
    }
}

// ---- fp16 bits ----------------------------------------------------------------------------------
// A table of all 65536 fp16 values: the emulated mma converts 384 operands per call, and the
// host-side __half2float is a bit-twiddling function call.
inline float const* halfTable()
{
    static std::vector<float> const table = [] {
        std::vector<float> t(65536);
        for (uint32_t b = 0; b < 65536; ++b)
        {
            t[b] = __half2float(__ushort_as_half(static_cast<unsigned short>(b)));
        }
        return t;
    }();
    return table.data();
}

// ---- warp collectives -----------------------------------------------------------------------------
template <typename T>
T shuffle(T v, unsigned mask, int srcLane, int width)
{
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a type wider than 64 bits");
    if (mask != 0xffffffffu || width != static_cast<int>(kWarp))
    {
        std::fprintf(stderr, "cuda_emu: only full-warp shuffles are emulated\n");
        std::abort();
    }
    WarpMailbox& w = mailbox();
    collectiveBegin(w, Collective::kShuffle, 0);
    unsigned const lane = laneId();
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    w.shuffleIn[lane] = bits;
    // Out-of-range sources read the lane's own value, as on the GPU.
    w.shuffleSrc[lane] = srcLane >= 0 && srcLane < static_cast<int>(kWarp) ? srcLane : static_cast<int>(lane);
    if (arriveAndWait(w.arrived, w.generation, kWarp))
    {
        for (unsigned l = 0; l < kWarp; ++l)
        {
            w.shuffleOut[l] = w.shuffleIn[w.shuffleSrc[l]];
        }
    }
    T r;
    std::memcpy(&r, &w.shuffleOut[lane], sizeof(T));
    return r;
}

inline void syncwarp()
{
    WarpMailbox& w = mailbox();
    collectiveBegin(w, Collective::kSyncWarp, 0);
    arriveAndWait(w.arrived, w.generation, kWarp);
}

// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16: lanes 8i..8i+7 give the row addresses
// of matrix i (16 bytes each). Lane l receives, for each matrix i, the two b16 elements at
// (row l/4, columns 2(l%4) and 2(l%4)+1); with .trans at (rows 2(l%4) and 2(l%4)+1, column l/4).
inline void ldmatrix(uint32_t* out, int count, bool trans, void const* rowAddress)
{
    WarpMailbox& w = mailbox();
    collectiveBegin(w, Collective::kLdmatrix, count * 2 + (trans ? 1 : 0));
    unsigned const lane = laneId();
    w.rowAddress[lane] = rowAddress;
    if (arriveAndWait(w.arrived, w.generation, kWarp))
    {
        for (int i = 0; i < count; ++i)
        {
            for (unsigned l = 0; l < kWarp; ++l)
            {
                uint16_t e[2];
                for (int k = 0; k < 2; ++k)
                {
                    unsigned const row = trans ? 2 * (l % 4) + k : l / 4;
                    unsigned const col = trans ? l / 4 : 2 * (l % 4) + k;
                    auto const* src = static_cast<uint16_t const*>(w.rowAddress[8 * i + row]);
                    if (src == nullptr || reinterpret_cast<uintptr_t>(src) % 16 != 0)
                    {
                        std::fprintf(stderr, "cuda_emu: ldmatrix row address of lane %u is not 16-byte aligned\n",
                            8 * i + row);
                        std::abort();
                    }
                    e[k] = src[col];
                }
                w.regOut[l][i] = static_cast<uint32_t>(e[0]) | (static_cast<uint32_t>(e[1]) << 16);
            }
        }
    }
    for (int i = 0; i < count; ++i)
    {
        out[i] = w.regOut[lane][i];
    }
}

// mma.sync.aligned.m16n8k{16,8}.row.col.f32.f16.f16.f32, with g = lane/4, t = lane%4:
//  A (16 x K, row): k16: reg0 (g, 2t..2t+1), reg1 (g+8, 2t..), reg2 (g, 2t+8..), reg3 (g+8, 2t+8..);
//                   k8:  reg0 (g, 2t..2t+1), reg1 (g+8, 2t..)
//  B (K x 8, col):  k16: reg0 (k 2t..2t+1, n g), reg1 (k 2t+8..2t+9, n g); k8: reg0 (k 2t..2t+1, n g)
//  C, D (16 x 8):   c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
// The low half of a register is the lower column (A) or row (B) index. Products of fp16 values
// are exact in fp32; the sum is accumulated in fp32 in k order.
inline void mma(float* d, uint32_t const* a, uint32_t const* b, float const* c, int K)
{
    WarpMailbox& w = mailbox();
    collectiveBegin(w, Collective::kMma, K);
    unsigned const lane = laneId();
    int const aRegs = K == 16 ? 4 : 2;
    int const bRegs = K == 16 ? 2 : 1;
    for (int i = 0; i < aRegs; ++i)
    {
        w.regIn[lane][i] = a[i];
    }
    for (int i = 0; i < bRegs; ++i)
    {
        w.regIn[lane][4 + i] = b[i];
    }
    for (int i = 0; i < 4; ++i)
    {
        w.accIn[lane][i] = c[i];
    }
    if (arriveAndWait(w.arrived, w.generation, kWarp))
    {
        float const* half = halfTable();
        float A[16][16];
        float B[16][8];
        float C[16][8];
        for (unsigned l = 0; l < kWarp; ++l)
        {
            unsigned const g = l / 4;
            unsigned const t = l % 4;
            for (int h = 0; h < 2; ++h)
            {
                A[g][2 * t + h] = half[(w.regIn[l][0] >> (16 * h)) & 0xffffu];
                A[g + 8][2 * t + h] = half[(w.regIn[l][1] >> (16 * h)) & 0xffffu];
                B[2 * t + h][g] = half[(w.regIn[l][4] >> (16 * h)) & 0xffffu];
                if (K == 16)
                {
                    A[g][2 * t + 8 + h] = half[(w.regIn[l][2] >> (16 * h)) & 0xffffu];
                    A[g + 8][2 * t + 8 + h] = half[(w.regIn[l][3] >> (16 * h)) & 0xffffu];
                    B[2 * t + 8 + h][g] = half[(w.regIn[l][5] >> (16 * h)) & 0xffffu];
                }
                C[g][2 * t + h] = w.accIn[l][h];
                C[g + 8][2 * t + h] = w.accIn[l][2 + h];
            }
        }
        // k outside n: every C element still accumulates in k order, and the n loop vectorizes.
        for (int m = 0; m < 16; ++m)
        {
            for (int k = 0; k < K; ++k)
            {
                float const a = A[m][k];
                for (int n = 0; n < 8; ++n)
                {
                    C[m][n] += a * B[k][n];
                }
            }
        }
        for (unsigned l = 0; l < kWarp; ++l)
        {
            unsigned const g = l / 4;
            unsigned const t = l % 4;
            w.accOut[l][0] = C[g][2 * t];
            w.accOut[l][1] = C[g][2 * t + 1];
            w.accOut[l][2] = C[g + 8][2 * t];
            w.accOut[l][3] = C[g + 8][2 * t + 1];
        }
    }
    for (int i = 0; i < 4; ++i)
    {
        d[i] = w.accOut[lane][i];
    }
}

// ---- launch ---------------------------------------------------------------------------------------
inline void fiberMain()
{
    Scheduler& s = *tlsScheduler;
    s.body(s.bodyArg);
    s.current->done = true;
    switchToScheduler();
    std::abort(); // a finished fiber is never resumed
}

#if !defined(__x86_64__) && !defined(__aarch64__)
inline void fiberTrampoline()
{
    fiberMain();
}
#endif

inline void prepareFiber(Fiber& f)
{
#if defined(__x86_64__)
    // [top-8]: dummy return address of fiberMain; [top-16]: fiberMain (popped by `ret`);
    // then rbp, rbx, r12..r15 (zero) and the saved mxcsr / x87 control word.
    auto* top = reinterpret_cast<uint64_t*>(f.stack + kFiberStack);
    uint64_t* sp = top - 2;
    sp[0] = reinterpret_cast<uint64_t>(&fiberMain);
    sp[1] = 0;
    sp -= 6;
    std::memset(sp, 0, 6 * sizeof(uint64_t));
    sp -= 1;
    uint32_t control[2];
    asm volatile("stmxcsr %0" : "=m"(control[0]));
    asm volatile("fnstcw %0" : "=m"(control[1]));
    std::memcpy(sp, control, sizeof(control));
    f.sp = sp;
#elif defined(__aarch64__)
    // A 176-byte frame whose saved x30 (link register) is fiberMain.
    auto* top = f.stack + kFiberStack;
    auto* frame = reinterpret_cast<uint64_t*>(top - 176);
    std::memset(frame, 0, 176);
    frame[11] = reinterpret_cast<uint64_t>(&fiberMain);
    f.sp = frame;
#else
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = kFiberStack;
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiberTrampoline, 0);
#endif
}

inline void resume(Scheduler& s, Fiber& f)
{
    s.current = &f;
#if defined(__x86_64__) || defined(__aarch64__)
    caitEmuSwitch(&s.schedulerSp, f.sp);
#else
    swapcontext(&s.schedulerContext, &f.context);
#endif
}

// Stacks are mapped once per host thread and reused by every launch.
inline unsigned char* fiberStack(unsigned index)
{
    thread_local std::vector<unsigned char*> stacks;
    while (stacks.size() <= index)
    {
        void* p = mmap(nullptr, kFiberStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            -1, 0);
        if (p == MAP_FAILED)
        {
            std::fprintf(stderr, "cuda_emu: cannot map a fiber stack\n");
            std::abort();
        }
        stacks.push_back(static_cast<unsigned char*>(p));
    }
    return stacks[index];
}

// Runs one block to completion: fibers in index order (or reversed), each until its next
// barrier, round after round.
inline void runBlock(Scheduler& s)
{
    unsigned const n = static_cast<unsigned>(s.fibers.size());
    bool const reverse = reverseOrder();
    for (;;)
    {
        bool progressed = false;
        bool allDone = true;
        for (unsigned k = 0; k < n; ++k)
        {
            Fiber& f = s.fibers[reverse ? n - 1 - k : k];
            if (f.done)
            {
                continue;
            }
            allDone = false;
            if (f.waitGeneration != nullptr && *f.waitGeneration == f.waitValue)
            {
                continue;
            }
            f.waitGeneration = nullptr;
            resume(s, f);
            progressed = true;
        }
        if (allDone)
        {
            return;
        }
        if (!progressed)
        {
            std::fprintf(stderr, "cuda_emu: barrier deadlock (a __syncthreads/__syncwarp or warp collective "
                                 "not reached by every thread)\n");
            std::abort();
        }
    }
}

// Runs every block of the grid, one block at a time, one fiber per CUDA thread.
template <typename... KArgs, typename... Args>
cudaError_t launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smemBytes, Args... args)
{
    unsigned const nThreads = block.x * block.y * block.z;
    if (nThreads == 0 || nThreads % kWarp != 0 || nThreads > 1024)
    {
        std::fprintf(stderr, "cuda_emu: block size must be a multiple of 32 and <= 1024\n");
        return cudaErrorInvalidValue;
    }
    BlockState state;
    state.nThreads = nThreads;
    state.warps.resize(nThreads / kWarp);
    // Poisoned with 0xff bytes (NaN as float, NaN as half): a read of shared memory that the
    // kernel never wrote shows up as NaN in the output. 16-byte aligned, as on the GPU.
    std::vector<unsigned char> smemStorage(smemBytes + 32, 0xff);
    auto const aligned = (reinterpret_cast<uintptr_t>(smemStorage.data()) + 15) & ~uintptr_t{15};
    state.dynamicSmem = reinterpret_cast<unsigned char*>(aligned);

    auto call = [&](void*) { kernel(args...); };
    using Call = decltype(call);
    Scheduler s;
    Scheduler* const outer = tlsScheduler;
    tlsScheduler = &s;
    s.block = &state;
    s.body = [](void* p) { (*static_cast<Call*>(p))(nullptr); };
    s.bodyArg = &call;
    s.fibers.resize(nThreads);
    unsigned const nBlocks = grid.x * grid.y * grid.z;
    for (unsigned i = 0; i < nBlocks; ++i)
    {
        // Reverse order reverses the blocks too: code that relies on which block runs last fails.
        unsigned const b = reverseOrder() ? nBlocks - 1 - i : i;
        std::memset(smemStorage.data(), 0xff, smemStorage.size());
        for (auto& w : state.warps)
        {
            w = WarpMailbox{};
        }
        state.arrived = 0;
        state.orPending = 0;
        for (unsigned t = 0; t < nThreads; ++t)
        {
            Fiber& f = s.fibers[t];
            f = Fiber{};
            f.linear = t;
            f.blockDim = block;
            f.gridDim = grid;
            f.threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            f.blockIdx = dim3(b % grid.x, (b / grid.x) % grid.y, b / (grid.x * grid.y));
            f.stack = fiberStack(t);
            prepareFiber(f);
        }
        runBlock(s);
    }
    tlsScheduler = outer;
    return cudaSuccess;
}

} // namespace cuda_emu

#define threadIdx (cuda_emu::self().threadIdx)
#define blockIdx (cuda_emu::self().blockIdx)
#define blockDim (cuda_emu::self().blockDim)
#define gridDim (cuda_emu::self().gridDim)

inline void __syncthreads()
{
    cuda_emu::syncthreads();
}
inline int __syncthreads_or(int predicate)
{
    return cuda_emu::syncthreadsOr(predicate);
}
inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    if (mask != 0xffffffffu)
    {
        std::fprintf(stderr, "cuda_emu: only full-warp __syncwarp is emulated\n");
        std::abort();
    }
    cuda_emu::syncwarp();
}
inline void __threadfence_block() {}
inline void __threadfence() {} // one host thread runs the whole grid: nothing to order
template <typename T>
T __ldcg(T const* p)
{
    return *p;
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32)
{
    return cuda_emu::shuffle(v, mask, static_cast<int>(cuda_emu::laneId() ^ static_cast<unsigned>(laneMask)), width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    return cuda_emu::shuffle(v, mask, static_cast<int>(cuda_emu::laneId() + delta), width);
}
template <typename T>
T __shfl_sync(unsigned mask, T v, int srcLane, int width = 32)
{
    return cuda_emu::shuffle(v, mask, srcLane % 32, width);
}
// One host thread runs a block, so atomics need no lock.
inline float atomicAdd(float* p, float v)
{
    float const old = *p;
    *p = old + v;
    return old;
}
inline int atomicAdd(int* p, int v)
{
    int const old = *p;
    *p = old + v;
    return old;
}
inline int atomicMax(int* p, int v)
{
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

#define CAIT_EMU_DYNAMIC_SMEM() (cuda_emu::tlsScheduler->block->dynamicSmem)
