//===- QuantizeLayers.cpp - quantune-quantize-layers ----------------------===//
//
// Rewrites chosen float layers into real integer compute at linalg level,
// before IREE fuses: the activation is quantized to i8 (x / s, round half to
// even, + zero point, clamp) before the node's own pad, which then pads in i8
// with the zero point; the weight constant becomes an i8 constant quantized
// per output channel (symmetric, [-127, 127]); the same named op runs on
// i8 x i8 with an i32 accumulator; a dequantize generic subtracts the
// zero-point correction and the int32-folded bias (conv init or Gemm bias
// add) and scales by s_x * s_w[c], feeding the original users. A matmul of
// two activations quantizes both (ActivationMatmul.cpp). Layers not listed
// are untouched. Scales come from the caller: the pass decides nothing.
//
//===----------------------------------------------------------------------===//

#include "quantune/QuantizeLayers.h"
#include "quantune/ActivationMatmul.h"
#include "quantune/CAPIHelpers.h"
#include "quantune/IRText.h"
#include "quantune/IntegerRewrite.h"
#include "quantune/LayerTable.h"
#include "quantune/LayerWeights.h"
#include "quantune/Splice.h"

#include "mlir-c/Pass.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

using namespace quantune;

namespace {

/// Step 1: refuses what the pass cannot rewrite, before touching the IR.
void checkQuantizable(const Layer &l, const LayerQuantization &q) {
  if (l.precision != Precision::FP32)
    throw NativeError(layerName(l) + " is already quantized");
  if (!(q.actScale > 0.0f) || !std::isfinite(q.actScale))
    throw NativeError(layerName(l) + ": activation scale must be positive");
  if (q.actZeroPoint < -128 || q.actZeroPoint > 127)
    throw NativeError(layerName(l) + ": zero point outside [-128, 127]");
  if (l.elementType != "f32")
    throw NativeError(layerName(l) + ": only f32 layers can be quantized");
}

/// The weight as int8 per output channel, and what dequantization needs.
struct QuantizedWeight {
  std::vector<int8_t> values;        // in the op's operand layout
  std::vector<int32_t> channelSums;  // Σ q over each output channel
  std::vector<float> outScale;       // s_x · s_w[c]
  std::vector<int64_t> outShape;     // the op's result shape
  std::vector<int64_t> channelShape; // the output-channel dims of the result
  int64_t channels = 1;
};

/// Step 2: symmetric per-channel weights, q = clamp(rne(w / s_w[c]) + o, ±127)
/// with the caller's rounding offsets o (0 without), exactly as
/// quantization.quantize_weight computes them in Python.
QuantizedWeight quantizeWeight(const Layer &l, const LayerQuantization &q) {
  QuantizedWeight out;
  std::vector<float> w = operandWeight(l);
  std::vector<int64_t> wChan = channelIndex(l.weightShape, l.weightChannelDims);
  out.outShape = staticShape(mlirOperationGetResult(l.op, 0));
  for (int64_t d : l.outputChannelDims) {
    out.channelShape.push_back(out.outShape[d]);
    out.channels *= out.outShape[d];
  }
  std::vector<float> wScale = q.weightScales;
  if (wScale.size() == 1)
    wScale.assign(out.channels, wScale[0]);
  if (static_cast<int64_t>(wScale.size()) != out.channels)
    throw NativeError(layerName(l) + ": " + std::to_string(q.weightScales.size()) +
                      " weight scales for " + std::to_string(out.channels) +
                      " output channels");
  for (float s : wScale)
    if (!(s > 0.0f) || !std::isfinite(s))
      throw NativeError(layerName(l) + ": weight scales must be positive");
  const std::vector<int8_t> &offsets = q.weightOffsets;
  if (!offsets.empty() && offsets.size() != w.size())
    throw NativeError(layerName(l) + ": " + std::to_string(offsets.size()) +
                      " weight offsets for " + std::to_string(w.size()) + " weights");
  out.values.resize(w.size());
  out.channelSums.assign(out.channels, 0);
  for (size_t i = 0; i < w.size(); ++i) {
    float r = std::nearbyint(w[i] / wScale[wChan[i]]) + (offsets.empty() ? 0 : offsets[i]);
    r = std::fmin(std::fmax(r, -127.0f), 127.0f);
    out.values[i] = static_cast<int8_t>(r);
    out.channelSums[wChan[i]] += out.values[i];
  }
  out.outScale.resize(out.channels);
  for (int64_t c = 0; c < out.channels; ++c)
    out.outScale[c] = q.actScale * wScale[c];
  return out;
}

/// The zero point of the codes as stored: u8 codes are the signed ones + 128.
int32_t storedZeroPoint(const LayerQuantization &q) {
  return q.actZeroPoint + (q.form.storage == IntegerForm::Storage::U8 ? 128 : 0);
}

/// How the layer's bias reaches the integer result.
struct BiasFold {
  std::vector<int32_t> offset;      // zp · Σq[c] − rne(bias[c] / outScale[c])
  MlirOperation foldedAdd{nullptr}; // a Gemm's own bias add, erased after
  bool addInit = false;             // an init that is no bias: added in f32
};

/// Step 3: a bias (the conv's broadcast init, or the Gemm's bias add), plus
/// any bias correction, is folded into the accumulator as int32, so dequantization is one rounding,
/// float(acc − offset) · scale, that numpy reproduces bit for bit. Any other
/// init is added in f32 after scaling.
BiasFold foldBias(const Layer &l, const LayerQuantization &q, const QuantizedWeight &w) {
  BiasFold fold;
  MlirValue init = mlirOperationGetOperand(l.op, 2);
  std::vector<float> bias;
  if (isZeroFill(init)) {
    fold.foldedAdd = epilogueBiasAdd(l, w.channels, bias);
  } else {
    bias = broadcastBias(l, init, w.channels);
    fold.addInit = bias.empty();
  }
  const std::vector<float> &corr = q.biasCorrection;
  if (!corr.empty() && static_cast<int64_t>(corr.size()) != w.channels)
    throw NativeError(layerName(l) + ": " + std::to_string(corr.size()) +
                      " bias corrections for " + std::to_string(w.channels) + " output channels");
  fold.offset.resize(w.channels);
  for (int64_t c = 0; c < w.channels; ++c) {
    float sum = (bias.empty() ? 0.0f : bias[c]) + (corr.empty() ? 0.0f : corr[c]);
    float b = std::nearbyint(sum / w.outScale[c]);
    b = std::fmin(std::fmax(b, -2147483520.0f), 2147483520.0f);
    fold.offset[c] = storedZeroPoint(q) * w.channelSums[c] - static_cast<int32_t>(b);
  }
  return fold;
}

/// Step 4: the weight in the layout the form reads.
std::vector<int8_t> formWeight(const Layer &l, const IntegerForm &form,
                               const std::vector<int8_t> &values) {
  std::vector<int64_t> perm = weightPermutation(l, form);
  if (perm.empty())
    return values;
  const std::vector<int64_t> &shape = l.weightShape;
  size_t rank = shape.size();
  std::vector<int64_t> strides(rank, 1), outShape(rank), idx(rank, 0);
  for (size_t d = rank - 1; d > 0; --d)
    strides[d - 1] = strides[d] * shape[d];
  for (size_t d = 0; d < rank; ++d)
    outShape[d] = shape[perm[d]];
  std::vector<int8_t> out(values.size());
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t src = 0;
    for (size_t d = 0; d < rank; ++d)
      src += idx[d] * strides[perm[d]];
    out[i] = values[src];
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < outShape[d])
        break;
      idx[d] = 0;
    }
  }
  return out;
}

