#include "common/pluginUtils.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstring>

namespace cait
{

using namespace nvinfer1;

void reportError(std::string const& message, ErrorCode code) noexcept
{
    try
    {
        if (IPluginRegistry* registry = getPluginRegistry())
        {
            if (IErrorRecorder* recorder = registry->getErrorRecorder())
            {
                recorder->reportError(code, message.c_str());
            }
        }
        if (ILogger* logger = getLogger())
        {
            logger->log(ILogger::Severity::kERROR, message.c_str());
        }
    }
    catch (...)
    {
        // Reporting must never throw out of a noexcept method.
    }
}

FieldReader::FieldReader(PluginFieldCollection const* fc, char const* pluginName)
    : mFc(fc)
    , mPlugin(pluginName)
{
    check(fc != nullptr, mPlugin + ": no attribute collection");
    check(fc->nbFields >= 0 && (fc->nbFields == 0 || fc->fields != nullptr), mPlugin + ": malformed attribute collection");
}

PluginField const& FieldReader::find(char const* name) const
{
    for (int32_t i = 0; i < mFc->nbFields; ++i)
    {
        PluginField const& f = mFc->fields[i];
        if (f.name != nullptr && std::strcmp(f.name, name) == 0)
        {
            check(f.data != nullptr || f.length == 0, mPlugin + ": attribute '" + name + "' has no data");
            return f;
        }
    }
    throw PluginError(mPlugin + ": missing attribute '" + name + "'");
}

int32_t FieldReader::getInt(char const* name) const
{
    PluginField const& f = find(name);
    check(f.length == 1, mPlugin + ": attribute '" + name + "' must be one int, got length " + std::to_string(f.length));
    switch (f.type)
    {
    case PluginFieldType::kINT32: return *static_cast<int32_t const*>(f.data);
    case PluginFieldType::kINT64:
    {
        int64_t const v = *static_cast<int64_t const*>(f.data);
        check(v >= INT32_MIN && v <= INT32_MAX, mPlugin + ": attribute '" + name + "' out of int32 range");
        return static_cast<int32_t>(v);
    }
    default: throw PluginError(mPlugin + ": attribute '" + name + "' must be an int");
    }
}

std::vector<float> FieldReader::getFloats(char const* name, int64_t expectedLength) const
{
    PluginField const& f = find(name);
    if (expectedLength >= 0)
    {
        check(f.length == expectedLength,
            mPlugin + ": attribute '" + name + "' must have " + std::to_string(expectedLength) + " values, got "
                + std::to_string(f.length));
    }
    check(f.length >= 1, mPlugin + ": attribute '" + name + "' is empty");
    std::vector<float> values(static_cast<size_t>(f.length));
    switch (f.type)
    {
    case PluginFieldType::kFLOAT32: std::memcpy(values.data(), f.data, values.size() * sizeof(float)); break;
    case PluginFieldType::kFLOAT64:
        for (size_t i = 0; i < values.size(); ++i)
        {
            values[i] = static_cast<float>(static_cast<double const*>(f.data)[i]);
        }
        break;
    default: throw PluginError(mPlugin + ": attribute '" + name + "' must be float32");
    }
    for (float v : values)
    {
        check(std::isfinite(v), mPlugin + ": attribute '" + name + "' holds a non-finite value");
    }
    return values;
}

float FieldReader::getFloat(char const* name) const
{
    return getFloats(name, 1)[0];
}

void FieldList::clear()
{
    mFields.clear();
}

void FieldList::add(char const* name, void const* data, PluginFieldType type, int32_t length)
{
    mFields.emplace_back(name, data, type, length);
}

PluginFieldCollection const* FieldList::collection() noexcept
{
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
    return &mCollection;
}

DeviceLimits currentDeviceLimits()
{
    int device = 0;
    check(cudaGetDevice(&device) == cudaSuccess, "cudaGetDevice failed");
    auto attribute = [device](cudaDeviceAttr attr, char const* name) {
        int value = 0;
        check(cudaDeviceGetAttribute(&value, attr, device) == cudaSuccess,
            std::string("cudaDeviceGetAttribute(") + name + ") failed");
        return value;
    };
    DeviceLimits limits{};
    limits.maxSmemPerBlock = static_cast<size_t>(
        attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, "MaxSharedMemoryPerBlockOptin"));
    limits.smCount = attribute(cudaDevAttrMultiProcessorCount, "MultiProcessorCount");
    limits.smVersion = 10 * attribute(cudaDevAttrComputeCapabilityMajor, "ComputeCapabilityMajor")
        + attribute(cudaDevAttrComputeCapabilityMinor, "ComputeCapabilityMinor");
    return limits;
}

size_t deviceMaxSharedMemoryPerBlock()
{
    return currentDeviceLimits().maxSmemPerBlock;
}

void checkMaxBatch(int64_t maxBatch)
{
    check(maxBatch <= kMaxBatch,
        "the profile's largest batch " + std::to_string(maxBatch) + " exceeds the kernels' limit of "
            + std::to_string(kMaxBatch) + " (CUDA grid y dimension); lower the profile's max batch");
}

bool isFloatOrHalf(DataType t) noexcept
{
    return t == DataType::kFLOAT || t == DataType::kHALF;
}

} // namespace cait
