//===- QuantizeLayers.h - quantune-quantize-layers ------------------------===//
//
// Rewrites chosen float layers into integer compute with the scales the
// caller decided (see lib/Transforms/QuantizeLayers.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_QUANTIZELAYERS_H
#define QUANTUNE_QUANTIZELAYERS_H

#include "mlir-c/Pass.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quantune {

/// One layer to rewrite into integer compute.
struct LayerQuantization {
  int64_t layerId = 0;
  float actScale = 1.0f; // activation: q = clamp(rne(x / s) + zp)
  int32_t actZeroPoint = 0;
  std::vector<float> weightScales; // one per output channel, or one in all
};

/// State shared between the caller and quantune-quantize-layers.
struct QuantizeOptions {
  std::vector<LayerQuantization> layers;
  std::string error; // why the pass failed, if it did
};

/// Creates the quantune-quantize-layers pass (anchored on builtin.module).
/// The options must outlive the pass.
MlirPass createQuantizeLayersPass(QuantizeOptions *options);

} // namespace quantune

#endif // QUANTUNE_QUANTIZELAYERS_H