/// Step 5: parses the rewrite, binds its arguments to `args` and moves its
/// body in front of the op, on the layer's location. The contraction (the
/// first op with a reduction) is tagged with the layer id and the float op it
/// replaces, the generics before it as quantize, those after as dequantize.
/// Returns the value that replaces the layer's result.
bool hasReduction(MlirOperation generic) {
  MlirAttribute its = mlirOperationGetAttributeByName(generic, toRef("iterator_types"));
  for (intptr_t i = 0, e = mlirArrayAttrGetNumElements(its); i < e; ++i)
    if (printAttr(mlirArrayAttrGetElement(its, i)).find("reduction") != std::string::npos)
      return true;
  return false;
}

MlirValue spliceRewrite(const Layer &l, const std::string &text, const std::vector<MlirValue> &args) {
  MlirContext ctx = mlirOperationGetContext(l.op);
  bool seenContraction = false, seenQuantize = false;
  auto tag = [&](MlirOperation op) {
    std::string_view name = opName(op);
    bool contraction = !seenContraction && (name == l.opName || name == "linalg.matmul" ||
                                            (name == "linalg.generic" && hasReduction(op)));
    if (contraction) {
      seenContraction = true;
      mlirOperationSetAttributeByName(op, toRef(kLayerAttr),
                                      mlirIntegerAttrGet(mlirIntegerTypeGet(ctx, 64), l.id));
      mlirOperationSetAttributeByName(op, toRef(kOpAttr), mlirStringAttrGet(ctx, toRef(l.opName)));
    } else if (name == "linalg.generic") {
      const char *role = seenContraction ? kRoleDequantize : seenQuantize ? kRoleGather : kRoleQuantize;
      seenQuantize = true;
      mlirOperationSetAttributeByName(op, toRef(kRoleAttr), mlirStringAttrGet(ctx, toRef(role)));
    }
  };
  return spliceFunction(l.op, text, args, tag, layerName(l));
}

