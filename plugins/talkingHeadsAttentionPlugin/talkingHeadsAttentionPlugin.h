// IPluginV3 for CaitTalkingHeadsAttention (contract: pipeline/contract/specs.py and the README).
// One source for TensorRT 10.3 .. 11.x.
#pragma once

#include "common/pluginUtils.h"
#include "talkingHeadsAttentionPlugin/talkingHeadsAttentionKernel.h"

#include <NvInferRuntime.h>

#include <string>
#include <vector>

namespace cait
{

constexpr char const* kTALKING_HEADS_PLUGIN_NAME{"CaitTalkingHeadsAttention"};
constexpr char const* kTALKING_HEADS_PLUGIN_VERSION{"1"};
constexpr char const* kTALKING_HEADS_PLUGIN_NAMESPACE{""};

// The validated attributes; also what getFieldsToSerialize writes back.
struct TalkingHeadsAttributes
{
    int32_t numHeads{0};
    float scale{1.F};
    std::vector<float> preWeight;  // H*H, row-major: s'_o = sum_i W[o*H+i] s_i + b_o
    std::vector<float> preBias;    // H
    std::vector<float> postWeight; // H*H, applied to the softmax probabilities
    std::vector<float> postBias;   // H
};

class TalkingHeadsAttentionPlugin : public nvinfer1::IPluginV3,
                                    public nvinfer1::IPluginV3OneCore,
                                    public nvinfer1::IPluginV3OneBuild,
                                    public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit TalkingHeadsAttentionPlugin(TalkingHeadsAttributes attrs);
    ~TalkingHeadsAttentionPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    // Head size from the last input dimension (3*H*d); throws when H does not divide it.
    int32_t headSizeOf(int64_t lastDim) const;
    // Throws when no kernel has a tile for `tokens` keys on this device. The CUDA-core kernels are
    // the reference: every launch can fall back to them (fp32, unaligned tensors).
    void checkFits(int64_t tokens, int32_t headSize);

    TalkingHeadsAttributes mAttrs;
    TalkingHeadsParams mParams{}; // attrs in the kernel's layout; shapes filled in per enqueue
    TalkingHeadsDevice mDevice{0, 0, 0}; // queried on first use (maxSmemBytes 0: not yet)
    bool mPrepared{false};                // kernels opted in to mDevice.maxSmemBytes (copied by clone)
    FieldList mSerialized;
};

class TalkingHeadsAttentionPluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    TalkingHeadsAttentionPluginCreator();
    ~TalkingHeadsAttentionPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

// Parses and validates the attributes of one node; throws PluginError with the reason.
TalkingHeadsAttributes parseTalkingHeadsAttributes(nvinfer1::PluginFieldCollection const* fc);

} // namespace cait
