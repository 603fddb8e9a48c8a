#include "talkingHeadsAttentionPlugin/talkingHeadsAttentionPlugin.h"

#include <algorithm>
#include <cstring>
#include <utility>

using namespace nvinfer1;

namespace cait
{

namespace
{
constexpr char const* kPlugin = kTALKING_HEADS_PLUGIN_NAME;
}

TalkingHeadsAttributes parseTalkingHeadsAttributes(PluginFieldCollection const* fc)
{
    FieldReader reader(fc, kPlugin);
    TalkingHeadsAttributes a;
    a.numHeads = reader.getInt("num_heads");
    check(a.numHeads >= 1 && a.numHeads <= kThMaxHeads,
        std::string(kPlugin) + ": num_heads must be in [1, " + std::to_string(kThMaxHeads) + "], got "
            + std::to_string(a.numHeads));
    a.scale = reader.getFloat("scale");
    int64_t const hh = static_cast<int64_t>(a.numHeads) * a.numHeads;
    // The H*H checks name the relation, so that a transposed or per-layer-mixed export is obvious.
    a.preWeight = reader.getFloats("pre_weight", hh);
    a.preBias = reader.getFloats("pre_bias", a.numHeads);
    a.postWeight = reader.getFloats("post_weight", hh);
    a.postBias = reader.getFloats("post_bias", a.numHeads);
    return a;
}

TalkingHeadsAttentionPlugin::TalkingHeadsAttentionPlugin(TalkingHeadsAttributes attrs)
    : mAttrs(std::move(attrs))
{
    int32_t const H = mAttrs.numHeads;
    check(H >= 1 && H <= kThMaxHeads, "num_heads out of range");
    check(mAttrs.preWeight.size() == static_cast<size_t>(H * H) && mAttrs.postWeight.size() == static_cast<size_t>(H * H)
            && mAttrs.preBias.size() == static_cast<size_t>(H) && mAttrs.postBias.size() == static_cast<size_t>(H),
        "mixing coefficients do not match num_heads");
    mParams.heads = H;
    mParams.scale = mAttrs.scale;
    std::copy(mAttrs.preWeight.begin(), mAttrs.preWeight.end(), mParams.preWeight);
    std::copy(mAttrs.preBias.begin(), mAttrs.preBias.end(), mParams.preBias);
    std::copy(mAttrs.postWeight.begin(), mAttrs.postWeight.end(), mParams.postWeight);
    std::copy(mAttrs.postBias.begin(), mAttrs.postBias.end(), mParams.postBias);
}

IPluginCapability* TalkingHeadsAttentionPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    try
    {
        switch (type)
        {
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
        case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
        throw PluginError("unknown capability type");
    }
    CAIT_CATCH_ALL(kPlugin, nullptr);
}

IPluginV3* TalkingHeadsAttentionPlugin::clone() noexcept
{
    try
    {
        // Everything, as NVIDIA's V3 plugins do: a clone may be enqueued without its own
        // onShapeChange. The serialized field list points into the source: rebuilt on demand.
        auto* p = new TalkingHeadsAttentionPlugin(*this);
        p->mSerialized.clear();
        return p;
    }
    CAIT_CATCH_ALL(kPlugin, nullptr);
}

char const* TalkingHeadsAttentionPlugin::getPluginName() const noexcept
{
    return kTALKING_HEADS_PLUGIN_NAME;
}

char const* TalkingHeadsAttentionPlugin::getPluginVersion() const noexcept
{
    return kTALKING_HEADS_PLUGIN_VERSION;
}

char const* TalkingHeadsAttentionPlugin::getPluginNamespace() const noexcept
{
    return kTALKING_HEADS_PLUGIN_NAMESPACE;
}

int32_t TalkingHeadsAttentionPlugin::getNbOutputs() const noexcept
{
    return 1;
}

int32_t TalkingHeadsAttentionPlugin::headSizeOf(int64_t lastDim) const
{
    int64_t const H = mAttrs.numHeads;
    check(lastDim > 0 && lastDim % (3 * H) == 0,
        std::string("qkv last dimension ") + std::to_string(lastDim) + " is not 3 * num_heads * head_size with num_heads="
            + std::to_string(H) + " (head size must divide C)");
    return static_cast<int32_t>(lastDim / (3 * H));
}

void TalkingHeadsAttentionPlugin::checkFits(int64_t tokens, int32_t headSize)
{
    if (mDevice.maxSmemBytes == 0)
    {
        DeviceLimits const limits = currentDeviceLimits();
        mDevice = TalkingHeadsDevice{limits.maxSmemPerBlock, limits.smCount, limits.smVersion};
    }
    check(tokens <= INT32_MAX, "token count out of range");
    TalkingHeadsPlan const plan = talkingHeadsPlan(
        1, mAttrs.numHeads, static_cast<int32_t>(tokens), headSize, /*fp16=*/false, /*aligned=*/false, mDevice);
    check(plan.rows > 0,
        "N=" + std::to_string(tokens) + " with num_heads=" + std::to_string(mAttrs.numHeads) + " fits no tile: one "
            + "full score row needs "
            + std::to_string(talkingHeadsSmemBytes(1, mAttrs.numHeads, static_cast<int32_t>(tokens), headSize))
            + " bytes of shared memory, the streaming kernel "
            + std::to_string(talkingHeadsStreamingSmemBytes(1, 8, mAttrs.numHeads, headSize)) + " (and C <= "
            + std::to_string(kThStreamMaxChannels) + "); this device allows " + std::to_string(mDevice.maxSmemBytes));
}

int32_t TalkingHeadsAttentionPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        check(in != nullptr && out != nullptr && nbInputs == 1 && nbOutputs == 1, "expects 1 input and 1 output");
        Dims const& maxDims = in[0].max;
        check(in[0].desc.dims.nbDims == 3, "qkv must be (B, N, 3C)");
        int64_t const lastDim = in[0].desc.dims.d[2] >= 0 ? in[0].desc.dims.d[2] : maxDims.d[2];
        int32_t const d = headSizeOf(lastDim);
        checkFits(maxDims.d[1], d); // the largest N of the profile must fit, not just the optimum
        checkMaxBatch(maxDims.d[0]);
        return 0;
    }
    CAIT_CATCH_ALL(kPlugin, -1);
}

int32_t TalkingHeadsAttentionPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        check(outputTypes != nullptr && inputTypes != nullptr && nbOutputs == 1 && nbInputs == 1,
            "expects 1 input and 1 output");
        check(isFloatOrHalf(inputTypes[0]), "qkv must be float32 or float16");
        outputTypes[0] = inputTypes[0];
        return 0;
    }
    CAIT_CATCH_ALL(kPlugin, -1);
}

int32_t TalkingHeadsAttentionPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
    DimsExprs const* /*shapeInputs*/, int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs,
    IExprBuilder& exprBuilder) noexcept
{
    try
    {
        check(inputs != nullptr && outputs != nullptr && nbInputs == 1 && nbOutputs == 1 && nbShapeInputs == 0,
            "expects 1 input, 1 output and no shape inputs");
        check(inputs[0].nbDims == 3, "qkv must be rank 3 (B, N, 3C)");
        if (inputs[0].d[2]->isConstant())
        {
            headSizeOf(inputs[0].d[2]->getConstantValue());
        }
        outputs[0].nbDims = 3;
        outputs[0].d[0] = inputs[0].d[0];
        outputs[0].d[1] = inputs[0].d[1];
        outputs[0].d[2] = exprBuilder.operation(DimensionOperation::kFLOOR_DIV, *inputs[0].d[2], *exprBuilder.constant(3));
        return 0;
    }
    CAIT_CATCH_ALL(kPlugin, -1);
}

bool TalkingHeadsAttentionPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        check(inOut != nullptr && nbInputs == 1 && nbOutputs == 1 && pos >= 0 && pos < 2, "bad format query");
        PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != TensorFormat::kLINEAR || !isFloatOrHalf(desc.type))
        {
            return false;
        }
        return pos == 0 || desc.type == inOut[0].desc.type;
    }
    CAIT_CATCH_ALL(kPlugin, false);
}

size_t TalkingHeadsAttentionPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    try
    {
        // Scores live in shared memory only. The workspace is for small grids (batch 1), whose
        // keys the tensor-core kernel splits over blocks: sized at the profile's largest shape,
        // and the size for any smaller shape is no larger (talkingHeadsWorkspaceBytes).
        check(inputs != nullptr && nbInputs == 1, "expects 1 input");
        Dims const& max = inputs[0].max;
        if (inputs[0].desc.type != DataType::kHALF || max.nbDims != 3 || max.d[0] <= 0 || max.d[1] <= 0)
        {
            return 0;
        }
        DeviceLimits const limits = currentDeviceLimits();
        TalkingHeadsDevice const device{limits.maxSmemPerBlock, limits.smCount, limits.smVersion};
        int32_t const d = headSizeOf(max.d[2]);
        return talkingHeadsWorkspaceBytes(static_cast<int32_t>(max.d[0] < kMaxBatch ? max.d[0] : kMaxBatch),
            mAttrs.numHeads, static_cast<int32_t>(max.d[1] < INT32_MAX ? max.d[1] : INT32_MAX), d, device);
    }
    CAIT_CATCH_ALL(kPlugin, 0);
}

int32_t TalkingHeadsAttentionPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        check(in != nullptr && out != nullptr && nbInputs == 1 && nbOutputs == 1, "expects 1 input and 1 output");
        check(in[0].dims.nbDims == 3 && out[0].dims.nbDims == 3, "qkv and output must be rank 3");
        int32_t const d = headSizeOf(in[0].dims.d[2]);
        checkFits(in[0].dims.d[1], d);
        if (!mPrepared)
        {
            // Outside enqueue: cudaFuncSetAttribute is no stream work, but keep capture free of it.
            check(talkingHeadsPrepare(mDevice.maxSmemBytes) == cudaSuccess, "cudaFuncSetAttribute(MaxDynamicSharedMemorySize) failed");
            mPrepared = true;
        }
        return 0;
    }
    CAIT_CATCH_ALL(kPlugin, -1);
}

int32_t TalkingHeadsAttentionPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        check(inputDesc != nullptr && outputDesc != nullptr && inputs != nullptr && outputs != nullptr,
            "null descriptors or buffers");
        Dims const& dims = inputDesc[0].dims;
        check(dims.nbDims == 3 && dims.d[0] >= 0 && dims.d[1] >= 0, "qkv must be (B, N, 3C)");
        if (dims.d[0] == 0 || dims.d[1] == 0)
        {
            return 0; // an empty batch: nothing to compute, nothing to launch
        }
        check(dims.d[0] <= kMaxBatch && dims.d[1] <= INT32_MAX,
            "batch " + std::to_string(dims.d[0]) + " exceeds the kernels' limit of " + std::to_string(kMaxBatch));
        if (!mPrepared)
        {
            // Not a precondition: TensorRT may enqueue a clone whose own onShapeChange never ran
            // (NVIDIA's V3 plugins do not gate on it). Doing its work here is no stream work.
            check(onShapeChange(inputDesc, 1, outputDesc, 1) == 0, "shape check failed (see above)");
        }
        TalkingHeadsParams& p = mParams;
        p.batch = static_cast<int32_t>(dims.d[0]);
        p.tokens = static_cast<int32_t>(dims.d[1]);
        p.headSize = headSizeOf(dims.d[2]);
        cudaError_t err = cudaErrorInvalidValue;
        if (inputDesc[0].type == DataType::kFLOAT)
        {
            err = launchTalkingHeads<float>(
                p, static_cast<float const*>(inputs[0]), static_cast<float*>(outputs[0]), mDevice, stream);
        }
        else if (inputDesc[0].type == DataType::kHALF)
        {
            // The workspace holds at least the bound for the running shape (it was sized at the
            // profile's largest, and the bound grows with batch and tokens).
            size_t const wsBytes = talkingHeadsWorkspaceBytes(p.batch, p.heads, p.tokens, p.headSize, mDevice);
            err = launchTalkingHeads<__half>(p, static_cast<__half const*>(inputs[0]), static_cast<__half*>(outputs[0]),
                mDevice, stream, TalkingHeadsVariant::kAuto, 0, workspace, wsBytes);
        }
        check(err == cudaSuccess, std::string("kernel launch failed: ") + cudaGetErrorString(err));
        return 0;
    }
    CAIT_CATCH_ALL(kPlugin, -1);
}

IPluginV3* TalkingHeadsAttentionPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone();
}

PluginFieldCollection const* TalkingHeadsAttentionPlugin::getFieldsToSerialize() noexcept
{
    try
    {
        mSerialized.clear();
        int32_t const H = mAttrs.numHeads;
        mSerialized.add("num_heads", &mAttrs.numHeads, PluginFieldType::kINT32, 1);
        mSerialized.add("scale", &mAttrs.scale, PluginFieldType::kFLOAT32, 1);
        mSerialized.add("pre_weight", mAttrs.preWeight.data(), PluginFieldType::kFLOAT32, H * H);
        mSerialized.add("pre_bias", mAttrs.preBias.data(), PluginFieldType::kFLOAT32, H);
        mSerialized.add("post_weight", mAttrs.postWeight.data(), PluginFieldType::kFLOAT32, H * H);
        mSerialized.add("post_bias", mAttrs.postBias.data(), PluginFieldType::kFLOAT32, H);
        return mSerialized.collection();
    }
    CAIT_CATCH_ALL(kPlugin, nullptr);
}

// ---- creator -----------------------------------------------------------------------------------

TalkingHeadsAttentionPluginCreator::TalkingHeadsAttentionPluginCreator()
{
    // Length 0: variable (H*H or H, checked against num_heads in createPlugin).
    // tests/plugins/test_plugin_specs.py parses these lines against pipeline/plugin_specs.py.
    mFields.emplace_back(PluginField("num_heads", nullptr, PluginFieldType::kINT32, 1));
    mFields.emplace_back(PluginField("scale", nullptr, PluginFieldType::kFLOAT32, 1));
    mFields.emplace_back(PluginField("pre_weight", nullptr, PluginFieldType::kFLOAT32, 0));
    mFields.emplace_back(PluginField("pre_bias", nullptr, PluginFieldType::kFLOAT32, 0));
    mFields.emplace_back(PluginField("post_weight", nullptr, PluginFieldType::kFLOAT32, 0));
    mFields.emplace_back(PluginField("post_bias", nullptr, PluginFieldType::kFLOAT32, 0));
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

char const* TalkingHeadsAttentionPluginCreator::getPluginName() const noexcept
{
    return kTALKING_HEADS_PLUGIN_NAME;
}

char const* TalkingHeadsAttentionPluginCreator::getPluginVersion() const noexcept
{
    return kTALKING_HEADS_PLUGIN_VERSION;
}

char const* TalkingHeadsAttentionPluginCreator::getPluginNamespace() const noexcept
{
    return kTALKING_HEADS_PLUGIN_NAMESPACE;
}

PluginFieldCollection const* TalkingHeadsAttentionPluginCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

IPluginV3* TalkingHeadsAttentionPluginCreator::createPlugin(
    char const* name, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    try
    {
        // kBUILD and kRUNTIME carry the same fields (getFieldsToSerialize writes every attribute),
        // so both phases go through the same validation.
        (void) name;
        return new TalkingHeadsAttentionPlugin(parseTalkingHeadsAttributes(fc));
    }
    CAIT_CATCH_ALL(kPlugin, nullptr);
}

} // namespace cait
