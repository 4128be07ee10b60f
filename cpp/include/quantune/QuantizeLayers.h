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

/// How a layer's integer compute is written. Every form computes the same
/// integers (and so the same dequantized floats, bit for bit); they differ in
/// what IREE's code generators make of them on each target, so the caller
/// picks one per layer and target.
struct IntegerForm {
  /// The quantized activation in memory: signed i8; u8 (q + 128, the zero
  /// point shifted, held in i8 bits and read with arith.extui, so x86 reaches
  /// its u8 x s8 dot products); or i16 (values still in [-128, 127], so the
  /// aarch64 backend multiplies without re-narrowing); or i32 (values still in
  /// [-128, 127], weights i32 too: IREE 3.13's SPIR-V lowering loses the sign
  /// extension of i8 loaded 8 or 16 at a time, llvm/llvm-project#199243).
  enum class Storage { I8, U8, I16, I32 };
  /// The contraction: the layer's own named op in its own layout; or
  /// channels-last (NHWC) around transposes IREE can cancel between layers,
  /// convs and depthwise convs as linalg.generic, stride-1 1x1 convs as a
  /// matmul over the collapsed pixels; or im2col, channels-last with the
  /// other convs as gathered patches times the weight, one matmul (what
  /// reaches x86's u8 x s8 data-tiled kernels).
  enum class Contraction { Named, ChannelsLast, Im2col };
  Storage storage = Storage::I8;
  Contraction contraction = Contraction::Named;
  /// Quantize by the reciprocal with one Markstein correction and round by
  /// the 1.5 * 2^23 addition, which equals x / s rounded half to even exactly
  /// but costs a fraction of a vector division and of IREE's roundeven
  /// expansion on CPUs with a fused multiply-add. Off: arith.divf and
  /// math.roundeven.
  bool reciprocal = false;
};

/// One layer to rewrite into integer compute.
struct LayerQuantization {
  int64_t layerId = 0;
  float actScale = 1.0f; // activation: q = clamp(rne(x / s) + zp)
  int32_t actZeroPoint = 0;
  std::vector<float> weightScales; // one per output channel, or one in all
  IntegerForm form;
  /// Added to each output channel's result before dequantization, folded
  /// into the int32 bias (bias correction); empty for none.
  std::vector<float> biasCorrection;
  /// Added to each round-to-nearest weight code before the clamp (data-aware
  /// rounding decided by the caller), in the weight operand's layout; empty
  /// for none.
  std::vector<int8_t> weightOffsets;
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