/// Rewrites one layer: check, quantize the weight, fold the bias, create the
/// constants before the op (so they dominate the rewrite), splice the rewrite
/// in, and erase the float op with what only fed it.
void quantizeLayer(const Layer &l, const LayerQuantization &q) {
  checkQuantizable(l, q);
  if (!l.weightIsConstant)
    return quantizeActivationMatmul(l, q);
  QuantizedWeight w = quantizeWeight(l, q);
  BiasFold fold = foldBias(l, q, w);
  std::vector<int8_t> wValues = formWeight(l, q.form, w.values);
  std::vector<int64_t> wShape = formWeightShape(l, q.form);

  MlirContext ctx = mlirOperationGetContext(l.op);
  MlirLocation loc = mlirOperationGetLocation(l.op);
  auto shaped = [](const std::vector<int64_t> &shape, MlirType elem) {
    return mlirRankedTensorTypeGet(shape.size(), shape.data(), elem, mlirAttributeGetNull());
  };
  MlirType i8 = mlirIntegerTypeGet(ctx, 8), i32 = mlirIntegerTypeGet(ctx, 32);
  std::vector<int32_t> wWide(wValues.begin(), wValues.end());
  MlirAttribute wAttr =
      weightBits(q.form) == 32
          ? mlirDenseElementsAttrInt32Get(shaped(wShape, i32), wWide.size(), wWide.data())
          : mlirDenseElementsAttrInt8Get(shaped(wShape, i8), wValues.size(), wValues.data());
  MlirOperation wConst = createConstant(wAttr, loc, l.op);
  MlirOperation sConst = createConstant(
      mlirDenseElementsAttrFloatGet(shaped(w.channelShape, mlirF32TypeGet(ctx)),
                                    w.outScale.size(), w.outScale.data()),
      loc, l.op);
  MlirOperation cConst = createConstant(
      mlirDenseElementsAttrInt32Get(shaped(w.channelShape, i32), fold.offset.size(),
                                    fold.offset.data()),
      loc, l.op);
  std::vector<MlirValue> args = {l.input, mlirOperationGetResult(wConst, 0),
                                 mlirOperationGetOperand(l.op, 2),
                                 mlirOperationGetResult(sConst, 0),
                                 mlirOperationGetResult(cConst, 0)};
  RewriteParams params{q.form, q.actScale, q.actZeroPoint, w.channelShape, fold.addInit};
  MlirValue replacement = spliceRewrite(l, integerRewriteText(l, params), args);

  mlirValueReplaceAllUsesOfWith(mlirOperationGetResult(l.op, 0), replacement);
  eraseWithDeadProducers(l.op);
  if (!mlirOperationIsNull(fold.foldedAdd)) {
    mlirValueReplaceAllUsesOfWith(mlirOperationGetResult(fold.foldedAdd, 0), replacement);
    eraseWithDeadProducers(fold.foldedAdd);
  }
}

void quantizeLayers(MlirOperation module, QuantizeOptions &options) {
  std::vector<Layer> layers = collectLayers(module);
  for (const LayerQuantization &q : options.layers) {
    if (q.layerId < 0 || q.layerId >= static_cast<int64_t>(layers.size()))
      throw NativeError("no layer with id " + std::to_string(q.layerId) +
                        " (module has " + std::to_string(layers.size()) + " layers)");
  }
  // Last layer first: a rewrite replaces its op's result, which a later
  // layer may still hold as its input.
  std::vector<const LayerQuantization *> order;
  for (const LayerQuantization &q : options.layers)
    order.push_back(&q);
  std::sort(order.begin(), order.end(), [](auto *a, auto *b) { return a->layerId > b->layerId; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->layerId == order[i - 1]->layerId)
      throw NativeError("layer " + std::to_string(order[i]->layerId) + " is listed twice");
  for (const LayerQuantization *q : order)
    quantizeLayer(layers[q->layerId], *q);
}

} // namespace

MlirPass quantune::createQuantizeLayersPass(QuantizeOptions *options) {
  return createModulePass<QuantizeOptions, quantizeLayers>(
      "QuantizeLayers", "quantune-quantize-layers",
      "Rewrite chosen layers into i8 x i8 -> i32 integer compute", options);
}
