#include "classAttentionPlugin/classAttentionPlugin.h"

#include <string>

using namespace nvinfer1;

namespace cait
{

namespace
{
constexpr char const* kPlugin = kCLASS_ATTENTION_PLUGIN_NAME;
}

ClassAttentionAttributes parseClassAttentionAttributes(PluginFieldCollection const* fc)
{
    FieldReader reader(fc, kPlugin);
    ClassAttentionAttributes a;
    a.numHeads = reader.getInt("num_heads");
    check(a.numHeads >= 1 && a.numHeads <= 65535,
        std::string(kPlugin) + ": num_heads must be in [1, 65535], got " + std::to_string(a.numHeads));
    a.scale = reader.getFloat("scale");
    return a;
}

ClassAttentionPlugin::ClassAttentionPlugin(ClassAttentionAttributes attrs)
    : mAttrs(attrs)
{
    check(mAttrs.numHeads >= 1, "num_heads must be positive");
}

IPluginCapability* ClassAttentionPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
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

IPluginV3* ClassAttentionPlugin::clone() noexcept
{
    try
    {
        // Everything, as NVIDIA's V3 plugins do: a clone may be enqueued without its own
        // onShapeChange. The serialized field list points into the source: rebuilt on demand.
        auto* p = new ClassAttentionPlugin(*this);
        p->mSerialized.clear();
        return p;
    }
    CAIT_CATCH_ALL(kPlugin, nullptr);
}

char const* ClassAttentionPlugin::getPluginName() const noexcept
{
    return kCLASS_ATTENTION_PLUGIN_NAME;
}

char const* ClassAttentionPlugin::getPluginVersion() const noexcept
{
    return kCLASS_ATTENTION_PLUGIN_VERSION;
}

char const* ClassAttentionPlugin::getPluginNamespace() const noexcept
{
    return kCLASS_ATTENTION_PLUGIN_NAMESPACE;
}

int32_t ClassAttentionPlugin::getNbOutputs() const noexcept
{
    return 1;
}

int32_t ClassAttentionPlugin::headSizeOf(int64_t channels) const
{
    check(channels > 0 && channels % mAttrs.numHeads == 0,
        "C=" + std::to_string(channels) + " is not divisible by num_heads=" + std::to_string(mAttrs.numHeads));
    int64_t const d = channels / mAttrs.numHeads;
    check(d <= kCaMaxHeadSize,
        "head size " + std::to_string(d) + " exceeds the kernel's limit of " + std::to_string(kCaMaxHeadSize));
    return static_cast<int32_t>(d);
}

void ClassAttentionPlugin::checkFits(int64_t tokens, int32_t headSize)
{
    if (mMaxSmem == 0)
    {
        mMaxSmem = deviceMaxSharedMemoryPerBlock();
    }
    check(tokens >= 1 && tokens <= INT32_MAX, "token count out of range");
    size_t const need = classAttentionSmemBytes(static_cast<int32_t>(tokens), headSize);
    check(need <= mMaxSmem,
        "T=" + std::to_string(tokens) + " needs " + std::to_string(need) + " bytes of shared memory per block; "
            + "this device allows " + std::to_string(mMaxSmem));
}

namespace
{
// q (B, 1, C), k and v (B, T, C): same B and C, same T for k and v.
void checkShapes(Dims const& q, Dims const& k, Dims const& v)
{
    check(q.nbDims == 3 && k.nbDims == 3 && v.nbDims == 3, "q, k, v must be rank 3");
    auto same = [](int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; };
    check(same(q.d[1], 1), "q must be (B, 1, C)");
    check(same(q.d[0], k.d[0]) && same(k.d[0], v.d[0]), "q, k, v batch sizes differ");
    check(same(q.d[2], k.d[2]) && same(k.d[2], v.d[2]), "q, k, v channel counts differ");
    check(same(k.d[1], v.d[1]), "k and v token counts differ");
}
} // namespace

int32_t ClassAttentionPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        check(in != nullptr && out != nullptr && nbInputs == 3 && nbOutputs == 1, "expects 3 inputs and 1 output");
        checkShapes(in[0].desc.dims, in[1].desc.dims, in[2].desc.dims);
        int32_t const d = headSizeOf(in[0].desc.dims.d[2] >= 0 ? in[0].desc.dims.d[2] : in[0].max.d[2]);
        checkFits(in[1].max.d[1], d);
        checkMaxBatch(in[1].max.d[0]);
        return 0;
    }
    CAIT_CATCH_ALL(kPlugin, -1);
}

int32_t ClassAttentionPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        check(outputTypes != nullptr && inputTypes != nullptr && nbOutputs == 1 && nbInputs == 3,
            "expects 3 inputs and 1 output");
        check(isFloatOrHalf(inputTypes[0]), "q must be float32 or float16");
        check(inputTypes[1] == inputTypes[0] && inputTypes[2] == inputTypes[0], "q, k, v must share one dtype");
        outputTypes[0] = inputTypes[0];
        return 0;
    }
    CAIT_CATCH_ALL(kPlugin, -1);
}

int32_t ClassAttentionPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
    DimsExprs const* /*shapeInputs*/, int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs,
    IExprBuilder& /*exprBuilder*/) noexcept
{
    try
    {
        check(inputs != nullptr && outputs != nullptr && nbInputs == 3 && nbOutputs == 1 && nbShapeInputs == 0,
            "expects 3 inputs, 1 output and no shape inputs");
        check(inputs[0].nbDims == 3 && inputs[1].nbDims == 3 && inputs[2].nbDims == 3, "q, k, v must be rank 3");
        if (inputs[0].d[2]->isConstant())
        {
            headSizeOf(inputs[0].d[2]->getConstantValue());
        }
        outputs[0] = inputs[0];
        return 0;
    }
    CAIT_CATCH_ALL(kPlugin, -1);
}

