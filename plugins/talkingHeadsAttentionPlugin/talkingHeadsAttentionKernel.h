// Fused talking-heads attention: qkv (B, N, 3C) laid out (3, H, d) -> out (B, N, C).
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

// Kernels sharing the contract (README.md next to this file has the design and the plans per
// preset and GPU):
//  - kTensorCoreOnePass / kTensorCoreTwoPass / kTensorCoreSplit (talkingHeadsTensorCore.cu): every
//    GEMM on tensor cores (mma.sync), fp16 I/O, head size 48, H in {4, 6, 8, 16}, sm_80 and newer,
//    8-byte aligned tensors. One pass keeps the fp16 exp-scores of the row tile for all N keys in
//    shared memory; two passes recompute the scores once to need memory independent of N; key
//    splits (small grids: batch 1) run the two passes over parts of the keys in separate blocks,
//    combining the softmax statistics and the fp32 outputs through a workspace.
//  - kFullRow / kStreaming: CUDA-core kernels for every other case (fp32 I/O, sm_75, other head
//    counts or sizes, unaligned tensors). kFullRow keeps fp32 score rows of the tile in shared
//    memory; kStreaming streams key chunks twice (pass 1 softmax statistics, pass 2 P'V).
enum class TalkingHeadsVariant : int32_t
{
    kAuto = 0,
    kFullRow = 1,
    kStreaming = 2,
    kTensorCoreOnePass = 3,
    kTensorCoreTwoPass = 4,
    kTensorCoreSplit = 5,
};

// What the planner needs to know about the GPU.
struct TalkingHeadsDevice
{
    size_t maxSmemBytes{48 * 1024}; // per-block opt-in limit (cudaDevAttrMaxSharedMemoryPerBlockOptin)
    int32_t smCount{1};             // multiprocessors: small grids get smaller row tiles
    int32_t smVersion{0};           // major * 10 + minor (87: Orin, 90: H100/H200)
};

constexpr int32_t kThStreamChannelsPerThread = 3;
constexpr int32_t kThStreamMaxChannels = kThThreads * kThStreamChannelsPerThread;
// Full-row tiles of at least this many rows move fewer bytes than 16-row streaming tiles:
// K+V per full-row tile (2/rows) vs 2K+V per streaming tile (3/16).
constexpr int32_t kThFullRowMinRows = 11;
// The tensor-core kernel is specialized for this head size (every CaiT preset) and takes up to
// two 16-row mma tiles per block (K and V fragments are loaded once for both).
constexpr int32_t kThTcHeadSize = 48;
constexpr int32_t kThTcMaxRows = 32;
// One pass needs at least this many rows per block; below it, two passes over 32-row blocks read
// K and V less often per query row, which outweighs computing the scores twice.
constexpr int32_t kThTcMinOnePassRows = 12;

struct TalkingHeadsPlan
{
    TalkingHeadsVariant variant{TalkingHeadsVariant::kFullRow};
    int32_t rows{0};  // query rows per block (<= 16, tensor core <= 32); 0: does not fit the device
    int32_t chunk{0}; // keys per chunk (kStreaming only)
    size_t smemBytes{0};
    int32_t threads{kThThreads};
    int32_t splits{1};          // key splits (kTensorCoreSplit)
    size_t workspaceBytes{0};   // what the launch needs of the caller's workspace
};

// Picks the kernel and tile for a shape. `fp16` and `aligned` (qkv and output 8-byte aligned)
// gate the tensor-core kernel; `want` forces a variant, `rows` a row tile and `splits` the key
// splits (tests, benchmarks); kAuto and 0 decide. Key splits are planned only when
// `workspaceBytes` covers their workspace.
TalkingHeadsPlan talkingHeadsPlan(int32_t batch, int32_t heads, int32_t tokens, int32_t headSize, bool fp16,
    bool aligned, TalkingHeadsDevice const& device, TalkingHeadsVariant want = TalkingHeadsVariant::kAuto,
    int32_t rows = 0, size_t workspaceBytes = 0, int32_t splits = 0);

// The workspace a launch of this shape may use (key splits of a small grid): what a plugin asks
// TensorRT for, with the profile's largest batch and tokens. Monotone in batch and tokens, so
// the value for the running shape never exceeds what was granted for the largest.
size_t talkingHeadsWorkspaceBytes(
    int32_t batch, int32_t heads, int32_t tokens, int32_t headSize, TalkingHeadsDevice const& device);

size_t talkingHeadsStreamingSmemBytes(int32_t rows, int32_t chunk, int32_t heads, int32_t headSize);

// Shared memory of one full-row block holding `rows` query rows: the full score rows of every head
// (fp32), the query tile of one head and the mixing coefficients.
size_t talkingHeadsSmemBytes(int32_t rows, int32_t heads, int32_t tokens, int32_t headSize);

// Largest full-row tile (<= kThMaxRows) whose shared memory fits `maxSmemBytes`; 0 when even one
// row does not fit.
int32_t talkingHeadsRowsPerBlock(int32_t heads, int32_t tokens, int32_t headSize, size_t maxSmemBytes);

// Tensor-core kernel: shapes it is compiled for, its shared memory and block size.
bool talkingHeadsTensorCoreShape(int32_t heads, int32_t headSize);
size_t talkingHeadsTensorCoreSmemBytes(bool onePass, int32_t rows, int32_t heads, int32_t tokens);
int32_t talkingHeadsTensorCoreThreads(int32_t heads);
cudaError_t launchTalkingHeadsTensorCore(TalkingHeadsParams const& params, TalkingHeadsPlan const& plan,
    __half const* qkv, __half* out, void* workspace, cudaStream_t stream);
size_t talkingHeadsSplitWorkspaceBytes(int32_t batch, int32_t heads, int32_t tokens, int32_t rows, int32_t splits);
cudaError_t talkingHeadsTensorCorePrepare(size_t maxSmemBytes);

// Enqueues the planned kernel (talkingHeadsPlan with the same arguments). The kernels must have
// been opted in to the plan's shared memory (talkingHeadsPrepare). Capturable: no allocation, no
// synchronization.
// `workspace` (optional, `workspaceBytes` long) lets small grids use key splits.
template <typename T>
cudaError_t launchTalkingHeads(TalkingHeadsParams const& params, T const* qkv, T* out, TalkingHeadsDevice const& device,
    cudaStream_t stream, TalkingHeadsVariant variant = TalkingHeadsVariant::kAuto, int32_t rows = 0,
    void* workspace = nullptr, size_t workspaceBytes = 0, int32_t splits = 0);

// Opts every kernel in to `maxSmemBytes` of dynamic shared memory (call outside capture, once per
// device, e.g. from configurePlugin/onShapeChange). No-op in the emulation build.
cudaError_t talkingHeadsPrepare(size_t maxSmemBytes);

} // namespace cait
