// Fused talking-heads attention on CUDA cores (design and byte counts in README.md): the path for
// fp32 I/O, sm_75 and shapes the tensor-core kernel (talkingHeadsTensorCore.cu) is not built
// for, and the planner/dispatcher of both. The head mixing needs every
// head's score (before softmax) and probability (after it) at each (i, j), so a block always works
// on all heads of its query rows at once; nothing of the H x N x N tensor reaches global memory.
//  - talkingHeadsKernel (full-row): full score rows of the tile in shared memory, one pass.
//    Phases: (A) scores per head, (B) pre-mix, softmax, post-mix in place, (C) P'V.
//  - talkingHeadsStreamingKernel: key chunks, pass 1 for softmax statistics, pass 2 for P'V.
#include "talkingHeadsAttentionPlugin/talkingHeadsAttentionKernel.h"

#include "common/kernelCompat.h"

#include <initializer_list>
#include <type_traits>

namespace cait
{

// One (row, key) column of the head-major score block: s'_o = b[o] + sum_i W[o*H + i] * s_i,
// in place. The column is read into registers first, so a thread owning whole columns needs no
// barrier between reading and writing.
__device__ __forceinline__ void mixHeadsColumn(
    float* col, int32_t stride, int32_t H, float const* W, float const* b)
{
    float s[kThMaxHeads];
#pragma unroll
    for (int32_t i = 0; i < kThMaxHeads; ++i)
    {
        s[i] = i < H ? col[i * stride] : 0.F;
    }
    for (int32_t o = 0; o < H; ++o)
    {
        float acc = b[o];
#pragma unroll
        for (int32_t i = 0; i < kThMaxHeads; ++i)
        {
            if (i < H)
            {
                acc += W[o * H + i] * s[i];
            }
        }
        col[o * stride] = acc;
    }
}

template <typename T>
__global__ void __launch_bounds__(kThThreads, 2)
    talkingHeadsKernel(TalkingHeadsParams const p, int32_t const rows, T const* __restrict__ qkv, T* __restrict__ out)
{
    CAIT_DYNAMIC_SMEM(smemRaw);
    int32_t const N = p.tokens;
    int32_t const H = p.heads;
    int32_t const d = p.headSize;
    int32_t const C = H * d;
    int64_t const rowStride = 3 * static_cast<int64_t>(C);

    float* scores = reinterpret_cast<float*>(smemRaw); // [rows][H][N]
    float* qTile = scores + static_cast<int64_t>(rows) * H * N; // [rows][d], one head at a time
    float* preW = qTile + rows * d;
    float* preB = preW + H * H;
    float* postW = preB + H;
    float* postB = postW + H * H;

    int32_t const tid = threadIdx.x;
    int32_t const nThreads = blockDim.x;
    int32_t const b = blockIdx.y;
    int32_t const row0 = blockIdx.x * rows;
    int32_t const nRows = (N - row0) < rows ? (N - row0) : rows;
    T const* base = qkv + static_cast<int64_t>(b) * N * rowStride;

    // Coefficients are read by every thread in phase B: shared memory beats the divergent
    // indexing of the parameter bank.
    for (int32_t e = tid; e < H * H; e += nThreads)
    {
        preW[e] = p.preWeight[e];
        postW[e] = p.postWeight[e];
    }
    for (int32_t e = tid; e < H; e += nThreads)
    {
        preB[e] = p.preBias[e];
        postB[e] = p.postBias[e];
    }

    // (A) s[r][h][j] = scale * q_h[row0 + r] . k_h[j]. A thread owns a key and reads it once per
    // tile for all rows of the tile.
    for (int32_t h = 0; h < H; ++h)
    {
        __syncthreads(); // the previous head's qTile is no longer read
        for (int32_t e = tid; e < rows * d; e += nThreads)
        {
            int32_t const r = e / d;
            int32_t const t = e - r * d;
            qTile[e] = r < nRows ? p.scale * toFloat(base[(row0 + r) * rowStride + h * d + t]) : 0.F;
        }
        __syncthreads();
        for (int32_t j = tid; j < N; j += nThreads)
        {
            T const* kRow = base + j * rowStride + C + h * d;
            float acc[kThMaxRows];
#pragma unroll
            for (int32_t r = 0; r < kThMaxRows; ++r)
            {
                acc[r] = 0.F;
            }
            for (int32_t t = 0; t < d; ++t)
            {
                float const kv = toFloat(kRow[t]);
#pragma unroll
                for (int32_t r = 0; r < kThMaxRows; ++r)
                {
                    if (r < rows)
                    {
                        acc[r] += qTile[r * d + t] * kv;
                    }
                }
            }
#pragma unroll
            for (int32_t r = 0; r < kThMaxRows; ++r)
            {
                if (r < nRows)
                {
                    scores[(r * H + h) * N + j] = acc[r];
                }
            }
        }
    }
    __syncthreads();

    // (B1) pre-softmax mixing across heads at each (r, j); a thread owns whole columns, so the
    // in-place update needs no barrier.
    for (int32_t e = tid; e < nRows * N; e += nThreads)
    {
        int32_t const r = e / N;
        int32_t const j = e - r * N;
        float* col = scores + r * H * N + j;
        mixHeadsColumn(col, N, H, preW, preB);
    }
    __syncthreads();

    // (B2) softmax over keys, one warp per (row, head); max-subtracted in fp32 so that scores
    // beyond fp16's exp range are exact.
    int32_t const lane = tid % kWarpSize;
    int32_t const warp = tid / kWarpSize;
    int32_t const nWarps = nThreads / kWarpSize;
    for (int32_t rh = warp; rh < nRows * H; rh += nWarps)
    {
        float* s = scores + rh * N;
        float m = -INFINITY;
        for (int32_t j = lane; j < N; j += kWarpSize)
        {
            m = fmaxf(m, s[j]);
        }
        m = warpMax(m);
        float sum = 0.F;
        for (int32_t j = lane; j < N; j += kWarpSize)
        {
            float const e = expf(s[j] - m);
            s[j] = e;
            sum += e;
        }
        sum = warpSum(sum);
        float const inv = 1.F / sum;
        for (int32_t j = lane; j < N; j += kWarpSize)
        {
            s[j] *= inv;
        }
    }
    __syncthreads();

    // (B3) post-softmax mixing, same column ownership as B1.
    for (int32_t e = tid; e < nRows * N; e += nThreads)
    {
        int32_t const r = e / N;
        int32_t const j = e - r * N;
        float* col = scores + r * H * N + j;
        mixHeadsColumn(col, N, H, postW, postB);
    }
    __syncthreads();

    // (C) o[r][h*d + t] = sum_j p'[r][h][j] * v_h[j][t]: a thread owns an output channel and reads
    // its V column once per tile (coalesced across the warp) for all rows of the tile.
    for (int32_t c = tid; c < C; c += nThreads)
    {
        int32_t const h = c / d;
        float acc[kThMaxRows];
#pragma unroll
        for (int32_t r = 0; r < kThMaxRows; ++r)
        {
            acc[r] = 0.F;
        }
        T const* vCol = base + 2 * C + c;
        float const* pRow = scores + h * N;
        for (int32_t j = 0; j < N; ++j)
        {
            float const v = toFloat(vCol[j * rowStride]);
#pragma unroll
            for (int32_t r = 0; r < kThMaxRows; ++r)
            {
                if (r < nRows)
                {
                    acc[r] += pRow[r * H * N + j] * v;
                }
            }
        }
        T* o = out + (static_cast<int64_t>(b) * N + row0) * C + c;
#pragma unroll
        for (int32_t r = 0; r < kThMaxRows; ++r)
        {
            if (r < nRows)
            {
                o[static_cast<int64_t>(r) * C] = fromFloat<T>(acc[r]);
            }
        }
    }
}

// Scores of one key chunk for every row of the tile and every head, pre-mixed in place:
// sc[(r*H + o)*chunk + jj] = preB[o] + sum_i preW[o*H+i] * scale * q_i[r] . k_i[j0 + jj].
template <typename T>
__device__ __forceinline__ void streamChunkScores(T const* base, int64_t rowStride, int32_t C, int32_t H, int32_t d,
    int32_t rows, int32_t nRows, int32_t chunk, int32_t j0, int32_t kc, float const* qAll, float* sc,
    float const* preW, float const* preB)
{
    int32_t const tid = threadIdx.x;
    int32_t const nThreads = blockDim.x;
    for (int32_t e = tid; e < H * kc; e += nThreads)
    {
        int32_t const h = e / kc;
        int32_t const jj = e - h * kc;
        T const* kRow = base + (j0 + jj) * rowStride + C + h * d;
        float acc[kThMaxRows];
#pragma unroll
        for (int32_t r = 0; r < kThMaxRows; ++r)
        {
            acc[r] = 0.F;
        }
        for (int32_t t = 0; t < d; ++t)
        {
            float const kv = toFloat(kRow[t]);
#pragma unroll
            for (int32_t r = 0; r < kThMaxRows; ++r)
            {
                if (r < rows)
                {
                    acc[r] += qAll[r * C + h * d + t] * kv;
                }
            }
        }
#pragma unroll
        for (int32_t r = 0; r < kThMaxRows; ++r)
        {
            if (r < nRows)
            {
                sc[(r * H + h) * chunk + jj] = acc[r];
            }
        }
    }
    __syncthreads();
    for (int32_t e = tid; e < nRows * kc; e += nThreads)
    {
        int32_t const r = e / kc;
        int32_t const jj = e - r * kc;
        float* col = sc + r * H * chunk + jj;
        mixHeadsColumn(col, chunk, H, preW, preB);
    }
    __syncthreads();
}

template <typename T>
__global__ void __launch_bounds__(kThThreads, 2) talkingHeadsStreamingKernel(TalkingHeadsParams const p,
    int32_t const rows, int32_t const chunk, T const* __restrict__ qkv, T* __restrict__ out)
{
    CAIT_DYNAMIC_SMEM(smemRaw);
    int32_t const N = p.tokens;
    int32_t const H = p.heads;
    int32_t const d = p.headSize;
    int32_t const C = H * d;
    int64_t const rowStride = 3 * static_cast<int64_t>(C);

    float* qAll = reinterpret_cast<float*>(smemRaw); // [rows][C], scaled
    float* sc = qAll + rows * C;                     // [rows][H][chunk]
    float* rowMax = sc + rows * H * chunk;           // [rows*H]
    float* rowInvSum = rowMax + rows * H;            // [rows*H]: running sum, then its inverse
    float* preW = rowInvSum + rows * H;
    float* preB = preW + H * H;
    float* postW = preB + H;
    float* postB = postW + H * H;

    int32_t const tid = threadIdx.x;
    int32_t const nThreads = blockDim.x;
    int32_t const lane = tid % kWarpSize;
    int32_t const warp = tid / kWarpSize;
    int32_t const nWarps = nThreads / kWarpSize;
    int32_t const b = blockIdx.y;
    int32_t const row0 = blockIdx.x * rows;
    int32_t const nRows = (N - row0) < rows ? (N - row0) : rows;
    T const* base = qkv + static_cast<int64_t>(b) * N * rowStride;

    for (int32_t e = tid; e < H * H; e += nThreads)
    {
        preW[e] = p.preWeight[e];
        postW[e] = p.postWeight[e];
    }
    for (int32_t e = tid; e < H; e += nThreads)
    {
        preB[e] = p.preBias[e];
        postB[e] = p.postBias[e];
    }
    for (int32_t e = tid; e < rows * H; e += nThreads)
    {
        rowMax[e] = -INFINITY;
        rowInvSum[e] = 0.F;
    }
    for (int32_t e = tid; e < rows * C; e += nThreads)
    {
        int32_t const r = e / C;
        int32_t const c = e - r * C;
        qAll[e] = r < nRows ? p.scale * toFloat(base[(row0 + r) * rowStride + c]) : 0.F;
    }
    __syncthreads();

    // Pass 1: online max and sum of exp per (row, mixed head), one warp per (row, head).
    for (int32_t j0 = 0; j0 < N; j0 += chunk)
    {
        int32_t const kc = (N - j0) < chunk ? (N - j0) : chunk;
        streamChunkScores(base, rowStride, C, H, d, rows, nRows, chunk, j0, kc, qAll, sc, preW, preB);
        for (int32_t rh = warp; rh < nRows * H; rh += nWarps)
        {
            float const* s = sc + rh * chunk;
            float m = -INFINITY;
            for (int32_t jj = lane; jj < kc; jj += kWarpSize)
            {
                m = fmaxf(m, s[jj]);
            }
            m = warpMax(m);
            float const mNew = fmaxf(rowMax[rh], m);
            float sum = 0.F;
            for (int32_t jj = lane; jj < kc; jj += kWarpSize)
            {
                sum += expf(s[jj] - mNew);
            }
            sum = warpSum(sum);
            if (lane == 0)
            {
                rowInvSum[rh] = rowInvSum[rh] * expf(rowMax[rh] - mNew) + sum;
                rowMax[rh] = mNew;
            }
        }
        __syncthreads(); // sc is overwritten by the next chunk
    }
    for (int32_t e = tid; e < nRows * H; e += nThreads)
    {
        rowInvSum[e] = 1.F / rowInvSum[e];
    }
    __syncthreads();

    // Pass 2: recompute the chunk, normalize, post-mix, accumulate P'V. A thread owns up to
    // kThStreamChannelsPerThread output channels for all rows of the tile, in registers.
    float acc[kThStreamChannelsPerThread][kThMaxRows];
#pragma unroll
    for (int32_t ci = 0; ci < kThStreamChannelsPerThread; ++ci)
    {
#pragma unroll
        for (int32_t r = 0; r < kThMaxRows; ++r)
        {
            acc[ci][r] = 0.F;
        }
    }
    for (int32_t j0 = 0; j0 < N; j0 += chunk)
    {
        int32_t const kc = (N - j0) < chunk ? (N - j0) : chunk;
        streamChunkScores(base, rowStride, C, H, d, rows, nRows, chunk, j0, kc, qAll, sc, preW, preB);
        for (int32_t e = tid; e < nRows * H * kc; e += nThreads)
        {
            int32_t const rh = e / kc;
            int32_t const jj = e - rh * kc;
            sc[rh * chunk + jj] = expf(sc[rh * chunk + jj] - rowMax[rh]) * rowInvSum[rh];
        }
        __syncthreads();
        for (int32_t e = tid; e < nRows * kc; e += nThreads)
        {
            int32_t const r = e / kc;
            int32_t const jj = e - r * kc;
            float* col = sc + r * H * chunk + jj;
            float s[kThMaxHeads];
#pragma unroll
            for (int32_t i = 0; i < kThMaxHeads; ++i)
            {
                s[i] = i < H ? col[i * chunk] : 0.F;
            }
            for (int32_t o = 0; o < H; ++o)
            {
                float a = postB[o];
#pragma unroll
                for (int32_t i = 0; i < kThMaxHeads; ++i)
                {
                    if (i < H)
                    {
                        a += postW[o * H + i] * s[i];
                    }
                }
                col[o * chunk] = a;
            }
        }
        __syncthreads();
#pragma unroll
        for (int32_t ci = 0; ci < kThStreamChannelsPerThread; ++ci)
        {
            int32_t const c = tid + ci * nThreads;
            if (c < C)
            {
                int32_t const h = c / d;
                T const* vCol = base + static_cast<int64_t>(j0) * rowStride + 2 * C + c;
                float const* pRow = sc + h * chunk;
                for (int32_t jj = 0; jj < kc; ++jj)
                {
                    float const v = toFloat(vCol[jj * rowStride]);
#pragma unroll
                    for (int32_t r = 0; r < kThMaxRows; ++r)
                    {
                        if (r < nRows)
                        {
                            acc[ci][r] += pRow[r * H * chunk + jj] * v;
                        }
                    }
                }
            }
        }
        __syncthreads(); // sc is overwritten by the next chunk
    }
#pragma unroll
    for (int32_t ci = 0; ci < kThStreamChannelsPerThread; ++ci)
    {
        int32_t const c = tid + ci * nThreads;
        if (c < C)
        {
            T* o = out + (static_cast<int64_t>(b) * N + row0) * C + c;
#pragma unroll
            for (int32_t r = 0; r < kThMaxRows; ++r)
            {
                if (r < nRows)
                {
                    o[static_cast<int64_t>(r) * C] = fromFloat<T>(acc[ci][r]);
                }
            }
        }
    }
}

size_t talkingHeadsStreamingSmemBytes(int32_t rows, int32_t chunk, int32_t heads, int32_t headSize)
{
    size_t const C = static_cast<size_t>(heads) * headSize;
    size_t const floats = static_cast<size_t>(rows) * C + static_cast<size_t>(rows) * heads * chunk
        + 2 * static_cast<size_t>(rows) * heads + 2 * (static_cast<size_t>(heads) * heads + heads);
    return floats * sizeof(float);
}

namespace
{

// The CUDA-core kernels' plan: full rows while enough rows fit, else streaming.
TalkingHeadsPlan cudaCorePlan(int32_t heads, int32_t tokens, int32_t headSize, size_t maxSmemBytes, TalkingHeadsVariant want)
{
    TalkingHeadsPlan full;
    full.variant = TalkingHeadsVariant::kFullRow;
    full.rows = talkingHeadsRowsPerBlock(heads, tokens, headSize, maxSmemBytes);
    full.smemBytes = full.rows > 0 ? talkingHeadsSmemBytes(full.rows, heads, tokens, headSize) : 0;

    TalkingHeadsPlan stream;
    stream.variant = TalkingHeadsVariant::kStreaming;
    if (static_cast<int64_t>(heads) * headSize <= kThStreamMaxChannels)
    {
        int32_t const maxRows = kThMaxRows < tokens ? kThMaxRows : tokens;
        for (int32_t rows = maxRows; rows > 0 && stream.rows == 0; --rows)
        {
            for (int32_t chunk : {64, 32, 16, 8})
            {
                size_t const bytes = talkingHeadsStreamingSmemBytes(rows, chunk, heads, headSize);
                if (bytes <= maxSmemBytes)
                {
                    stream.rows = rows;
                    stream.chunk = chunk;
                    stream.smemBytes = bytes;
                    break;
                }
            }
        }
    }
    if (want == TalkingHeadsVariant::kFullRow)
    {
        return full;
    }
    if (want == TalkingHeadsVariant::kStreaming)
    {
        return stream;
    }
    if (full.rows >= kThFullRowMinRows || full.rows == tokens || stream.rows == 0)
    {
        return full;
    }
    return stream;
}

// Largest tensor-core row tile (<= kThTcMaxRows) that fits, 0 if none.
int32_t tensorCoreRows(bool onePass, int32_t heads, int32_t tokens, size_t maxSmemBytes)
{
    int32_t rows = kThTcMaxRows < tokens ? kThTcMaxRows : tokens;
    while (rows > 0 && talkingHeadsTensorCoreSmemBytes(onePass, rows, heads, tokens) > maxSmemBytes)
    {
        --rows;
    }
    return rows;
}

// Key splits: at most this many per tile, and one 32-key chunk each at least; tiles of 16 rows,
// or 32 where the grid of 32-row tiles still gives every SM a block.
constexpr int32_t kThMaxSplits = 8;
constexpr int32_t kThSplitRows = 16;
constexpr int32_t kThSplitRowsWide = 32;
// A one-pass plan splits only into at least this many: the splits compute the scores twice and
// launch twice, so two splits gain nothing over one pass (the performance model in
// plugins/talkingHeadsAttentionPlugin/README.md).
constexpr int32_t kThSplitMinOnePass = 3;

int64_t splitCap(int32_t tokens)
{
    int64_t const chunks = ceilDiv(tokens, 32);
    return chunks < kThMaxSplits ? chunks : kThMaxSplits;
}

// Splits for a grid of `tiles` blocks: about enough to give every SM a block, at least 2.
int32_t splitCount(int64_t tiles, int32_t tokens, int32_t smCount)
{
    int64_t const cap = splitCap(tokens);
    int64_t const want = smCount / (tiles > 0 ? tiles : 1);
    return static_cast<int32_t>(want < 2 ? 2 : (want > cap ? cap : want));
}

// Row tile of the key splits: 32 rows read K and V half as often as 16 (at batch 1 every tile
// reads all of them, so the K/V traffic through L2 bounds the split kernels as much as their
// instructions), and cost less than twice per key (one K/V fragment serves both 16-row halves);
// 16 rows where the 32-row grid could not give every SM a block, or its block does not fit.
int32_t splitRows(int32_t batch, int32_t heads, int32_t tokens, TalkingHeadsDevice const& device)
{
    int64_t const wide = static_cast<int64_t>(batch) * ceilDiv(tokens, kThSplitRowsWide);
    if (tokens > kThSplitRows && wide * splitCap(tokens) >= device.smCount
        && talkingHeadsTensorCoreSmemBytes(false, kThSplitRowsWide, heads, tokens) <= device.maxSmemBytes)
    {
        return kThSplitRowsWide < tokens ? kThSplitRowsWide : tokens;
    }
    return kThSplitRows < tokens ? kThSplitRows : tokens;
}

TalkingHeadsPlan splitPlan(
    int32_t batch, int32_t heads, int32_t tokens, int32_t rows, int32_t splits, size_t maxSmem, int32_t smCount)
{
    TalkingHeadsPlan plan;
    plan.variant = TalkingHeadsVariant::kTensorCoreSplit;
    int32_t const tiles = static_cast<int32_t>(ceilDiv(tokens, rows));
    plan.splits = splits > 0 ? splits : splitCount(static_cast<int64_t>(batch) * tiles, tokens, smCount);
    plan.smemBytes = talkingHeadsTensorCoreSmemBytes(false, rows, heads, tokens);
    plan.rows = rows <= kThSplitRowsWide && plan.smemBytes <= maxSmem ? rows : 0;
    plan.threads = talkingHeadsTensorCoreThreads(heads);
    plan.workspaceBytes = talkingHeadsSplitWorkspaceBytes(batch, heads, tokens, rows, plan.splits);
    return plan;
}

TalkingHeadsPlan tensorCorePlan(bool onePass, int32_t rows, int32_t heads, int32_t tokens)
{
    TalkingHeadsPlan plan;
    plan.variant = onePass ? TalkingHeadsVariant::kTensorCoreOnePass : TalkingHeadsVariant::kTensorCoreTwoPass;
    plan.rows = rows;
    plan.smemBytes = rows > 0 ? talkingHeadsTensorCoreSmemBytes(onePass, rows, heads, tokens) : 0;
    plan.threads = talkingHeadsTensorCoreThreads(heads);
    return plan;
}

} // namespace

TalkingHeadsPlan talkingHeadsPlan(int32_t batch, int32_t heads, int32_t tokens, int32_t headSize, bool fp16,
    bool aligned, TalkingHeadsDevice const& device, TalkingHeadsVariant want, int32_t rows, size_t workspaceBytes,
    int32_t splits)
{
    bool const tcWanted = want == TalkingHeadsVariant::kTensorCoreOnePass
        || want == TalkingHeadsVariant::kTensorCoreTwoPass || want == TalkingHeadsVariant::kTensorCoreSplit;
    bool const tcEligible = fp16 && aligned && device.smVersion >= 80 && talkingHeadsTensorCoreShape(heads, headSize);
    if (want == TalkingHeadsVariant::kFullRow || want == TalkingHeadsVariant::kStreaming
        || (want == TalkingHeadsVariant::kAuto && !tcEligible))
    {
        return cudaCorePlan(heads, tokens, headSize, device.maxSmemBytes, want);
    }
    if (tcWanted && !(fp16 && talkingHeadsTensorCoreShape(heads, headSize)))
    {
        return TalkingHeadsPlan{want, 0, 0, 0, 0};
    }
    if (want == TalkingHeadsVariant::kTensorCoreSplit)
    {
        int32_t const r = rows > 0 ? rows : splitRows(batch, heads, tokens, device);
        TalkingHeadsPlan plan = splitPlan(batch, heads, tokens, r, splits, device.maxSmemBytes, device.smCount);
        plan.rows = plan.workspaceBytes <= workspaceBytes ? plan.rows : 0;
        return plan;
    }
    if (tcWanted)
    {
        bool const onePass = want == TalkingHeadsVariant::kTensorCoreOnePass;
        int32_t const fit = tensorCoreRows(onePass, heads, tokens, device.maxSmemBytes);
        return tensorCorePlan(onePass, rows > 0 ? (rows <= fit ? rows : 0) : fit, heads, tokens);
    }
    // Auto on the tensor-core path: one pass when a block of >= kThTcMinOnePassRows rows fits (or all
    // the rows there are), else two passes over blocks of up to 32 rows.
    int32_t const onePassRows = tensorCoreRows(true, heads, tokens, device.maxSmemBytes);
    bool const onePass = onePassRows >= kThTcMinOnePassRows || onePassRows == tokens;
    int32_t pick = onePass ? onePassRows : tensorCoreRows(false, heads, tokens, device.maxSmemBytes);
    if (pick == 0)
    {
        return cudaCorePlan(heads, tokens, headSize, device.maxSmemBytes, TalkingHeadsVariant::kAuto);
    }
    // A second 16-row mma tile less than half full costs more (its scores and P'V are computed in
    // full) than it saves in K/V reads; small grids (batch 1) take one tile per block for twice the
    // blocks. Never fewer than 16 rows for those reasons alone: the mma tile is 16 rows whatever
    // the block holds, so smaller blocks only multiply the K/V reads.
    int64_t const blocks = static_cast<int64_t>(batch) * ceilDiv(tokens, pick);
    if (pick > kThMaxRows && (pick < kThMaxRows + kThMaxRows / 2 || blocks < device.smCount))
    {
        pick = kThMaxRows;
    }
    // A grid that leaves most multiprocessors idle (batch 1: 13-49 tiles for 132 SMs) splits the
    // keys of each 16- or 32-row tile over several blocks, when the caller gave the workspace.
    // Splits run two passes: worth it where the plan has two anyway, or where there are enough
    // splits for the parallelism to pay for the second pass and the second launch.
    int64_t const tiles16 = static_cast<int64_t>(batch) * ceilDiv(tokens, kThSplitRows);
    if (2 * static_cast<int64_t>(batch) * ceilDiv(tokens, pick) <= device.smCount && 2 * tiles16 <= device.smCount)
    {
        int32_t const r = splitRows(batch, heads, tokens, device);
        TalkingHeadsPlan split = splitPlan(batch, heads, tokens, r, 0, device.maxSmemBytes, device.smCount);
        bool const pays = !onePass || split.splits >= kThSplitMinOnePass;
        if (pays && split.rows > 0 && split.workspaceBytes <= workspaceBytes)
        {
            return split;
        }
    }
    return tensorCorePlan(onePass, pick, heads, tokens);
}

size_t talkingHeadsSmemBytes(int32_t rows, int32_t heads, int32_t tokens, int32_t headSize)
{
    size_t const floats = static_cast<size_t>(rows) * heads * tokens + static_cast<size_t>(rows) * headSize
        + 2 * (static_cast<size_t>(heads) * heads + heads);
    return floats * sizeof(float);
}

int32_t talkingHeadsRowsPerBlock(int32_t heads, int32_t tokens, int32_t headSize, size_t maxSmemBytes)
{
    int32_t rows = kThMaxRows < tokens ? kThMaxRows : tokens;
    while (rows > 0 && talkingHeadsSmemBytes(rows, heads, tokens, headSize) > maxSmemBytes)
    {
        --rows;
    }
    return rows;
}

size_t talkingHeadsWorkspaceBytes(
    int32_t batch, int32_t heads, int32_t tokens, int32_t headSize, TalkingHeadsDevice const& device)
{
    if (!talkingHeadsTensorCoreShape(heads, headSize) || device.smVersion < 80 || batch <= 0 || tokens <= 0)
    {
        return 0;
    }
    // Key splits run only when 2 * batch * tiles16 <= SMs (tiles16: 16-row tiles): their fp32
    // output (batch * tokens <= 16 * batch * tiles16 rows), statistics and arrival counters (one
    // 4-byte word per tile; 32-row tiles are at most as many, with twice the statistics each) are
    // then bounded by the SM count as well as by the shape; both bounds grow with batch and tokens.
    int64_t const C = static_cast<int64_t>(heads) * headSize;
    auto statsPerTile = [heads](int64_t rows) { return static_cast<int64_t>(kThMaxSplits) * rows * heads * 2 + 1; };
    int64_t const bySms = device.smCount / 2 * (kThSplitRows * C + statsPerTile(kThSplitRowsWide));
    int64_t const narrow = ceilDiv(tokens, kThSplitRows) * statsPerTile(kThSplitRows);
    int64_t const wide = ceilDiv(tokens, kThSplitRowsWide) * statsPerTile(kThSplitRowsWide);
    int64_t const byShape = static_cast<int64_t>(batch) * (tokens * C + (narrow > wide ? narrow : wide));
    return static_cast<size_t>(bySms < byShape ? bySms : byShape) * sizeof(float);
}

cudaError_t talkingHeadsPrepare(size_t maxSmemBytes)
{
#if defined(CAIT_EMULATION)
    (void) maxSmemBytes;
    return cudaSuccess;
#else
    int const bytes = static_cast<int>(maxSmemBytes);
    cudaError_t err = cudaFuncSetAttribute(talkingHeadsKernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (err == cudaSuccess)
    {
        err = cudaFuncSetAttribute(talkingHeadsKernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    }
    if (err == cudaSuccess)
    {
        err = cudaFuncSetAttribute(
            talkingHeadsStreamingKernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    }
    if (err == cudaSuccess)
    {
        err = cudaFuncSetAttribute(
            talkingHeadsStreamingKernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    }
    if (err == cudaSuccess)
    {
        err = talkingHeadsTensorCorePrepare(maxSmemBytes);
    }
    return err;
#endif
}

template <typename T>
cudaError_t launchTalkingHeads(TalkingHeadsParams const& params, T const* qkv, T* out, TalkingHeadsDevice const& device,
    cudaStream_t stream, TalkingHeadsVariant variant, int32_t rows, void* workspace, size_t workspaceBytes,
    int32_t splits)
{
    if (params.batch < 0 || params.tokens <= 0 || params.heads <= 0 || params.heads > kThMaxHeads
        || params.headSize <= 0 || params.batch > 65535)
    {
        return cudaErrorInvalidValue;
    }
    if (params.batch == 0)
    {
        return cudaSuccess; // an empty batch is a no-op, not an error
    }
    constexpr bool kFp16 = std::is_same<T, __half>::value;
    bool const aligned = reinterpret_cast<uintptr_t>(qkv) % 8 == 0 && reinterpret_cast<uintptr_t>(out) % 8 == 0;
    bool const wsUsable = workspace != nullptr && reinterpret_cast<uintptr_t>(workspace) % 16 == 0;
    TalkingHeadsPlan const plan = talkingHeadsPlan(params.batch, params.heads, params.tokens, params.headSize, kFp16,
        aligned, device, variant, rows, wsUsable ? workspaceBytes : 0, splits);
    if (plan.rows == 0)
    {
        return cudaErrorInvalidValue;
    }
    if (plan.variant == TalkingHeadsVariant::kTensorCoreOnePass || plan.variant == TalkingHeadsVariant::kTensorCoreTwoPass
        || plan.variant == TalkingHeadsVariant::kTensorCoreSplit)
    {
        if constexpr (kFp16)
        {
            if (!aligned)
            {
                return cudaErrorMisalignedAddress;
            }
            return launchTalkingHeadsTensorCore(params, plan, qkv, out, workspace, stream);
        }
        return cudaErrorInvalidValue;
    }
    dim3 const grid(static_cast<unsigned>(ceilDiv(params.tokens, plan.rows)), static_cast<unsigned>(params.batch));
    dim3 const block(kThThreads);
    if (plan.variant == TalkingHeadsVariant::kStreaming)
    {
        return CAIT_LAUNCH(talkingHeadsStreamingKernel<T>, grid, block, plan.smemBytes, stream, params, plan.rows,
            plan.chunk, qkv, out);
    }
    return CAIT_LAUNCH(talkingHeadsKernel<T>, grid, block, plan.smemBytes, stream, params, plan.rows, qkv, out);
}

template cudaError_t launchTalkingHeads<float>(TalkingHeadsParams const&, float const*, float*,
    TalkingHeadsDevice const&, cudaStream_t, TalkingHeadsVariant, int32_t, void*, size_t, int32_t);
template cudaError_t launchTalkingHeads<__half>(TalkingHeadsParams const&, __half const*, __half*,
    TalkingHeadsDevice const&, cudaStream_t, TalkingHeadsVariant, int32_t, void*, size_t, int32_t);

} // namespace cait
