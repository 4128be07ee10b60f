//===- QuantizeLayers.cpp - quantune-quantize-layers ----------------------===//
//
// Rewrites chosen float layers into real integer compute at linalg level,
// before IREE fuses: the activation is quantized to i8 (x / s, round half to
// even, + zero point, clamp) before the node's own pad, which then pads in i8
// with the zero point; the weight constant becomes an i8 constant quantized
// per output channel (symmetric, [-127, 127]); the same named op runs on
// i8 x i8 with an i32 accumulator; a dequantize generic subtracts the
// zero-point correction and the int32-folded bias (conv init or Gemm bias
// add) and scales by s_x * s_w[c], feeding the original users. Layers not
// listed are untouched. Scales come from the caller: the pass decides nothing.
//
//===----------------------------------------------------------------------===//

#include "quantune/QuantizeLayers.h"
#include "quantune/CAPIHelpers.h"
#include "quantune/IRText.h"
#include "quantune/LayerTable.h"
#include "quantune/LayerWeights.h"

#include "mlir-c/Pass.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

using namespace quantune;

namespace {

/// Checks a tensor.pad pads with the constant 0.0 and returns it as text on
/// i8, padding with the zero point.
std::string padText(MlirOperation pad, const std::string &in,
                    const std::string &out, const std::string &inType,
                    const std::string &outType, const Layer &l) {
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(pad, 0));
  MlirOperation yield = mlirBlockGetTerminator(body);
  MlirValue padValue = mlirOperationGetOperand(yield, 0);
  bool zero = false;
  if (mlirValueIsAOpResult(padValue)) {
    MlirOperation def = mlirOpResultGetOwner(padValue);
    MlirAttribute v = mlirOperationGetAttributeByName(def, toRef("value"));
    zero = opName(def) == "arith.constant" && !mlirAttributeIsNull(v) &&
           mlirAttributeIsAFloat(v) && mlirFloatAttrGetValueDouble(v) == 0.0;
  }
  if (!zero)
    throw NativeError(layerName(l) + ": its pad value is not the constant 0.0");
  auto staticPads = [&](const char *name) {
    MlirAttribute a = mlirOperationGetAttributeByName(pad, toRef(name));
    std::vector<int64_t> v;
    for (intptr_t i = 0, e = mlirDenseArrayGetNumElements(a); i < e; ++i) {
      int64_t x = mlirDenseI64ArrayGetElement(a, i);
      if (x == mlirShapedTypeGetDynamicSize())
        throw NativeError(layerName(l) + ": dynamic padding");
      v.push_back(x);
    }
    return v;
  };
  std::vector<int64_t> low = staticPads("static_low"), high = staticPads("static_high");
  std::string args;
  for (size_t i = 0; i < low.size(); ++i)
    args += (i ? ", %i" : "%i") + std::to_string(i) + ": index";
  return "  " + out + " = tensor.pad " + in + " low[" + joinDims(low, ", ") +
         "] high[" + joinDims(high, ", ") + "] {\n  ^bb0(" + args +
         "):\n    tensor.yield %zp8 : i8\n  } : " + inType + " to " + outType +
         "\n";
}

MlirOperation createConstant(MlirAttribute value, MlirLocation loc,
                             MlirOperation before) {
  MlirContext ctx = mlirAttributeGetContext(value);
  MlirType type = mlirAttributeGetType(value);
  MlirNamedAttribute attr = mlirNamedAttributeGet(
      mlirIdentifierGet(ctx, toRef("value")), value);
  MlirOperationState state = mlirOperationStateGet(toRef("arith.constant"), loc);
  mlirOperationStateAddResults(&state, 1, &type);
  mlirOperationStateAddAttributes(&state, 1, &attr);
  MlirOperation op = mlirOperationCreate(&state);
  mlirBlockInsertOwnedOperationBefore(mlirOperationGetBlock(before), before, op);
  return op;
}

bool hasUses(MlirValue v) { return !mlirOpOperandIsNull(mlirValueGetFirstUse(v)); }

