// Fused talking-heads attention (design §2): qkv (B, N, 3C) laid out (3, H, d) -> out (B, N, C).
#pragma once

// Host-visible declarations only: the glue (.cpp, built by the host compiler) includes this.
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace cait
{

constexpr int32_t kThMaxHeads = 16;   // mixing coefficients travel by value in the kernel parameters
constexpr int32_t kThMaxRows = 16;    // query rows per block: register accumulators per thread
constexpr int32_t kThThreads = 256;

struct TalkingHeadsParams
{
    int32_t batch;
    int32_t tokens;
    int32_t heads;
    int32_t headSize;
    float scale;
    // Row-major H x H, s'_o = sum_i W[o*H + i] * s_i + b[o]; only the first H*H (H) entries are used.
    float preWeight[kThMaxHeads * kThMaxHeads];
    float preBias[kThMaxHeads];
    float postWeight[kThMaxHeads * kThMaxHeads];
    float postBias[kThMaxHeads];
};

// Two kernels share the contract:
//  - kFullRow: a block keeps the full score rows (all N keys, all heads, fp32) of `rows` query rows
//    in shared memory; single pass over K and V per tile. Best when many rows fit (>= 11).
//  - kStreaming: a block of up to 16 query rows streams keys in chunks, twice: pass 1 finds the
//    softmax max and sum of every mixed head, pass 2 recomputes the scores and accumulates P'V.
//    K is read twice, V once per tile, whatever N; used when the full rows would leave small
//    tiles (the M presets, N = 576/784 with H = 16). Needs C <= kThStreamMaxChannels.
enum class TalkingHeadsVariant : int32_t
{
    kAuto = 0,
    kFullRow = 1,
    kStreaming = 2,
};

constexpr int32_t kThStreamChannelsPerThread = 3;
constexpr int32_t kThStreamMaxChannels = kThThreads * kThStreamChannelsPerThread;
// Full-row tiles of at least this many rows move fewer bytes than 16-row streaming tiles:
// K+V per full-row tile (2/rows) vs 2K+V per streaming tile (3/16).
constexpr int32_t kThFullRowMinRows = 11;

struct TalkingHeadsPlan
{
    TalkingHeadsVariant variant{TalkingHeadsVariant::kFullRow};
    int32_t rows{0};  // query rows per block; 0: this shape does not fit the device
    int32_t chunk{0}; // keys per chunk (kStreaming only)
    size_t smemBytes{0};
};

// Picks the variant and tile for a shape; `want` forces a variant (tests), kAuto decides.
TalkingHeadsPlan talkingHeadsPlan(int32_t heads, int32_t tokens, int32_t headSize, size_t maxSmemBytes,
    TalkingHeadsVariant want = TalkingHeadsVariant::kAuto);

size_t talkingHeadsStreamingSmemBytes(int32_t rows, int32_t chunk, int32_t heads, int32_t headSize);

// Shared memory of one block holding `rows` query rows: the full score rows of every head
// (fp32), the query tile of one head and the mixing coefficients.
size_t talkingHeadsSmemBytes(int32_t rows, int32_t heads, int32_t tokens, int32_t headSize);

// Largest row tile (<= kThMaxRows) whose shared memory fits `maxSmemBytes`; 0 when even one row
// does not fit (then the shape is unsupported on that device).
int32_t talkingHeadsRowsPerBlock(int32_t heads, int32_t tokens, int32_t headSize, size_t maxSmemBytes);

// Enqueues the kernel. `maxSmemBytes` is the per-block limit the caller has opted in to
// (cudaFuncAttributeMaxDynamicSharedMemorySize must already be set to at least the size used;
// talkingHeadsPrepare does it). Capturable: no allocation, no synchronization.
template <typename T>
cudaError_t launchTalkingHeads(TalkingHeadsParams const& params, T const* qkv, T* out, size_t maxSmemBytes,
    cudaStream_t stream, TalkingHeadsVariant variant = TalkingHeadsVariant::kAuto);

// Opts the kernels in to `maxSmemBytes` of dynamic shared memory (call outside capture, once per
// device, e.g. from configurePlugin/onShapeChange). No-op in the emulation build.
cudaError_t talkingHeadsPrepare(size_t maxSmemBytes);

} // namespace cait
