// Fused class attention: q (B, 1, C), k, v (B, T, C) -> out (B, 1, C).
#pragma once

// Host-visible declarations only: the glue (.cpp, built by the host compiler) includes this.
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace cait
{

constexpr int32_t kCaThreads = 256;
constexpr int32_t kCaMaxHeadSize = 128; // per-lane register accumulators: headSize / 32 slots

struct ClassAttentionParams
{
    int32_t batch;
    int32_t tokens; // T = N + 1
    int32_t heads;
    int32_t headSize;
    float scale;
};

// Shared memory per block: T probabilities, the scaled query of one head, the per-warp partial
// outputs and a reduction scratch.
size_t classAttentionSmemBytes(int32_t tokens, int32_t headSize);

// Enqueues the kernel; capturable (no allocation, no synchronization). Fails with
// cudaErrorInvalidValue on shapes outside the limits (headSize > kCaMaxHeadSize, smem > max).
template <typename T>
cudaError_t launchClassAttention(ClassAttentionParams const& params, T const* q, T const* k, T const* v, T* out,
    size_t maxSmemBytes, cudaStream_t stream);

cudaError_t classAttentionPrepare(size_t maxSmemBytes);

} // namespace cait
