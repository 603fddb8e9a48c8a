// Fused class attention: one block per (head, image). The single query makes this a pair of
// matrix-vector products, so the kernel is bandwidth bound by design: K and V of the head are read
// exactly once, the T probabilities live in shared memory, O is written once.
#include "classAttentionPlugin/classAttentionKernel.h"

#include "common/kernelCompat.h"

namespace cait
{

template <typename T>
__global__ void __launch_bounds__(kCaThreads) classAttentionKernel(ClassAttentionParams const p,
    T const* __restrict__ q, T const* __restrict__ k, T const* __restrict__ v, T* __restrict__ out)
{
    CAIT_DYNAMIC_SMEM(smemRaw);
    int32_t const T_ = p.tokens;
    int32_t const d = p.headSize;
    int32_t const C = p.heads * d;
    int32_t const h = blockIdx.x;
    int32_t const b = blockIdx.y;
    int32_t const tid = threadIdx.x;
    int32_t const nThreads = blockDim.x;
    int32_t const lane = tid % kWarpSize;
    int32_t const warp = tid / kWarpSize;
    int32_t const nWarps = nThreads / kWarpSize;

    float* prob = reinterpret_cast<float*>(smemRaw); // [T]
    float* qh = prob + T_;                           // [d]
    float* partial = qh + d;                         // [nWarps][d]
    float* scratch = partial + nWarps * d;           // [nWarps + 1]

    int64_t const kvBase = static_cast<int64_t>(b) * T_ * C + h * d;
    for (int32_t t = tid; t < d; t += nThreads)
    {
        qh[t] = p.scale * toFloat(q[static_cast<int64_t>(b) * C + h * d + t]);
    }
    __syncthreads();

    float localMax = -INFINITY;
    for (int32_t j = tid; j < T_; j += nThreads)
    {
        T const* kRow = k + kvBase + static_cast<int64_t>(j) * C;
        float s = 0.F;
        for (int32_t t = 0; t < d; ++t)
        {
            s += qh[t] * toFloat(kRow[t]);
        }
        prob[j] = s;
        localMax = fmaxf(localMax, s);
    }
    float const m = blockReduce<true>(localMax, scratch);

    float localSum = 0.F;
    for (int32_t j = tid; j < T_; j += nThreads)
    {
        float const e = expf(prob[j] - m);
        prob[j] = e;
        localSum += e;
    }
    float const sum = blockReduce<false>(localSum, scratch); // its barriers also publish prob[]

    // A warp takes every nWarps-th key; its lanes cover the head's channels so that each V row
    // is one coalesced read.
    constexpr int32_t kSlots = kCaMaxHeadSize / kWarpSize;
    float acc[kSlots];
#pragma unroll
    for (int32_t s = 0; s < kSlots; ++s)
    {
        acc[s] = 0.F;
    }
    for (int32_t j = warp; j < T_; j += nWarps)
    {
        T const* vRow = v + kvBase + static_cast<int64_t>(j) * C;
        float const pj = prob[j];
#pragma unroll
        for (int32_t s = 0; s < kSlots; ++s)
        {
            int32_t const t = lane + s * kWarpSize;
            if (t < d)
            {
                acc[s] += pj * toFloat(vRow[t]);
            }
        }
    }
#pragma unroll
    for (int32_t s = 0; s < kSlots; ++s)
    {
        int32_t const t = lane + s * kWarpSize;
        if (t < d)
        {
            partial[warp * d + t] = acc[s];
        }
    }
    __syncthreads();
    float const inv = 1.F / sum;
    for (int32_t t = tid; t < d; t += nThreads)
    {
        float o = 0.F;
        for (int32_t w = 0; w < nWarps; ++w)
        {
            o += partial[w * d + t];
        }
        out[static_cast<int64_t>(b) * C + h * d + t] = fromFloat<T>(o * inv);
    }
}

size_t classAttentionSmemBytes(int32_t tokens, int32_t headSize)
{
    int32_t const nWarps = kCaThreads / kWarpSize;
    size_t const floats = static_cast<size_t>(tokens) + headSize + static_cast<size_t>(nWarps) * headSize + nWarps + 1;
    return floats * sizeof(float);
}

cudaError_t classAttentionPrepare(size_t maxSmemBytes)
{
#if defined(CAIT_EMULATION)
    (void) maxSmemBytes;
    return cudaSuccess;
#else
    cudaError_t err = cudaFuncSetAttribute(
        classAttentionKernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(maxSmemBytes));
    if (err == cudaSuccess)
    {
        err = cudaFuncSetAttribute(classAttentionKernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize,
            static_cast<int>(maxSmemBytes));
    }
    return err;
#endif
}

template <typename T>
cudaError_t launchClassAttention(ClassAttentionParams const& params, T const* q, T const* k, T const* v, T* out,
    size_t maxSmemBytes, cudaStream_t stream)
{
    if (params.batch <= 0 || params.batch > 65535 || params.tokens <= 0 || params.heads <= 0
        || params.headSize <= 0 || params.headSize > kCaMaxHeadSize)
    {
        return cudaErrorInvalidValue;
    }
    size_t const smem = classAttentionSmemBytes(params.tokens, params.headSize);
    if (smem > maxSmemBytes)
    {
        return cudaErrorInvalidValue;
    }
    dim3 const grid(static_cast<unsigned>(params.heads), static_cast<unsigned>(params.batch));
    dim3 const block(kCaThreads);
    return CAIT_LAUNCH(classAttentionKernel<T>, grid, block, smem, stream, params, q, k, v, out);
}

template cudaError_t launchClassAttention<float>(
    ClassAttentionParams const&, float const*, float const*, float const*, float*, size_t, cudaStream_t);
template cudaError_t launchClassAttention<__half>(
    ClassAttentionParams const&, __half const*, __half const*, __half const*, __half*, size_t, cudaStream_t);

} // namespace cait