/// Erases `op` and then, recursively, the ops that only fed it.
void eraseWithDeadProducers(MlirOperation op) {
  std::vector<MlirOperation> producers;
  for (intptr_t i = 0, e = mlirOperationGetNumOperands(op); i < e; ++i) {
    MlirValue v = mlirOperationGetOperand(op, i);
    if (mlirValueIsAOpResult(v))
      producers.push_back(mlirOpResultGetOwner(v));
  }
  mlirOperationDestroy(op);
  for (MlirOperation p : producers) {
    bool dead = true;
    for (intptr_t r = 0, e = mlirOperationGetNumResults(p); r < e; ++r)
      dead = dead && !hasUses(mlirOperationGetResult(p, r));
    std::string_view name = opName(p);
    bool pure = name == "arith.constant" || name == "tensor.pad" ||
                name == "tensor.expand_shape" || name == "tensor.collapse_shape" ||
                name == "linalg.transpose" || name == "tensor.empty" ||
                name == "linalg.broadcast" || name == "linalg.fill";
    if (dead && pure)
      eraseWithDeadProducers(p);
  }
}

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

/// Step 2: symmetric per-channel weights, q = clamp(rne(w / s_w[c]), ±127),
/// exactly as quantization.quantize_weight computes them in Python.
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
  out.values.resize(w.size());
  out.channelSums.assign(out.channels, 0);
  for (size_t i = 0; i < w.size(); ++i) {
    float r = std::nearbyint(w[i] / wScale[wChan[i]]);
    r = std::fmin(std::fmax(r, -127.0f), 127.0f);
    out.values[i] = static_cast<int8_t>(r);
    out.channelSums[wChan[i]] += out.values[i];
  }
  out.outScale.resize(out.channels);
  for (int64_t c = 0; c < out.channels; ++c)
    out.outScale[c] = q.actScale * wScale[c];
  return out;
}

/// How the layer's bias reaches the integer result.
struct BiasFold {
  std::vector<int32_t> offset;      // zp · Σq[c] − rne(bias[c] / outScale[c])
  MlirOperation foldedAdd{nullptr}; // a Gemm's own bias add, erased after
  bool addInit = false;             // an init that is no bias: added in f32
};

/// Step 3: a bias (the conv's broadcast init, or the Gemm's bias add) is
/// folded into the accumulator as int32, so dequantization is one rounding,
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
  fold.offset.resize(w.channels);
  for (int64_t c = 0; c < w.channels; ++c) {
    float b = bias.empty() ? 0.0f : std::nearbyint(bias[c] / w.outScale[c]);
    b = std::fmin(std::fmax(b, -2147483520.0f), 2147483520.0f);
    fold.offset[c] = q.actZeroPoint * w.channelSums[c] - static_cast<int32_t>(b);
  }
  return fold;
}

/// The activation's path to the integer op in i8: the node's pads (with the
/// zero point) and reshapes, from `%q0`. Returns the last value and its type.
std::pair<std::string, std::string> prologueText(const Layer &l, std::ostringstream &t) {
  std::string cur = "%q0", curType = tensorType(l.inputShape, "i8");
  int n = 1;
  for (MlirOperation p : l.prologue) {
    std::string name = std::string(opName(p));
    std::string next = "%q" + std::to_string(n++);
    std::string nextType = tensorType(staticShape(mlirOperationGetResult(p, 0)), "i8");
    if (name == "tensor.pad") {
      t << padText(p, cur, next, curType, nextType, l);
    } else if (name == "tensor.expand_shape" || name == "tensor.collapse_shape") {
      std::string reassoc =
          printAttr(mlirOperationGetAttributeByName(p, toRef("reassociation")));
      t << "  " << next << " = " << name << " " << cur << " " << reassoc;
      if (name == "tensor.expand_shape")
        t << " output_shape [" << joinDims(staticShape(mlirOperationGetResult(p, 0)), ", ")
          << "]";
      t << " : " << curType << " into " << nextType << "\n";
    } else {
      throw NativeError(layerName(l) + ": cannot quantize through " + name);
    }
    cur = next;
    curType = nextType;
  }
  return {cur, curType};
}

