//===- LayerWeights.h - A layer's weight and bias as numbers --------------===//
//
// What quantizing a layer reads from its IR: the weight values and the bias.
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_LAYERWEIGHTS_H
#define QUANTUNE_LAYERWEIGHTS_H

#include "quantune/LayerTable.h"

#include <cstdint>
#include <vector>

namespace quantune {

/// The weight in the op's operand layout, from its f32 dense constant;
/// throws NativeError for any other weight.
std::vector<float> operandWeight(const Layer &l);

/// Per-element output-channel index of a row-major tensor of `shape`, with
/// channels along `dims` (row-major over those dims).
std::vector<int64_t> channelIndex(const std::vector<int64_t> &shape,
                                  const std::vector<int64_t> &dims);

/// The f32 values of a 1-D dense constant of `n` elements defining `v`, or
/// empty.
std::vector<float> constantVector(MlirValue v, int64_t n);

/// Whether `v` is a linalg.fill with +0.0.
bool isZeroFill(MlirValue v);

/// The per-channel bias when `init` broadcasts a constant along the output
/// channels (a conv bias; through the expand_shape of a grouped conv), or
/// empty.
std::vector<float> broadcastBias(const Layer &l, MlirValue init, int64_t channels);

/// The node's own bias add after a matmul (Gemm: a generic adding a
/// per-column constant), its values in `bias`; null when there is none.
MlirOperation epilogueBiasAdd(const Layer &l, int64_t channels, std::vector<float> &bias);

} // namespace quantune

#endif // QUANTUNE_LAYERWEIGHTS_H