bool ClassAttentionPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        check(inOut != nullptr && nbInputs == 3 && nbOutputs == 1 && pos >= 0 && pos < 4, "bad format query");
        PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != TensorFormat::kLINEAR || !isFloatOrHalf(desc.type))
        {
            return false;
        }
        return pos == 0 || desc.type == inOut[0].desc.type;
    }
    CAIT_CATCH_ALL(kPlugin, false);
}

size_t ClassAttentionPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0;
}

int32_t ClassAttentionPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        check(in != nullptr && out != nullptr && nbInputs == 3 && nbOutputs == 1, "expects 3 inputs and 1 output");
        checkShapes(in[0].dims, in[1].dims, in[2].dims);
        int32_t const d = headSizeOf(in[0].dims.d[2]);
        checkFits(in[1].dims.d[1], d);
        if (!mPrepared)
        {
            check(classAttentionPrepare(mMaxSmem) == cudaSuccess,
                "cudaFuncSetAttribute(MaxDynamicSharedMemorySize) failed");
            mPrepared = true;
        }
        return 0;
    }
    CAIT_CATCH_ALL(kPlugin, -1);
}

int32_t ClassAttentionPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    try
    {
        check(inputDesc != nullptr && outputDesc != nullptr && inputs != nullptr && outputs != nullptr,
            "null descriptors or buffers");
        Dims const& k = inputDesc[1].dims;
        check(k.nbDims == 3 && k.d[0] >= 0 && k.d[1] <= INT32_MAX, "k must be (B, T, C)");
        if (k.d[0] == 0)
        {
            return 0; // an empty batch: nothing to compute, nothing to launch
        }
        check(k.d[0] <= kMaxBatch,
            "batch " + std::to_string(k.d[0]) + " exceeds the kernels' limit of " + std::to_string(kMaxBatch));
        if (!mPrepared)
        {
            // Not a precondition: TensorRT may enqueue a clone whose own onShapeChange never ran
            // (NVIDIA's V3 plugins do not gate on it). Doing its work here is no stream work.
            check(onShapeChange(inputDesc, 3, outputDesc, 1) == 0, "shape check failed (see above)");
        }
        ClassAttentionParams p{};
        p.batch = static_cast<int32_t>(k.d[0]);
        p.tokens = static_cast<int32_t>(k.d[1]);
        p.heads = mAttrs.numHeads;
        p.headSize = headSizeOf(k.d[2]);
        p.scale = mAttrs.scale;
        cudaError_t err = cudaErrorInvalidValue;
        if (inputDesc[0].type == DataType::kFLOAT)
        {
            err = launchClassAttention<float>(p, static_cast<float const*>(inputs[0]),
                static_cast<float const*>(inputs[1]), static_cast<float const*>(inputs[2]),
                static_cast<float*>(outputs[0]), mMaxSmem, stream);
        }
        else if (inputDesc[0].type == DataType::kHALF)
        {
            err = launchClassAttention<__half>(p, static_cast<__half const*>(inputs[0]),
                static_cast<__half const*>(inputs[1]), static_cast<__half const*>(inputs[2]),
                static_cast<__half*>(outputs[0]), mMaxSmem, stream);
        }
        check(err == cudaSuccess, std::string("kernel launch failed: ") + cudaGetErrorString(err));
        return 0;
    }
    CAIT_CATCH_ALL(kPlugin, -1);
}

IPluginV3* ClassAttentionPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone();
}

PluginFieldCollection const* ClassAttentionPlugin::getFieldsToSerialize() noexcept
{
    try
    {
        mSerialized.clear();
        mSerialized.add("num_heads", &mAttrs.numHeads, PluginFieldType::kINT32, 1);
        mSerialized.add("scale", &mAttrs.scale, PluginFieldType::kFLOAT32, 1);
        return mSerialized.collection();
    }
    CAIT_CATCH_ALL(kPlugin, nullptr);
}

// ---- creator -----------------------------------------------------------------------------------

ClassAttentionPluginCreator::ClassAttentionPluginCreator()
{
    // tests/plugins/test_plugin_specs.py parses these lines against pipeline/plugin_specs.py.
    mFields.emplace_back(PluginField("num_heads", nullptr, PluginFieldType::kINT32, 1));
    mFields.emplace_back(PluginField("scale", nullptr, PluginFieldType::kFLOAT32, 1));
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

char const* ClassAttentionPluginCreator::getPluginName() const noexcept
{
    return kCLASS_ATTENTION_PLUGIN_NAME;
}

char const* ClassAttentionPluginCreator::getPluginVersion() const noexcept
{
    return kCLASS_ATTENTION_PLUGIN_VERSION;
}

char const* ClassAttentionPluginCreator::getPluginNamespace() const noexcept
{
    return kCLASS_ATTENTION_PLUGIN_NAMESPACE;
}

PluginFieldCollection const* ClassAttentionPluginCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

IPluginV3* ClassAttentionPluginCreator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    try
    {
        return new ClassAttentionPlugin(parseClassAttentionAttributes(fc));
    }
    CAIT_CATCH_ALL(kPlugin, nullptr);
}

} // namespace cait