/// Step 4: the rewrite as IR text, a function (x, w, init, scale, offset) ->
/// out: quantize, the node's prologue in i8, the named op on i8 × i8 → i32,
/// dequantize.
std::string rewriteText(const Layer &l, const LayerQuantization &q, const QuantizedWeight &w,
                        const BiasFold &fold) {
  MlirValue init = mlirOperationGetOperand(l.op, 2);
  std::string tX = printType(mlirValueGetType(l.input));
  std::string tW = tensorType(l.weightShape, "i8");
  std::string tOut = printType(mlirValueGetType(init));
  std::string tAcc = tensorType(w.outShape, "i32");
  std::string tS = tensorType(w.channelShape, "f32"), tC = tensorType(w.channelShape, "i32");
  std::string tQ = tensorType(l.inputShape, "i8");
  size_t inRank = l.inputShape.size(), outRank = w.outShape.size();
  bool addInit = fold.addInit;
  std::ostringstream t;
  t << "func.func @quantune_layer(%x: " << tX << ", %w: " << tW << ", %init: " << tOut
    << ", %s: " << tS << ", %corr: " << tC << ") -> " << tOut << " {\n"
    << "  %sx = arith.constant " << hexFloat(q.actScale) << " : f32\n"
    << "  %zp = arith.constant " << q.actZeroPoint << ".0 : f32\n"
    << "  %zp8 = arith.constant " << q.actZeroPoint << " : i8\n"
    << "  %lo = arith.constant -128.0 : f32\n"
    << "  %hi = arith.constant 127.0 : f32\n"
    << "  %eq = tensor.empty() : " << tQ << "\n"
    << "  %q0 = linalg.generic {indexing_maps = [" << identityMap(inRank) << ", "
    << identityMap(inRank) << "], iterator_types = " << parallel(inRank) << "} ins(%x : " << tX
    << ") outs(%eq : " << tQ << ") {\n  ^bb0(%a: f32, %o: i8):\n"
    << "    %d = arith.divf %a, %sx : f32\n"
    << "    %r = math.roundeven %d : f32\n"
    << "    %z = arith.addf %r, %zp : f32\n"
    << "    %c0 = arith.maximumf %z, %lo : f32\n"
    << "    %c1 = arith.minimumf %c0, %hi : f32\n"
    << "    %i = arith.fptosi %c1 : f32 to i8\n"
    << "    linalg.yield %i : i8\n"
    << "  } -> " << tQ << "\n";
  auto [cur, curType] = prologueText(l, t);
  std::vector<int64_t> chanMap(l.outputChannelDims.begin(), l.outputChannelDims.end());
  t << "  %z32 = arith.constant 0 : i32\n"
    << "  %ea = tensor.empty() : " << tAcc << "\n"
    << "  %acc0 = linalg.fill ins(%z32 : i32) outs(%ea : " << tAcc << ") -> " << tAcc << "\n"
    << "  %acc = " << l.opName << " " << namedOpAttrs(l.op) << "ins(" << cur << ", %w : " << curType
    << ", " << tW << ") outs(%acc0 : " << tAcc << ") -> " << tAcc << "\n"
    << "  %eo = tensor.empty() : " << tOut << "\n"
    << "  %out = linalg.generic {indexing_maps = [" << identityMap(outRank) << ", "
    << affineMap(outRank, chanMap) << ", " << affineMap(outRank, chanMap)
    << (addInit ? ", " + identityMap(outRank) : std::string()) << ", "
    << identityMap(outRank) << "], iterator_types = " << parallel(outRank)
    << "} ins(%acc, %s, %corr" << (addInit ? ", %init" : "") << " : " << tAcc << ", " << tS
    << ", " << tC << (addInit ? ", " + tOut : std::string()) << ") outs(%eo : " << tOut
    << ") {\n  ^bb0(%a: i32, %sc: f32, %cc: i32" << (addInit ? ", %b: f32" : "")
    << ", %o: f32):\n"
    << "    %0 = arith.subi %a, %cc : i32\n"
    << "    %1 = arith.sitofp %0 : i32 to f32\n"
    << "    %2 = arith.mulf %1, %sc : f32\n";
  if (addInit)
    t << "    %3 = arith.addf %2, %b : f32\n    linalg.yield %3 : f32\n";
  else
    t << "    linalg.yield %2 : f32\n";
  t << "  } -> " << tOut << "\n"
    << "  return %out : " << tOut << "\n}\n";
  return t.str();
}

