//===- Passes.h - quantune passes and analyses over the MLIR C API --------===//
//
// Entry points shared by the pass files and the pybind11 bindings. They take
// and return plain C API handles, so C/C++ toolchains can call them without
// Python.
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_PASSES_H
#define QUANTUNE_PASSES_H

#include "mlir-c/IR.h"
#include "mlir-c/Pass.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quantune {

/// One step from a weight constant to the op's weight operand.
struct WeightStep {
  std::string kind;           // "transpose" or "reshape"
  std::vector<int64_t> value; // the permutation, or the new shape
};

/// A quantizable op at linalg level: conv, depthwise/grouped conv, matmul.
struct Layer {
  int64_t id = 0;          // position among quantizable ops, in walk order
  std::string node;        // ONNX node name, from the op's location
  std::string kind;        // conv | depthwise_conv | grouped_conv | matmul | batch_matmul
  std::string opName;      // e.g. linalg.conv_2d_nchw_fchw
  std::string elementType; // element type of the activation input, e.g. f32
  std::string precision;   // "fp32" (float op) or "int8" (rewritten by quantune)
  // Output channels: their dims in the weight operand and in the op result,
  // listed in the same order (two dims for grouped convs: group, filter).
  std::vector<int64_t> weightChannelDims, outputChannelDims;
  MlirOperation op{nullptr};
  MlirValue input{nullptr};  // activation as the node receives it (before its pad)
  MlirValue output{nullptr}; // the node's result (after its own bias/reshape)
  MlirValue weight() const;  // the op's weight operand (operand 1)
  // The node's own ops around `op`, in program order: input → prologue → op
  // → epilogue → output (pads/reshapes before, bias/reshape after).
  std::vector<MlirOperation> prologue, epilogue;
  std::vector<int64_t> inputShape, weightShape, outputShape;
  // The weight, when it is a constant reached through transposes/reshapes.
  bool weightIsConstant = false;
  MlirAttribute weightAttr{nullptr}; // dense elements or dense resource
  std::vector<int64_t> weightConstShape;
  std::vector<WeightStep> weightSteps; // applied in order: constant → operand
};

/// Lists every quantizable op under `root`, in walk (program) order: float
/// ops, and integer ops that quantune-quantize-layers produced from them
/// (which keep their position, so a layer keeps its id).
std::vector<Layer> collectLayers(MlirOperation root);

/// Discardable attributes quantune-quantize-layers leaves on its ops.
constexpr const char *kLayerAttr = "quantune.layer";     // on the integer op
constexpr const char *kRoleAttr = "quantune.role";       // on its generics
constexpr const char *kRoleQuantize = "quantize";
constexpr const char *kRoleDequantize = "dequantize";

/// One layer to rewrite into integer compute.
struct LayerQuantization {
  int64_t layerId = 0;
  float actScale = 1.0f;         // activation: q = clamp(rne(x / s) + zp)
  int32_t actZeroPoint = 0;
  std::vector<float> weightScales; // one per output channel, or one in all
};

/// State shared between the caller and quantune-quantize-layers.
struct QuantizeOptions {
  std::vector<LayerQuantization> layers;
  std::string error; // why the pass failed, if it did
};

/// Creates the quantune-quantize-layers pass (anchored on builtin.module).
MlirPass createQuantizeLayersPass(QuantizeOptions *options);

/// Where each layer's taps landed among the entry function's results.
struct TapEntry {
  int64_t layerId = 0;
  int64_t inputResult = -1;
  int64_t outputResult = -1;
};
struct TapResult {
  std::string function;   // symbol name of the tapped function
  int64_t numOriginalResults = 0;
  int64_t numTaps = 0;    // distinct values added as results
  std::vector<TapEntry> entries;
};

/// State shared between the caller and the quantune-insert-taps pass.
struct InsertTapsOptions {
  bool allLayers = true;          // tap every layer, else only layerIds
  std::vector<int64_t> layerIds;
  TapResult result;              // filled in by the pass
  std::string error;             // why the pass failed, if it did
};

/// Creates the quantune-insert-taps pass (anchored on builtin.module). The
/// options must outlive the pass.
MlirPass createInsertTapsPass(InsertTapsOptions *options);

} // namespace quantune

#endif // QUANTUNE_PASSES_H
