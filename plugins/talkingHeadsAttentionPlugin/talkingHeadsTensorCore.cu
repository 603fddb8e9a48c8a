// Tensor-core talking-heads attention (sm_80+, fp16 I/O, head size 48, H in {4, 6, 8, 16}).
// Design, shared-memory budget and performance model: README.md next to this file.
//
// A block owns `rows` (<= 32) query rows of one image, processed as T = 1 or 2 tiles of 16 rows,
// and all H heads; one warp per head. Every GEMM is an mma.sync.m16n8k16 with fp32 accumulators,
// and nothing of the H x N x N score tensor leaves shared memory. Per key chunk of 32:
//  (A1) scores  S_h = Q_h K_h^T       warp h; Q_h stays in registers, K_h goes from global memory
//                                     straight into B fragments, loaded once for the T row tiles;
//                                     S goes to shared memory in fp32.
//  (A2) pre-mix S' = W_pre S + b      a GEMM over the head axis: M = output heads, N = 8 keys,
//                                     K = input heads. With H <= 8 the weights are block-diagonal
//                                     over 16 / Hp rows (Hp = H padded to 4, 8 or 16), so one mma
//                                     mixes 2 or 4 query rows. fp16 hi + lo parts of S and W
//                                     (3 mmas) make it as exact as fp32. Then the online softmax
//                                     statistics, and 2^(s - max) stored as fp16.
// After the last chunk (one pass) or per chunk of a second pass:
//  (B1) post-mix P' = W_post P + b    the same block-diagonal GEMM, in place in shared memory; the
//                                     softmax normalization of each chunk is folded into W_post.
//  (B2) O_h += P'_h V_h               warp h; V goes from global memory straight into B
//                                     fragments, loaded once for the T row tiles; O stays in
//                                     registers.
//
// One pass keeps the fp16 exp-scores of all N keys of the block's rows in shared memory, so every
// score is computed and exponentiated once. When that does not fit, two passes: the first
// computes the softmax statistics, the second recomputes each chunk's scores, normalizes them
// and accumulates P'V; shared memory is then independent of N.
//
// Operand permutation: the contraction of Q K^T runs over the head channels in an order chosen
// so that each thread's A and B fragment elements are 12 consecutive channels (three 8-byte
// loads per row instead of twelve 2-byte loads); for P'V the output channels of two n-tiles are
// interleaved so that one 4-byte load of V serves both, and each thread ends with 4 consecutive
// output channels (one 8-byte store).
#include "talkingHeadsAttentionPlugin/talkingHeadsAttentionKernel.h"

#include "common/kernelCompat.h"
#include "common/warpMma.h"

#include <type_traits>