/// Step 5: parses the rewrite, binds its arguments to `args` and moves its
/// body in front of the op, on the layer's location, tagging the generics
/// and the integer op. Returns the value that replaces the layer's result.
MlirValue spliceRewrite(const Layer &l, const std::string &text, MlirValue (&args)[5]) {
  MlirContext ctx = mlirOperationGetContext(l.op);
  MlirLocation loc = mlirOperationGetLocation(l.op);
  MlirModule tmpl = mlirModuleCreateParse(ctx, toRef(text));
  if (mlirModuleIsNull(tmpl))
    throw NativeError(layerName(l) + ": internal error, the rewrite did not parse:\n" + text);
  MlirOperation fn = mlirBlockGetFirstOperation(mlirModuleGetBody(tmpl));
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(fn, 0));
  for (intptr_t i = 0; i < 5; ++i)
    mlirValueReplaceAllUsesOfWith(mlirBlockGetArgument(body, i), args[i]);
  MlirOperation ret = mlirBlockGetTerminator(body);
  MlirValue replacement = mlirOperationGetOperand(ret, 0);
  int generics = 0;
  for (MlirOperation op = mlirBlockGetFirstOperation(body); !mlirOperationEqual(op, ret);) {
    MlirOperation next = mlirOperationGetNextInBlock(op);
    mlirOperationMoveBefore(op, l.op);
    mlirOperationSetLocation(op, loc);
    std::string_view name = opName(op);
    if (name == "linalg.generic")
      mlirOperationSetAttributeByName(
          op, toRef(kRoleAttr),
          mlirStringAttrGet(ctx, toRef(generics++ ? kRoleDequantize : kRoleQuantize)));
    else if (name == l.opName)
      mlirOperationSetAttributeByName(op, toRef(kLayerAttr),
                                      mlirIntegerAttrGet(mlirIntegerTypeGet(ctx, 64), l.id));
    op = next;
  }
  mlirModuleDestroy(tmpl);
  return replacement;
}

/// Rewrites one layer: check, quantize the weight, fold the bias, create the
/// constants before the op (so they dominate the rewrite), splice the rewrite
/// in, and erase the float op with what only fed it.
void quantizeLayer(const Layer &l, const LayerQuantization &q) {
  checkQuantizable(l, q);
  QuantizedWeight w = quantizeWeight(l, q);
  BiasFold fold = foldBias(l, q, w);

  MlirContext ctx = mlirOperationGetContext(l.op);
  MlirLocation loc = mlirOperationGetLocation(l.op);
  auto shaped = [](const std::vector<int64_t> &shape, MlirType elem) {
    return mlirRankedTensorTypeGet(shape.size(), shape.data(), elem, mlirAttributeGetNull());
  };
  MlirType i8 = mlirIntegerTypeGet(ctx, 8), i32 = mlirIntegerTypeGet(ctx, 32);
  MlirOperation wConst = createConstant(
      mlirDenseElementsAttrInt8Get(shaped(l.weightShape, i8), w.values.size(), w.values.data()),
      loc, l.op);
  MlirOperation sConst = createConstant(
      mlirDenseElementsAttrFloatGet(shaped(w.channelShape, mlirF32TypeGet(ctx)),
                                    w.outScale.size(), w.outScale.data()),
      loc, l.op);
  MlirOperation cConst = createConstant(
      mlirDenseElementsAttrInt32Get(shaped(w.channelShape, i32), fold.offset.size(),
                                    fold.offset.data()),
      loc, l.op);
  MlirValue args[] = {l.input, mlirOperationGetResult(wConst, 0),
                      mlirOperationGetOperand(l.op, 2), mlirOperationGetResult(sConst, 0),
                      mlirOperationGetResult(cConst, 0)};
  MlirValue replacement = spliceRewrite(l, rewriteText(l, q, w, fold), args);

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