namespace cait
{
// A named namespace (not an anonymous one): for architectures below sm_80 the kernel body is
// compiled out, and nvcc would warn about every unreferenced internal-linkage constant.
namespace tensorcore
{

constexpr int32_t kTile = 16;                       // mma M: query rows per tile
constexpr int32_t kChunk = 32;                      // keys per chunk
constexpr int32_t kKSteps = kThTcHeadSize / 16;     // k16 steps over the head channels
constexpr int32_t kSRow = kChunk + 8;               // score row stride (floats): the float2 stores of a
                                                    // half-warp hit 32 distinct banks

__host__ __device__ inline int32_t groupRows(int32_t heads)
{
    return heads <= 4 ? 4 : (heads <= 8 ? 2 : 1);
}

// Rows of the kernel instance that runs a plan of `rows` query rows: T = 1 (16) up to 16 rows, else
// T = 2 (32). The layout, the launch and the split workspace all follow this one choice.
__host__ __device__ constexpr int32_t tileRowsOf(int32_t rows)
{
    return rows > kTile ? 2 * kTile : kTile;
}

__host__ __device__ constexpr bool qInSharedMemory(int32_t heads, int32_t tileRows)
{
    return heads * kWarpSize > 256 && tileRows > kTile;
}

template <int32_t H, int32_t T>
struct TcShape
{
    static constexpr int32_t kHp = H <= 4 ? 4 : (H <= 8 ? 8 : 16); // head axis padded to a divisor of 16
    static constexpr int32_t kGroupRows = 16 / kHp;                // query rows per mix mma
    static constexpr int32_t kRows = kTile * T;
    static constexpr int32_t kGroups = kRows / kGroupRows;
    static constexpr int32_t kWarps = H;                           // one head per warp
    static constexpr int32_t kThreads = kWarps * kWarpSize;
    static constexpr int32_t kGroupSlots = (kGroups + kWarps - 1) / kWarps;
    static constexpr int32_t kC = H * kThTcHeadSize;
    static constexpr int64_t kTokenStride = 3 * kC;                // halves per token in qkv
    // n-tiles of K loaded ahead in the score phase (6 loads in flight per thread).
    static constexpr int32_t kKeyTilesAhead = 2;
    // 512-thread blocks get 128 registers per thread: with two row tiles the Q fragments go to
    // shared memory (in fragment order, read back with ldmatrix) instead of 24 registers.
    static constexpr bool kQInSmem = qInSharedMemory(H, kRows);
    static constexpr int32_t kQRegTiles = kQInSmem ? 1 : T;
    static constexpr int32_t kSHead = kRows * kSRow + 4;           // score head stride (floats): the
                                                                   // B-fragment loads of the mix hit
                                                                   // distinct banks
};

struct TcLayout
{
    int32_t nChunks;
    int32_t ePitch;     // keys per (row, head) in the exp-score buffer
    int32_t rowsStored; // rows of the exp buffer: `rows` rounded up to whole mix groups
    size_t scoreOff, expOff, refOff, statOff, coefOff, qOff, zeroOff, total;
};

__host__ __device__ inline size_t align16(size_t x)
{
    return (x + 15) & ~size_t{15};
}

// Shared memory, in this order: fp32 scores of one chunk [H][16 T][kSRow] (+4 per head); fp16
// exp-scores [rowsStored][H][ePitch]; one pass only: the fp32 running max each chunk was
// exponentiated against [rowsStored][H][nChunks]; final statistics (max, 1/sum) [16 T][H] x 2;
// W_post [H][H] and the two biases [H] x 2 (read per chunk: shared memory rather than registers,
// the limit of the 512-thread blocks); with qInSharedMemory the Q fragments [H][16 T][48] in
// fragment order; 16 bytes of zeros that padded rows of ldmatrix read.
__host__ __device__ inline TcLayout tcLayout(bool onePass, int32_t rows, int32_t heads, int32_t tokens)
{
    TcLayout L{};
    int32_t const tileRows = tileRowsOf(rows);
    int32_t const g = groupRows(heads);
    L.nChunks = (tokens + kChunk - 1) / kChunk;
    L.ePitch = onePass ? L.nChunks * kChunk : kChunk;
    L.rowsStored = (rows + g - 1) / g * g;
    L.scoreOff = 0;
    L.expOff = align16(static_cast<size_t>(heads) * (tileRows * kSRow + 4) * sizeof(float));
    L.refOff = align16(L.expOff + static_cast<size_t>(L.rowsStored) * heads * L.ePitch * sizeof(__half));
    size_t const refBytes = onePass ? static_cast<size_t>(L.rowsStored) * heads * L.nChunks * sizeof(float) : 0;
    L.statOff = align16(L.refOff + refBytes);
    L.coefOff = align16(L.statOff + 2 * static_cast<size_t>(tileRows) * heads * sizeof(float));
    L.qOff = align16(L.coefOff + static_cast<size_t>(heads + 2) * heads * sizeof(float));
    size_t const qBytes = qInSharedMemory(heads, tileRows)
        ? static_cast<size_t>(heads) * tileRows * kThTcHeadSize * sizeof(__half)
        : 0;
    L.zeroOff = align16(L.qOff + qBytes);
    L.total = L.zeroOff + 16;
    return L;
}

// Per-thread state shared by the phases.
template <int32_t H, int32_t T>
struct TcThread
{
    using S = TcShape<H, T>;
    int32_t lane, warp, g, t;
    // Q_h A fragments (16 rows x channels) of this warp's head, per row tile and k16 step (none
    // with S::kQInSmem).
    uint32_t qa[S::kQRegTiles][kKSteps][4];
    // Block-diagonal W_pre * scale * log2(e) as A fragments (rows = (row, out head), columns =
    // (row, in head)), fp16 hi and lo parts. W_post and the biases stay in shared memory.
    uint32_t preHi[4], preLo[4];
    // The (row within the mix group, head) of accumulator rows g and g + 8: cheap enough to
    // recompute, and registers are the limit of the 512-thread blocks.
    __device__ __forceinline__ int32_t slotRow(int32_t s) const
    {
        return (g + 8 * s) / S::kHp;
    }
    __device__ __forceinline__ int32_t slotHead(int32_t s) const
    {
        return (g + 8 * s) % S::kHp;
    }
    // Softmax statistics (log2 domain) of this warp's groups, for accumulator rows g and g + 8:
    // the running max and the sum of 2^(s - max).
    float runMax[S::kGroupSlots][2];
    float runSum[S::kGroupSlots][2];
    // P'V accumulators: per row tile, 16 rows x 48 channels as 6 n-tiles.
    float acc[T][2 * kKSteps][4];
};

// Block-diagonal weight of A fragment element (reg i, half e) of this thread: row m = g + 8 (i & 1),
// column k = 2t + 8 (i >> 1) + e; m = (row m / Hp, head m % Hp), k likewise; zero unless the
// rows agree.
template <int32_t H, int32_t T>
__device__ __forceinline__ float blockDiagonal(TcThread<H, T> const& th, float const* w, int32_t i, int32_t e)
{
    using S = TcShape<H, T>;
    int32_t const m = th.g + 8 * (i & 1);
    int32_t const k = 2 * th.t + 8 * (i >> 1) + e;
    int32_t const o = m % S::kHp;
    int32_t const h = k % S::kHp;
    return m / S::kHp == k / S::kHp && o < H && h < H ? w[o * H + h] : 0.F;
}

// Q fragments of one row tile. Channel order of the contraction: step s, thread t holds slots
// (2t, 2t+1) = channels 12t + 4s + {0, 1} and slots (2t+8, 2t+9) = channels 12t + 4s + {2, 3}; K
// uses the same order, so the dot products are unchanged.
template <int32_t H, int32_t T>
__device__ __forceinline__ void loadQ(TcThread<H, T> const& th, uint32_t (&qa)[kKSteps][4], __half const* base,
    int32_t row0, int32_t nRows, int32_t tile)
{
    using S = TcShape<H, T>;
#pragma unroll
    for (int32_t half = 0; half < 2; ++half)
    {
        int32_t const r = tile * kTile + th.g + 8 * half;
        __half const* src = base + (row0 + r) * S::kTokenStride + th.warp * kThTcHeadSize + 12 * th.t;
#pragma unroll
        for (int32_t s = 0; s < kKSteps; ++s)
        {
            uint2 const v = r < nRows ? load64(src + 4 * s) : make_uint2(0U, 0U);
            qa[s][half] = v.x;
            qa[s][2 + half] = v.y;
        }
    }
}

template <int32_t H, int32_t T>
__device__ __forceinline__ void tcSetup(TcThread<H, T>& th, TalkingHeadsParams const& p, __half const* base,
    int32_t row0, int32_t nRows, float* coef, __half* qBuf)
{
    using S = TcShape<H, T>;
    constexpr float kLog2e = 1.4426950408889634F; // the softmax runs in base 2: exp(x) = 2^(x log2 e)
    // coef: W_post [H][H], then b_pre * log2(e) [H], b_post [H].
    for (int32_t e = static_cast<int32_t>(threadIdx.x); e < H * H; e += S::kThreads)
    {
        coef[e] = p.postWeight[e];
    }
    for (int32_t e = static_cast<int32_t>(threadIdx.x); e < H; e += S::kThreads)
    {
        coef[H * H + e] = p.preBias[e] * kLog2e;
        coef[H * H + H + e] = p.postBias[e];
    }
#pragma unroll
    for (int32_t i = 0; i < 4; ++i)
    {
        float w[2], lo[2];
#pragma unroll
        for (int32_t e = 0; e < 2; ++e)
        {
            w[e] = blockDiagonal(th, p.preWeight, i, e) * p.scale * kLog2e;
            lo[e] = w[e] - __half2float(__float2half_rn(w[e]));
        }
        th.preHi[i] = packHalf2(w[0], w[1]);
        th.preLo[i] = packHalf2(lo[0], lo[1]);
    }
#pragma unroll
    for (int32_t gs = 0; gs < S::kGroupSlots; ++gs)
    {
#pragma unroll
        for (int32_t s = 0; s < 2; ++s)
        {
            th.runMax[gs][s] = -INFINITY;
            th.runSum[gs][s] = 0.F;
        }
    }
#pragma unroll
    for (int32_t tile = 0; tile < T; ++tile)
    {
        if constexpr (S::kQInSmem)
        {
            // Register i of k-step s at the place ldmatrix.x4 delivers it from: row g + 8 (i & 1),
            // column 16 s + 8 (i >> 1) + 2t of this head's [16 T][48] block.
            uint32_t q[kKSteps][4];
            loadQ<H, T>(th, q, base, row0, nRows, tile);
#pragma unroll
            for (int32_t st = 0; st < kKSteps; ++st)
            {
#pragma unroll
                for (int32_t i = 0; i < 4; ++i)
                {
                    int32_t const r = tile * kTile + th.g + 8 * (i & 1);
                    __half* dst = qBuf + (th.warp * S::kRows + r) * kThTcHeadSize + 16 * st + 8 * (i >> 1) + 2 * th.t;
                    *reinterpret_cast<uint32_t*>(dst) = q[st][i];
                }
            }
        }
        else
        {
            loadQ<H, T>(th, th.qa[tile], base, row0, nRows, tile);
        }
    }
}

// Zeroes the P'V accumulators right before the P'V phase, so that they hold no registers
// during the first pass.
template <int32_t H, int32_t T>
__device__ __forceinline__ void tcZeroAccumulators(TcThread<H, T>& th)
{
#pragma unroll
    for (int32_t tile = 0; tile < T; ++tile)
    {
#pragma unroll
        for (int32_t n = 0; n < 2 * kKSteps; ++n)
        {
#pragma unroll
            for (int32_t e = 0; e < 4; ++e)
            {
                th.acc[tile][n][e] = 0.F;
            }
        }
    }
}

// (A1) fp32 scores of keys [j0, j0 + 32) of this warp's head, every row tile, into the score buffer.
// kTail: the chunk reaches past N (keys past it score 0, masked later); else no key is checked.
template <int32_t H, int32_t T, bool kTail>
__device__ __forceinline__ void tcScores(
    TcThread<H, T> const& th, __half const* base, int32_t N, int32_t j0, float* scores, __half const* qBuf)
{
    using S = TcShape<H, T>;
    constexpr int32_t kTiles = kChunk / 8;
    int32_t const h = th.warp;
    // Keys in groups of S::kKeyTilesAhead n-tiles, their 8-byte loads in flight together.
    constexpr int32_t kAhead = S::kKeyTilesAhead;
#pragma unroll
    for (int32_t n0 = 0; n0 < kTiles; n0 += kAhead)
    {
        uint2 kf[kAhead][kKSteps];
#pragma unroll
        for (int32_t n = 0; n < kAhead; ++n)
        {
            int32_t const key = j0 + (n0 + n) * 8 + th.g;
            __half const* src = base + key * S::kTokenStride + S::kC + h * kThTcHeadSize + 12 * th.t;
#pragma unroll
            for (int32_t s = 0; s < kKSteps; ++s)
            {
                kf[n][s] = !kTail || key < N ? load64(src + 4 * s) : make_uint2(0U, 0U);
            }
        }
#pragma unroll
        for (int32_t n = 0; n < kAhead; ++n)
        {
#pragma unroll
            for (int32_t tile = 0; tile < T; ++tile)
            {
                float d[4] = {0.F, 0.F, 0.F, 0.F};
#pragma unroll
                for (int32_t s = 0; s < kKSteps; ++s)
                {
                    uint32_t const b[2] = {kf[n][s].x, kf[n][s].y};
                    if constexpr (S::kQInSmem)
                    {
                        int32_t const mat = th.lane >> 3;
                        uint32_t q[4];
                        ldmatrixX4(q, qBuf + (h * S::kRows + tile * kTile + (mat & 1) * 8 + (th.lane & 7)) * kThTcHeadSize
                                + 16 * s + 8 * (mat >> 1));
                        mmaM16N8K16(d, q, b);
                    }
                    else
                    {
                        mmaM16N8K16(d, th.qa[tile][s], b);
                    }
                }
                float* dst = scores + h * S::kSHead + (tile * kTile + th.g) * kSRow + (n0 + n) * 8 + 2 * th.t;
                *reinterpret_cast<float2*>(dst) = make_float2(d[0], d[1]);
                *reinterpret_cast<float2*>(dst + 8 * kSRow) = make_float2(d[2], d[3]);
            }
        }
    }
}

enum class ExpMode : int32_t
{
    kStatsOnly, // pass 1 of two: statistics only
    kRelative,  // one pass: 2^(s - running max), the max recorded per chunk
    kNormalized // pass 2 of two: final probabilities
};

// (A2) pre-mix of mix group `grp` (rows grp * G ...), keys [j0, j0 + 32): S' = W_pre S + b, the
// softmax statistics, and the exp-scores into the exp buffer at column `col0`.
template <int32_t H, int32_t T, ExpMode kMode, bool kTail>
__device__ __forceinline__ void tcPremix(TcThread<H, T>& th, int32_t gs, int32_t grp, int32_t N, int32_t j0,
    float const* scores, __half* expBuf, int32_t ePitch, int32_t col0, float* refs, int32_t nChunks,
    float const* coef, float const* statMax, float const* statInv)
{
    using S = TcShape<H, T>;
    constexpr int32_t kTiles = kChunk / 8;
    int32_t const rowBase = grp * S::kGroupRows;
    float const bias0 = th.slotHead(0) < H ? coef[H * H + th.slotHead(0)] : 0.F;
    float const bias1 = th.slotHead(1) < H ? coef[H * H + th.slotHead(1)] : 0.F;

    // S' of n-tile nt (8 keys): accumulator layout (row slotRow(s), head slotHead(s)) x keys 2t,
    // 2t+1 in d[2s .. 2s+1]; keys past N are -inf.
    auto mixTile = [&](int32_t nt, float (&d)[4]) {
        // B fragment (k = (row, input head), n = key g): reg j holds k = 2t + 8j, +1.
        uint32_t bHi[2], bLo[2];
#pragma unroll
        for (int32_t j = 0; j < 2; ++j)
        {
            float x[2];
#pragma unroll
            for (int32_t e = 0; e < 2; ++e)
            {
                int32_t const k = 2 * th.t + 8 * j + e;
                int32_t const h = k % S::kHp;
                int32_t const r = rowBase + k / S::kHp;
                x[e] = h < H ? scores[h * S::kSHead + r * kSRow + nt * 8 + th.g] : 0.F;
            }
            bHi[j] = packHalf2(x[0], x[1]);
            bLo[j] = packHalf2(x[0] - lowHalfToFloat(bHi[j]), x[1] - highHalfToFloat(bHi[j]));
        }
        d[0] = d[1] = bias0;
        d[2] = d[3] = bias1;
        // hi*hi + hi*lo + lo*hi: the dropped lo*lo term is 2^-22 relative.
        mmaM16N8K16(d, th.preHi, bHi);
        mmaM16N8K16(d, th.preHi, bLo);
        mmaM16N8K16(d, th.preLo, bHi);
        if constexpr (kTail) // only the last chunk has keys past N
        {
#pragma unroll
            for (int32_t e = 0; e < 2; ++e)
            {
                if (j0 + nt * 8 + 2 * th.t + e >= N)
                {
                    d[e] = -INFINITY;
                    d[2 + e] = -INFINITY;
                }
            }
        }
    };
    auto store = [&](int32_t nt, float const (&e)[4]) {
#pragma unroll
        for (int32_t s = 0; s < 2; ++s)
        {
            if (th.slotHead(s) < H)
            {
                __half* dst = expBuf + ((rowBase + th.slotRow(s)) * H + th.slotHead(s)) * ePitch + col0 + nt * 8
                    + 2 * th.t;
                *reinterpret_cast<uint32_t*>(dst) = packHalf2(e[2 * s], e[2 * s + 1]);
            }
        }
    };

    if constexpr (kMode == ExpMode::kNormalized)
    {
        // Final statistics (max, 1 / sum) from shared memory, one n-tile at a time: the fewest live
        // registers, for the 512-thread blocks.
        float stat[2][2];
#pragma unroll
        for (int32_t s = 0; s < 2; ++s)
        {
            int32_t const idx = (rowBase + th.slotRow(s)) * H + th.slotHead(s);
            stat[s][0] = th.slotHead(s) < H ? statMax[idx] : 0.F;
            stat[s][1] = th.slotHead(s) < H ? statInv[idx] : 0.F;
        }
#pragma unroll
        for (int32_t nt = 0; nt < kTiles; ++nt)
        {
            float d[4];
            mixTile(nt, d);
            float e[4];
#pragma unroll
            for (int32_t k = 0; k < 4; ++k)
            {
                e[k] = fastExp2(d[k] - stat[k >> 1][0]) * stat[k >> 1][1];
            }
            store(nt, e);
        }
        return;
    }
    else
    {
        float d[kTiles][4];
#pragma unroll
        for (int32_t nt = 0; nt < kTiles; ++nt)
        {
            mixTile(nt, d[nt]);
        }
        // A quad holds all 8 keys of a tile: row statistics need two shuffles.
        float ref[2];
#pragma unroll
        for (int32_t s = 0; s < 2; ++s)
        {
            float m = -INFINITY;
#pragma unroll
            for (int32_t nt = 0; nt < kTiles; ++nt)
            {
                m = fmaxf(m, fmaxf(d[nt][2 * s], d[nt][2 * s + 1]));
            }
            m = fmaxf(m, __shfl_xor_sync(0xffffffffU, m, 1));
            m = fmaxf(m, __shfl_xor_sync(0xffffffffU, m, 2));
            float const newMax = fmaxf(th.runMax[gs][s], m);
            // 2^(-inf) = 0 rescales the empty sum of the first chunk.
            th.runSum[gs][s] *= fastExp2(th.runMax[gs][s] - newMax);
            th.runMax[gs][s] = newMax;
            ref[s] = newMax;
        }
        float sum[2] = {0.F, 0.F};
#pragma unroll
        for (int32_t nt = 0; nt < kTiles; ++nt)
        {
            float e[4];
#pragma unroll
            for (int32_t k = 0; k < 4; ++k)
            {
                e[k] = fastExp2(d[nt][k] - ref[k >> 1]);
                sum[k >> 1] += e[k];
            }
            if constexpr (kMode == ExpMode::kRelative)
            {
                store(nt, e);
            }
        }
#pragma unroll
        for (int32_t s = 0; s < 2; ++s)
        {
            float v = sum[s];
            v += __shfl_xor_sync(0xffffffffU, v, 1);
            v += __shfl_xor_sync(0xffffffffU, v, 2);
            th.runSum[gs][s] += v;
            if (kMode == ExpMode::kRelative && th.t == 0 && th.slotHead(s) < H)
            {
                refs[((rowBase + th.slotRow(s)) * H + th.slotHead(s)) * nChunks + j0 / kChunk] = ref[s];
            }
        }
    }
}

// (B1) post-mix of mix group `grp`, columns [c0, c0 + 32) of the exp buffer (keys from keyBase),
// in place: P' = (W_post diag(f)) E + b, f scaling each (row, input head)'s exp-scores to
// probabilities (1 when they already are). Keys >= N (kTail only) get 0 (the bias would make them
// non-zero).
template <int32_t H, int32_t T, bool kTail>
__device__ __forceinline__ void tcPostmix(TcThread<H, T> const& th, int32_t grp, __half* expBuf, int32_t ePitch,
    int32_t c0, int32_t keyBase, int32_t N, float const (&f)[2][2], float const* coef, void const* zero)
{
    using S = TcShape<H, T>;
    int32_t const rowBase = grp * S::kGroupRows;
    uint32_t a[4];
#pragma unroll
    for (int32_t i = 0; i < 4; ++i)
    {
        a[i] = packHalf2(
            blockDiagonal(th, coef, i, 0) * f[i >> 1][0], blockDiagonal(th, coef, i, 1) * f[i >> 1][1]);
    }
    float const bias0 = th.slotHead(0) < H ? coef[H * H + H + th.slotHead(0)] : 0.F;
    float const bias1 = th.slotHead(1) < H ? coef[H * H + H + th.slotHead(1)] : 0.F;
    // ldmatrix.x4.trans of matrices (k 0-7 | 8-15) x (keys 0-7 | 8-15): the B fragments of two
    // n-tiles; memory row k = (row k / Hp, input head k % Hp).
    int32_t const mat = th.lane >> 3;
    int32_t const k = (mat & 1) * 8 + (th.lane & 7);
    int32_t const head = k % S::kHp;
    __half* rowPtr = expBuf + ((rowBase + k / S::kHp) * H + head) * ePitch + c0 + (mat >> 1) * 8;
#pragma unroll
    for (int32_t k0 = 0; k0 < kChunk; k0 += 16)
    {
        uint32_t m[4];
        ldmatrixX4<true>(m, head < H ? static_cast<void const*>(rowPtr + k0) : zero);
#pragma unroll
        for (int32_t nt = 0; nt < 2; ++nt)
        {
            uint32_t const b[2] = {m[2 * nt], m[2 * nt + 1]};
            float d[4] = {bias0, bias0, bias1, bias1};
            mmaM16N8K16(d, a, b);
            int32_t const c = c0 + k0 + nt * 8 + 2 * th.t;
            if constexpr (kTail)
            {
                int32_t const key = keyBase + k0 + nt * 8 + 2 * th.t;
#pragma unroll
                for (int32_t e = 0; e < 2; ++e)
                {
                    if (key + e >= N)
                    {
                        d[e] = 0.F;
                        d[2 + e] = 0.F;
                    }
                }
            }
#pragma unroll
            for (int32_t s = 0; s < 2; ++s)
            {
                if (th.slotHead(s) < H)
                {
                    __half* dst = expBuf + ((rowBase + th.slotRow(s)) * H + th.slotHead(s)) * ePitch + c;
                    *reinterpret_cast<uint32_t*>(dst) = packHalf2(d[2 * s], d[2 * s + 1]);
                }
            }
        }
    }
}

// (B2) O_h += P'_h V_h for this warp's head over keys [keyBase, keyBase + count), held at columns
// [c0, c0 + count) of the exp buffer; each V fragment serves every row tile. kTail: the last chunk
// (count = 32, unrolled, keys past N read as 0); else every key is inside and none is checked.
template <int32_t H, int32_t T, bool kTail>
__device__ __forceinline__ void tcAccumulate(TcThread<H, T>& th, __half const* base, int32_t N,
    __half const* expBuf, int32_t ePitch, int32_t c0, int32_t keyBase, int32_t count, int32_t nRows, void const* zero)
{
    using S = TcShape<H, T>;
    int32_t const h = th.warp;
    int32_t const mat = th.lane >> 3;
    int32_t const rowInTile = (mat & 1) * 8 + (th.lane & 7);
    int32_t const keyOff = (mat >> 1) * 8;
    // This lane's V row for key keyBase + k0 + 2t: one 64-bit pointer, advanced per step, so that
    // the other keys and channels it loads sit at compile-time offsets from it (immediates in the
    // load instructions, not a 64-bit multiply-add per key).
    __half const* vRow = base + static_cast<int64_t>(keyBase + 2 * th.t) * S::kTokenStride + 2 * S::kC
        + h * kThTcHeadSize + 2 * th.g;
    auto step = [&](int32_t k0) {
        // B fragments: keys 2t, 2t+1, 2t+8, 2t+9; channels 16v + 2g (+1): the low halves are
        // n-tile 2v, the high halves n-tile 2v + 1.
        uint32_t w[kKSteps][4];
#pragma unroll
        for (int32_t q = 0; q < 4; ++q)
        {
            int32_t const dk = (q & 1) + 8 * (q >> 1);
            bool const inside = !kTail || keyBase + k0 + 2 * th.t + dk < N;
#pragma unroll
            for (int32_t v = 0; v < kKSteps; ++v)
            {
                w[v][q] = inside ? load32(vRow + dk * S::kTokenStride + 16 * v) : 0U;
            }
        }
#pragma unroll
        for (int32_t tile = 0; tile < T; ++tile)
        {
            // A fragment (16 rows x 16 keys) of P'_h: matrices (rows 0-7 | 8-15) x (keys 0-7 | 8-15).
            int32_t const row = tile * kTile + rowInTile;
            void const* addr
                = row < nRows ? static_cast<void const*>(expBuf + (row * H + h) * ePitch + c0 + k0 + keyOff) : zero;
            uint32_t a[4];
            ldmatrixX4(a, addr);
#pragma unroll
            for (int32_t v = 0; v < kKSteps; ++v)
            {
                uint32_t const bEven[2] = {lowHalves(w[v][0], w[v][1]), lowHalves(w[v][2], w[v][3])};
                uint32_t const bOdd[2] = {highHalves(w[v][0], w[v][1]), highHalves(w[v][2], w[v][3])};
                mmaM16N8K16(th.acc[tile][2 * v], a, bEven);
                mmaM16N8K16(th.acc[tile][2 * v + 1], a, bOdd);
            }
        }
        vRow += 16 * S::kTokenStride;
    };
    if constexpr (kTail)
    {
        (void) count;
#pragma unroll
        for (int32_t k0 = 0; k0 < kChunk; k0 += 16)
        {
            step(k0);
        }
    }
    else
    {
#pragma unroll 1
        for (int32_t k0 = 0; k0 < count; k0 += 16)
        {
            step(k0);
        }
    }
}

// Hands emit(offset of channel 4t of the row, 4 channels' values) each output quad this lane
// holds: rows g and g + 8 of every tile, channels 16v + 4t ... (the P'V accumulator layout).
template <int32_t H, int32_t T, typename Emit>
__device__ __forceinline__ void tcForEachOutput(TcThread<H, T> const& th, int32_t nRows, Emit&& emit)
{
    using S = TcShape<H, T>;
#pragma unroll
    for (int32_t tile = 0; tile < T; ++tile)
    {
#pragma unroll
        for (int32_t half = 0; half < 2; ++half)
        {
            int32_t const r = tile * kTile + th.g + 8 * half;
            if (r >= nRows)
            {
                continue;
            }
            int64_t const at = static_cast<int64_t>(r) * S::kC + th.warp * kThTcHeadSize + 4 * th.t;
#pragma unroll
            for (int32_t v = 0; v < kKSteps; ++v)
            {
                float const* ev = th.acc[tile][2 * v];
                float const* od = th.acc[tile][2 * v + 1];
                emit(at + 16 * v, ev[2 * half], od[2 * half], ev[2 * half + 1], od[2 * half + 1]);
            }
        }
    }
}

template <int32_t H, int32_t T>
__device__ __forceinline__ void tcStore(TcThread<H, T> const& th, __half* out, int32_t nRows)
{
    tcForEachOutput<H, T>(th, nRows, [out](int64_t at, float a, float b, float c, float d) {
        store64(out + at, packHalf2(a, b), packHalf2(c, d));
    });
}

// One chunk of keys [j0, j0 + 32): scores (A1), then the pre-mix and softmax (A2) of every mix
// group of this warp, exp-scores at column col0; in pass 2 of two, the post-mix right after (the
// group's exp-scores are this warp's own). Ends at a block barrier: the score buffer is
// rewritten by the next chunk, and P'V reads every warp's groups. kTail: the chunk reaches past
// the N keys (the last one, when 32 does not divide N); only that instantiation checks keys.
template <int32_t H, int32_t T, ExpMode kMode, bool kTail>
__device__ __forceinline__ void tcChunk(TcThread<H, T>& th, __half const* base, int32_t N, int32_t nRows,
    int32_t j0, float* scores, __half const* qBuf, __half* expBuf, TcLayout const& L, int32_t col0, float* refs,
    float const* coef, float const* statMax, float const* statInv, void const* zero)
{
    using S = TcShape<H, T>;
    tcScores<H, T, kTail>(th, base, N, j0, scores, qBuf);
    __syncthreads();
#pragma unroll
    for (int32_t gs = 0; gs < S::kGroupSlots; ++gs)
    {
        int32_t const grp = th.warp + gs * S::kWarps;
        if (grp * S::kGroupRows < nRows)
        {
            tcPremix<H, T, kMode, kTail>(
                th, gs, grp, N, j0, scores, expBuf, L.ePitch, col0, refs, L.nChunks, coef, statMax, statInv);
            if constexpr (kMode == ExpMode::kNormalized)
            {
                float const ones[2][2] = {{1.F, 1.F}, {1.F, 1.F}};
                __syncwarp();
                tcPostmix<H, T, kTail>(th, grp, expBuf, L.ePitch, col0, j0, N, ones, coef, zero);
            }
        }
    }
    __syncthreads();
}

// Runs body(kTail, c) for the key chunks c0 <= c < c1: the chunks wholly inside the N keys with
// std::false_type, then the last one with std::true_type if it reaches past N. Two instantiations
// of the body, so that the loop over whole chunks carries no key check.
template <typename Body>
__device__ __forceinline__ void forEachChunk(int32_t c0, int32_t c1, int32_t N, Body&& body)
{
    int32_t const whole = N / kChunk;
    for (int32_t c = c0; c < (c1 < whole ? c1 : whole); ++c)
    {
        body(std::false_type{}, c);
    }
    if (c0 <= whole && whole < c1)
    {
        body(std::true_type{}, whole);
    }
}

// This warp's groups' softmax statistics, one store per (row, head) by lane t = 0 of the quad that
// holds it. Final (one pass, pass 2 of two): max and 1 / sum into shared memory, where the
// post-mix reads them (`a` and `b`). Partial (one key split's): (max, sum) pairs into the global
// workspace (`a`).
template <int32_t H, int32_t T, bool kPartial>
__device__ __forceinline__ void tcStoreStats(TcThread<H, T> const& th, int32_t nRows, float* a, float* b)
{
    using S = TcShape<H, T>;
#pragma unroll
    for (int32_t gs = 0; gs < S::kGroupSlots; ++gs)
    {
        int32_t const grp = th.warp + gs * S::kWarps;
#pragma unroll
        for (int32_t s = 0; s < 2; ++s)
        {
            int32_t const r = grp * S::kGroupRows + th.slotRow(s);
            if (grp * S::kGroupRows < nRows && th.t == 0 && th.slotHead(s) < H)
            {
                if constexpr (kPartial)
                {
                    float* dst = a + 2 * (r * H + th.slotHead(s));
                    dst[0] = th.runMax[gs][s];
                    dst[1] = th.runSum[gs][s];
                }
                else
                {
                    a[r * H + th.slotHead(s)] = th.runMax[gs][s];
                    b[r * H + th.slotHead(s)] = 1.F / th.runSum[gs][s];
                }
            }
        }
    }
}

// The statistics over all keys from the splits' partial ones: max M = max_s m_s, sum
// L = sum_s l_s 2^(m_s - M) (an empty split has m = -inf, l = 0 and adds nothing).
template <int32_t H, int32_t T>
__device__ __forceinline__ void tcCombineStats(
    TcThread<H, T>& th, float const* partials, int32_t splits, int32_t partialStride)
{
    using S = TcShape<H, T>;
#pragma unroll
    for (int32_t gs = 0; gs < S::kGroupSlots; ++gs)
    {
        int32_t const grp = th.warp + gs * S::kWarps;
#pragma unroll
        for (int32_t s = 0; s < 2; ++s)
        {
            int32_t const idx = 2 * ((grp * S::kGroupRows + th.slotRow(s)) * H + th.slotHead(s));
            float m = -INFINITY;
            float l = 0.F;
            if (th.slotHead(s) < H && grp < S::kGroups)
            {
                for (int32_t k = 0; k < splits; ++k)
                {
                    m = fmaxf(m, partials[k * partialStride + idx]);
                }
                for (int32_t k = 0; k < splits; ++k)
                {
                    float const mk = partials[k * partialStride + idx];
                    l += mk == -INFINITY ? 0.F : partials[k * partialStride + idx + 1] * fastExp2(mk - m);
                }
            }
            th.runMax[gs][s] = m;
            th.runSum[gs][s] = l;
        }
    }
}

// Adds this warp's P'V accumulators (one key split's share) to the fp32 output of the block's
// rows, `acc32` = the first row's channel 0.
template <int32_t H, int32_t T>
__device__ __forceinline__ void tcAtomicAddOutput(TcThread<H, T> const& th, float* acc32, int32_t nRows)
{
    tcForEachOutput<H, T>(th, nRows, [acc32](int64_t at, float a, float b, float c, float d) {
        atomicAdd(acc32 + at, a);
        atomicAdd(acc32 + at + 1, b);
        atomicAdd(acc32 + at + 2, c);
        atomicAdd(acc32 + at + 3, d);
    });
}

// What one launch of the kernel computes.
enum class TcMode : int32_t
{
    kOnePass,     // everything, exp-scores of all keys kept
    kTwoPass,     // everything, scores computed twice
    kSplitStats,  // key split z: partial softmax statistics to the workspace
    kSplitOutput, // key split z: P'V of its keys with the combined statistics, added to fp32 output
};

// Key splits (small grids): the workspace holds the fp32 output [B][N][C], then the partial
// statistics [B][tiles][splits][tileRows][H][2] (tileRows: 16 T).
__host__ __device__ inline size_t splitStatsOffset(int32_t batch, int32_t tokens, int32_t heads)
{
    return static_cast<size_t>(batch) * tokens * heads * kThTcHeadSize;
}

// After the statistics: one arrival counter per (image, tile).
__host__ __device__ inline size_t splitCounterOffset(int32_t batch, int32_t tokens, int32_t heads, int32_t tiles,
    int32_t splits, int32_t tileRows)
{
    return splitStatsOffset(batch, tokens, heads)
        + static_cast<size_t>(batch) * tiles * splits * tileRows * heads * 2;
}

__device__ __forceinline__ float* acc32Tile(float* workspace, uint32_t image, int32_t tokens, int32_t row0, int32_t c)
{
    return workspace + (static_cast<int64_t>(image) * tokens + row0) * c;
}

__device__ __forceinline__ int32_t* splitCounters(
    float* workspace, int32_t batch, int32_t tokens, int32_t heads, int32_t tiles, int32_t tileRows)
{
    return reinterpret_cast<int32_t*>(
        workspace + splitCounterOffset(batch, tokens, heads, tiles, static_cast<int32_t>(gridDim.z), tileRows));
}

template <int32_t H, int32_t T, TcMode kMode>
__global__ void __launch_bounds__(TcShape<H, T>::kThreads, 1) talkingHeadsTensorCoreKernel(TalkingHeadsParams const p,
    int32_t const rows, int32_t const splits, __half const* __restrict__ qkv, __half* __restrict__ out,
    float* __restrict__ workspace)
{
#if defined(CAIT_EMULATION) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
    using S = TcShape<H, T>;
    constexpr bool kOnePass = kMode == TcMode::kOnePass;
    CAIT_DYNAMIC_SMEM(smem);
    int32_t const N = p.tokens;
    TcLayout const L = tcLayout(kOnePass, rows, H, N);
    float* scores = reinterpret_cast<float*>(smem + L.scoreOff);
    __half* expBuf = reinterpret_cast<__half*>(smem + L.expOff);
    float* refs = reinterpret_cast<float*>(smem + L.refOff);
    float* statMax = reinterpret_cast<float*>(smem + L.statOff);
    float* statInv = statMax + S::kRows * H;
    float* coef = reinterpret_cast<float*>(smem + L.coefOff);
    __half* qBuf = reinterpret_cast<__half*>(smem + L.qOff);
    void const* zero = smem + L.zeroOff;

    TcThread<H, T> th;
    th.lane = static_cast<int32_t>(threadIdx.x) % kWarpSize;
    th.warp = static_cast<int32_t>(threadIdx.x) / kWarpSize;
    th.g = th.lane >> 2;
    th.t = th.lane & 3;
    int32_t const row0 = static_cast<int32_t>(blockIdx.x) * rows;
    int32_t const nRows = (N - row0) < rows ? (N - row0) : rows;
    __half const* base = qkv + static_cast<int64_t>(blockIdx.y) * N * S::kTokenStride;
    __half* outTile = out + (static_cast<int64_t>(blockIdx.y) * N + row0) * S::kC;

    if (threadIdx.x < 4)
    {
        reinterpret_cast<uint32_t*>(smem + L.zeroOff)[threadIdx.x] = 0U;
    }
    tcSetup<H, T>(th, p, base, row0, nRows, coef, qBuf);
    __syncwarp(); // each warp reads back only the Q fragments it wrote

    if constexpr (kMode == TcMode::kSplitStats || kMode == TcMode::kSplitOutput)
    {
        // This block's keys: chunks [c0, c1), the splits' ranges differing by one chunk at most.
        int32_t const z = static_cast<int32_t>(blockIdx.z);
        int32_t const c0 = z * L.nChunks / splits;
        int32_t const c1 = (z + 1) * L.nChunks / splits;
        int32_t const tiles = static_cast<int32_t>(gridDim.x);
        int32_t const partialStride = S::kRows * H * 2;
        float* partials = workspace + splitStatsOffset(p.batch, N, H)
            + static_cast<size_t>((blockIdx.y * tiles + blockIdx.x) * splits) * partialStride;
        if constexpr (kMode == TcMode::kSplitStats)
        {
            forEachChunk(c0, c1, N, [&](auto tail, int32_t c) {
                tcChunk<H, T, ExpMode::kStatsOnly, decltype(tail)::value>(th, base, N, nRows, c * kChunk, scores,
                    qBuf, expBuf, L, 0, refs, coef, statMax, statInv, zero);
            });
            tcStoreStats<H, T, true>(th, nRows, partials + static_cast<size_t>(blockIdx.z) * partialStride, nullptr);
            // Zero this split's share of the tile's fp32 output and the tile's arrival counter for
            // the output launch (stream order puts every stats block before it), which saves a
            // memset launch: at batch 1 a launch gap is a sizeable part of a layer.
            float* acc = acc32Tile(workspace, blockIdx.y, N, row0, S::kC);
            int32_t const count = nRows * S::kC;
            int32_t const share = (count + splits - 1) / splits;
            int32_t const end = (static_cast<int32_t>(blockIdx.z) + 1) * share < count
                ? (static_cast<int32_t>(blockIdx.z) + 1) * share
                : count;
            for (int32_t i = static_cast<int32_t>(blockIdx.z) * share + static_cast<int32_t>(threadIdx.x); i < end;
                 i += S::kThreads)
            {
                acc[i] = 0.F;
            }
            if (blockIdx.z == 0 && threadIdx.x == 0)
            {
                splitCounters(workspace, p.batch, N, H, tiles, S::kRows)[blockIdx.y * tiles + blockIdx.x] = 0;
            }
        }
        else
        {
            tcCombineStats<H, T>(th, partials, splits, partialStride);
            tcStoreStats<H, T, false>(th, nRows, statMax, statInv);
            __syncwarp();
            tcZeroAccumulators<H, T>(th);
            forEachChunk(c0, c1, N, [&](auto tail, int32_t c) {
                constexpr bool kTail = decltype(tail)::value;
                tcChunk<H, T, ExpMode::kNormalized, kTail>(th, base, N, nRows, c * kChunk, scores, qBuf, expBuf, L,
                    0, refs, coef, statMax, statInv, zero);
                tcAccumulate<H, T, kTail>(th, base, N, expBuf, L.ePitch, 0, c * kChunk, kChunk, nRows, zero);
                __syncthreads(); // scores and exp buffer are rewritten by the next chunk
            });
            float* acc = acc32Tile(workspace, blockIdx.y, N, row0, S::kC);
            tcAtomicAddOutput<H, T>(th, acc, nRows);
            // The last split to finish a tile rounds its fp32 output to fp16 (the threadFenceReduction
            // pattern of the CUDA samples): no third launch. The fence orders this block's adds before
            // its arrival; the reader bypasses L1 (__ldcg), where no line of the tile can be stale.
            // The verdict is shared with __syncthreads_or, not a __shared__ variable: static shared
            // memory would make the opt-in of the whole limit as dynamic memory fail (prepare).
            __threadfence();
            __syncthreads();
            int32_t last = 0;
            if (threadIdx.x == 0)
            {
                int32_t* counter
                    = splitCounters(workspace, p.batch, N, H, tiles, S::kRows) + blockIdx.y * tiles + blockIdx.x;
                last = atomicAdd(counter, 1) == splits - 1;
            }
            if (__syncthreads_or(last))
            {
                __threadfence();
                for (int32_t i = static_cast<int32_t>(threadIdx.x); i < nRows * S::kC; i += S::kThreads)
                {
                    outTile[i] = __float2half_rn(__ldcg(acc + i));
                }
            }
        }
        return;
    }
    else if constexpr (kOnePass)
    {
        forEachChunk(0, L.nChunks, N, [&](auto tail, int32_t c) {
            tcChunk<H, T, ExpMode::kRelative, decltype(tail)::value>(
                th, base, N, nRows, c * kChunk, scores, qBuf, expBuf, L, c * kChunk, refs, coef, statMax, statInv,
                zero);
        });
        // A group belongs to one warp from here to the post-mix: lane-to-lane visibility only.
        tcStoreStats<H, T, false>(th, nRows, statMax, statInv);
        __syncwarp();
#pragma unroll
        for (int32_t gs = 0; gs < S::kGroupSlots; ++gs)
        {
            int32_t const grp = th.warp + gs * S::kWarps;
            if (grp * S::kGroupRows >= nRows)
            {
                continue;
            }
            forEachChunk(0, L.nChunks, N, [&](auto tail, int32_t chunk) {
                // f for this thread's A columns k = 2t + 8j + e = (row k / Hp, input head k % Hp).
                float f[2][2];
#pragma unroll
                for (int32_t j = 0; j < 2; ++j)
                {
#pragma unroll
                    for (int32_t e = 0; e < 2; ++e)
                    {
                        int32_t const k = 2 * th.t + 8 * j + e;
                        int32_t const o = k % S::kHp;
                        int32_t const r = grp * S::kGroupRows + k / S::kHp;
                        f[j][e] = o < H ? fastExp2(refs[(r * H + o) * L.nChunks + chunk] - statMax[r * H + o])
                                * statInv[r * H + o]
                                        : 0.F;
                    }
                }
                tcPostmix<H, T, decltype(tail)::value>(
                    th, grp, expBuf, L.ePitch, chunk * kChunk, chunk * kChunk, N, f, coef, zero);
            });
        }
        __syncthreads();
        tcZeroAccumulators<H, T>(th);
        int32_t const whole = N / kChunk * kChunk;
        tcAccumulate<H, T, false>(th, base, N, expBuf, L.ePitch, 0, 0, whole, nRows, zero);
        if (whole < N)
        {
            tcAccumulate<H, T, true>(th, base, N, expBuf, L.ePitch, whole, whole, kChunk, nRows, zero);
        }
    }
    else
    {
        forEachChunk(0, L.nChunks, N, [&](auto tail, int32_t c) {
            tcChunk<H, T, ExpMode::kStatsOnly, decltype(tail)::value>(
                th, base, N, nRows, c * kChunk, scores, qBuf, expBuf, L, 0, refs, coef, statMax, statInv, zero);
        });
        tcStoreStats<H, T, false>(th, nRows, statMax, statInv);
        __syncwarp();
        tcZeroAccumulators<H, T>(th);
        forEachChunk(0, L.nChunks, N, [&](auto tail, int32_t c) {
            constexpr bool kTail = decltype(tail)::value;
            tcChunk<H, T, ExpMode::kNormalized, kTail>(
                th, base, N, nRows, c * kChunk, scores, qBuf, expBuf, L, 0, refs, coef, statMax, statInv, zero);
            tcAccumulate<H, T, kTail>(th, base, N, expBuf, L.ePitch, 0, c * kChunk, kChunk, nRows, zero);
            __syncthreads(); // scores and exp buffer are rewritten by the next chunk
        });
    }
    tcStore<H, T>(th, outTile, nRows);
#else
    (void) p;
    (void) rows;
    (void) splits;
    (void) qkv;
    (void) out;
    (void) workspace;
#endif
}

template <int32_t H, int32_t T>
cudaError_t launchTiles(TalkingHeadsParams const& params, TalkingHeadsPlan const& plan, __half const* qkv, __half* out,
    void* workspace, cudaStream_t stream)
{
    unsigned const tiles = static_cast<unsigned>(ceilDiv(params.tokens, plan.rows));
    dim3 const block(TcShape<H, T>::kThreads);
    float* ws = static_cast<float*>(workspace);
    if (plan.variant == TalkingHeadsVariant::kTensorCoreOnePass)
    {
        return CAIT_LAUNCH((talkingHeadsTensorCoreKernel<H, T, TcMode::kOnePass>), dim3(tiles, params.batch), block,
            plan.smemBytes, stream, params, plan.rows, 1, qkv, out, ws);
    }
    if (plan.variant == TalkingHeadsVariant::kTensorCoreTwoPass)
    {
        return CAIT_LAUNCH((talkingHeadsTensorCoreKernel<H, T, TcMode::kTwoPass>), dim3(tiles, params.batch), block,
            plan.smemBytes, stream, params, plan.rows, 1, qkv, out, ws);
    }
    // Key splits: partial statistics (and zeroed fp32 output), then P'V with the combined
    // statistics, the last split of each tile writing it as fp16.
    dim3 const grid(tiles, static_cast<unsigned>(params.batch), static_cast<unsigned>(plan.splits));
    cudaError_t err = CAIT_LAUNCH((talkingHeadsTensorCoreKernel<H, T, TcMode::kSplitStats>), grid, block,
        plan.smemBytes, stream, params, plan.rows, plan.splits, qkv, out, ws);
    if (err == cudaSuccess)
    {
        err = CAIT_LAUNCH((talkingHeadsTensorCoreKernel<H, T, TcMode::kSplitOutput>), grid, block, plan.smemBytes,
            stream, params, plan.rows, plan.splits, qkv, out, ws);
    }
    return err;
}

template <int32_t H>
cudaError_t launchHeads(TalkingHeadsParams const& params, TalkingHeadsPlan const& plan, __half const* qkv, __half* out,
    void* workspace, cudaStream_t stream)
{
    return tileRowsOf(plan.rows) == 2 * kTile ? launchTiles<H, 2>(params, plan, qkv, out, workspace, stream)
                                              : launchTiles<H, 1>(params, plan, qkv, out, workspace, stream);
}

template <int32_t H>
cudaError_t prepareHeads(int bytes)
{
#if defined(CAIT_EMULATION)
    (void) bytes;
    return cudaSuccess;
#else
    cudaError_t err = cudaSuccess;
    for (void const* fn : {reinterpret_cast<void const*>(talkingHeadsTensorCoreKernel<H, 1, TcMode::kOnePass>),
             reinterpret_cast<void const*>(talkingHeadsTensorCoreKernel<H, 1, TcMode::kTwoPass>),
             reinterpret_cast<void const*>(talkingHeadsTensorCoreKernel<H, 1, TcMode::kSplitStats>),
             reinterpret_cast<void const*>(talkingHeadsTensorCoreKernel<H, 1, TcMode::kSplitOutput>),
             reinterpret_cast<void const*>(talkingHeadsTensorCoreKernel<H, 2, TcMode::kOnePass>),
             reinterpret_cast<void const*>(talkingHeadsTensorCoreKernel<H, 2, TcMode::kTwoPass>),
             reinterpret_cast<void const*>(talkingHeadsTensorCoreKernel<H, 2, TcMode::kSplitStats>),
             reinterpret_cast<void const*>(talkingHeadsTensorCoreKernel<H, 2, TcMode::kSplitOutput>)})
    {
        if (err == cudaSuccess)
        {
            err = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
        }
    }
    return err;
#endif
}

} // namespace tensorcore

using namespace tensorcore;

bool talkingHeadsTensorCoreShape(int32_t heads, int32_t headSize)
{
    return headSize == kThTcHeadSize && (heads == 4 || heads == 6 || heads == 8 || heads == 16);
}

size_t talkingHeadsTensorCoreSmemBytes(bool onePass, int32_t rows, int32_t heads, int32_t tokens)
{
    return tcLayout(onePass, rows, heads, tokens).total;
}

int32_t talkingHeadsTensorCoreThreads(int32_t heads)
{
    return heads * kWarpSize;
}

size_t talkingHeadsSplitWorkspaceBytes(int32_t batch, int32_t heads, int32_t tokens, int32_t rows, int32_t splits)
{
    int32_t const tileRows = tileRowsOf(rows);
    int32_t const tiles = (tokens + rows - 1) / rows;
    return splitCounterOffset(batch, tokens, heads, tiles, splits, tileRows) * sizeof(float)
        + static_cast<size_t>(batch) * tiles * sizeof(int32_t);
}

cudaError_t launchTalkingHeadsTensorCore(TalkingHeadsParams const& params, TalkingHeadsPlan const& plan,
    __half const* qkv, __half* out, void* workspace, cudaStream_t stream)
{
    if (plan.rows <= 0 || plan.rows > kThTcMaxRows
        || (plan.variant == TalkingHeadsVariant::kTensorCoreSplit && (workspace == nullptr || plan.splits < 1)))
    {
        return cudaErrorInvalidValue;
    }
    switch (params.heads)
    {
    case 4: return launchHeads<4>(params, plan, qkv, out, workspace, stream);
    case 6: return launchHeads<6>(params, plan, qkv, out, workspace, stream);
    case 8: return launchHeads<8>(params, plan, qkv, out, workspace, stream);
    case 16: return launchHeads<16>(params, plan, qkv, out, workspace, stream);
    default: return cudaErrorInvalidValue;
    }
}

cudaError_t talkingHeadsTensorCorePrepare(size_t maxSmemBytes)
{
    int const bytes = static_cast<int>(maxSmemBytes);
    cudaError_t err = prepareHeads<4>(bytes);
    if (err == cudaSuccess)
    {
        err = prepareHeads<6>(bytes);
    }
    if (err == cudaSuccess)
    {
        err = prepareHeads<8>(bytes);
    }
    if (err == cudaSuccess)
    {
        err = prepareHeads<16>(bytes);
    }
    return err;
}

} // namespace cait
