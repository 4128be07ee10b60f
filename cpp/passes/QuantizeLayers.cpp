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

#include "Passes.h"
#include "capi_helpers.h"

#include "mlir-c/Pass.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

using namespace quantune;

namespace {

std::string layerName(const Layer &l) {
  return "layer " + std::to_string(l.id) + " ('" + l.node + "')";
}

std::string joinDims(const std::vector<int64_t> &dims, const char *sep) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? sep : "") + std::to_string(dims[i]);
  return s;
}

std::string tensorType(const std::vector<int64_t> &shape, const char *elem) {
  return "tensor<" + joinDims(shape, "x") + "x" + elem + ">";
}

std::string printAttr(MlirAttribute attr) {
  std::string s;
  mlirAttributePrint(attr, appendCallback, &s);
  return s;
}

/// A float as an MLIR hex literal, so the template carries its exact bits.
std::string hexFloat(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  std::ostringstream os;
  os << "0x" << std::hex << std::uppercase << bits;
  return os.str();
}

std::string affineMap(size_t rank, const std::vector<int64_t> &results) {
  std::string dims, res;
  for (size_t i = 0; i < rank; ++i)
    dims += (i ? ", d" : "d") + std::to_string(i);
  for (size_t i = 0; i < results.size(); ++i)
    res += (i ? ", d" : "d") + std::to_string(results[i]);
  return "affine_map<(" + dims + ") -> (" + res + ")>";
}

std::string identityMap(size_t rank) {
  std::vector<int64_t> all;
  for (size_t i = 0; i < rank; ++i)
    all.push_back(static_cast<int64_t>(i));
  return affineMap(rank, all);
}

std::string parallel(size_t rank) {
  std::string s;
  for (size_t i = 0; i < rank; ++i)
    s += i ? ", \"parallel\"" : "\"parallel\"";
  return "[" + s + "]";
}

/// The weight in the op's operand layout, from its f32 constant.
std::vector<float> operandWeight(const Layer &l) {
  MlirAttribute attr = l.weightAttr;
  if (!l.weightIsConstant || !mlirAttributeIsADenseElements(attr) ||
      !mlirTypeIsAF32(mlirShapedTypeGetElementType(mlirAttributeGetType(attr))))
    throw NativeError(layerName(l) + ": the weight is not an f32 dense constant");
  size_t n = mlirElementsAttrGetNumElements(attr);
  const float *raw =
      static_cast<const float *>(mlirDenseElementsAttrGetRawData(attr));
  std::vector<float> data =
      mlirDenseElementsAttrIsSplat(attr) ? std::vector<float>(n, raw[0])
                                         : std::vector<float>(raw, raw + n);
  std::vector<int64_t> shape = l.weightConstShape;
  for (const WeightStep &step : l.weightSteps) {
    if (step.kind == "reshape") {
      shape = step.value;
      continue;
    }
    // Transpose: out[i] = in[perm applied], via row-major strides.
    size_t rank = shape.size();
    std::vector<int64_t> inStrides(rank, 1), outShape(rank);
    for (size_t d = rank - 1; d > 0; --d)
      inStrides[d - 1] = inStrides[d] * shape[d];
    for (size_t d = 0; d < rank; ++d)
      outShape[d] = shape[step.value[d]];
    std::vector<float> out(n);
    std::vector<int64_t> idx(rank, 0);
    for (size_t i = 0; i < n; ++i) {
      int64_t src = 0;
      for (size_t d = 0; d < rank; ++d)
        src += idx[d] * inStrides[step.value[d]];
      out[i] = data[src];
      for (size_t d = rank; d-- > 0;) {
        if (++idx[d] < outShape[d])
          break;
        idx[d] = 0;
      }
    }
    data.swap(out);
    shape = outShape;
  }
  return data;
}

/// Per-element output-channel index of a row-major tensor of `shape`, with
/// channels along `dims` (row-major over those dims).
std::vector<int64_t> channelIndex(const std::vector<int64_t> &shape,
                                  const std::vector<int64_t> &dims) {
  size_t n = 1;
  for (int64_t d : shape)
    n *= d;
  std::vector<int64_t> out(n), idx(shape.size(), 0);
  for (size_t i = 0; i < n; ++i) {
    int64_t c = 0;
    for (int64_t d : dims)
      c = c * shape[d] + idx[d];
    out[i] = c;
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d])
        break;
      idx[d] = 0;
    }
  }
  return out;
}

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

/// The attributes of a named linalg op in its custom syntax (explicit
/// indexing maps first, then an attr-dict), minus the ones it derives.
std::string opAttrs(const Layer &l) {
  std::string s, maps;
  for (intptr_t i = 0, e = mlirOperationGetNumAttributes(l.op); i < e; ++i) {
    MlirNamedAttribute a = mlirOperationGetAttribute(l.op, i);
    std::string_view name = toView(mlirIdentifierStr(a.name));
    if (name == "operandSegmentSizes" || startsWith(name, "quantune."))
      continue;
    if (name == "indexing_maps") {
      maps = "indexing_maps = " + printAttr(a.attribute) + " ";
      continue;
    }
    s += (s.empty() ? "" : ", ") + std::string(name) + " = " + printAttr(a.attribute);
  }
  return maps + (s.empty() ? "" : "{" + s + "} ");
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

/// The f32 values of a 1-D dense constant of `n` elements defining `v`.
std::vector<float> constantVector(MlirValue v, int64_t n) {
  if (!mlirValueIsAOpResult(v))
    return {};
  MlirOperation def = mlirOpResultGetOwner(v);
  MlirAttribute a = mlirOperationGetAttributeByName(def, toRef("value"));
  if (opName(def) != "arith.constant" || mlirAttributeIsNull(a) ||
      !mlirAttributeIsADenseElements(a))
    return {};
  MlirType t = mlirAttributeGetType(a);
  if (mlirShapedTypeGetRank(t) != 1 || mlirShapedTypeGetDimSize(t, 0) != n ||
      !mlirTypeIsAF32(mlirShapedTypeGetElementType(t)))
    return {};
  const float *raw = static_cast<const float *>(mlirDenseElementsAttrGetRawData(a));
  return mlirDenseElementsAttrIsSplat(a) ? std::vector<float>(n, raw[0])
                                         : std::vector<float>(raw, raw + n);
}

bool isZeroFill(MlirValue v) {
  if (!mlirValueIsAOpResult(v))
    return false;
  MlirOperation def = mlirOpResultGetOwner(v);
  if (opName(def) != "linalg.fill")
    return false;
  MlirValue fill = mlirOperationGetOperand(def, 0);
  if (!mlirValueIsAOpResult(fill))
    return false;
  MlirAttribute a =
      mlirOperationGetAttributeByName(mlirOpResultGetOwner(fill), toRef("value"));
  return !mlirAttributeIsNull(a) && mlirAttributeIsAFloat(a) &&
         mlirFloatAttrGetValueDouble(a) == 0.0 && !std::signbit(mlirFloatAttrGetValueDouble(a));
}

/// The per-channel bias when `init` broadcasts a constant along the output
/// channels (a conv bias; through the expand_shape of a grouped conv).
std::vector<float> broadcastBias(const Layer &l, MlirValue init, int64_t channels) {
  if (!mlirValueIsAOpResult(init))
    return {};
  MlirOperation def = mlirOpResultGetOwner(init);
  bool expanded = opName(def) == "tensor.expand_shape";
  if (expanded) {
    MlirValue src = mlirOperationGetOperand(def, 0);
    if (!mlirValueIsAOpResult(src))
      return {};
    def = mlirOpResultGetOwner(src);
  }
  if (opName(def) != "linalg.broadcast")
    return {};
  // The one dim not broadcast must be where the channels (start to) live.
  MlirAttribute dims = mlirOperationGetAttributeByName(def, toRef("dimensions"));
  int64_t rank = mlirShapedTypeGetRank(mlirValueGetType(mlirOperationGetResult(def, 0)));
  std::vector<bool> added(rank, false);
  for (intptr_t i = 0, e = mlirDenseArrayGetNumElements(dims); i < e; ++i)
    added[mlirDenseI64ArrayGetElement(dims, i)] = true;
  std::vector<int64_t> kept;
  for (int64_t d = 0; d < rank; ++d)
    if (!added[d])
      kept.push_back(d);
  bool channelsKept = kept.size() == 1 && kept[0] == l.outputChannelDims[0] &&
                      (expanded || l.outputChannelDims.size() == 1);
  if (!channelsKept)
    return {};
  return constantVector(mlirOperationGetOperand(def, 0), channels);
}

/// The node's own bias add after a matmul (Gemm: a generic adding a
/// per-column constant), or null.
MlirOperation epilogueBiasAdd(const Layer &l, int64_t channels, std::vector<float> &bias) {
  if (l.epilogue.empty() || l.outputChannelDims.size() != 1)
    return MlirOperation{nullptr};
  MlirOperation g = l.epilogue.front();
  if (opName(g) != "linalg.generic" || mlirOperationGetNumOperands(g) != 3 ||
      !mlirValueEqual(mlirOperationGetOperand(g, 0), mlirOperationGetResult(l.op, 0)))
    return MlirOperation{nullptr};
  size_t rank = l.outputShape.size();
  std::string maps = printAttr(mlirOperationGetAttributeByName(g, toRef("indexing_maps")));
  std::string want = "[" + identityMap(rank) + ", " +
                     affineMap(rank, {l.outputChannelDims[0]}) + ", " + identityMap(rank) + "]";
  if (maps != want)
    return MlirOperation{nullptr};
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(g, 0));
  MlirOperation add = mlirBlockGetFirstOperation(body);
  if (opName(add) != "arith.addf" ||
      opName(mlirOperationGetNextInBlock(add)) != "linalg.yield")
    return MlirOperation{nullptr};
  bias = constantVector(mlirOperationGetOperand(g, 1), channels);
  return bias.empty() ? MlirOperation{nullptr} : g;
}

void quantizeLayer(const Layer &l, const LayerQuantization &q) {
  if (l.precision != "fp32")
    throw NativeError(layerName(l) + " is already quantized");
  if (!(q.actScale > 0.0f) || !std::isfinite(q.actScale))
    throw NativeError(layerName(l) + ": activation scale must be positive");
  if (q.actZeroPoint < -128 || q.actZeroPoint > 127)
    throw NativeError(layerName(l) + ": zero point outside [-128, 127]");
  if (l.elementType != "f32")
    throw NativeError(layerName(l) + ": only f32 layers can be quantized");

  // Weight quantization, per output channel.
  std::vector<float> w = operandWeight(l);
  std::vector<int64_t> wChan = channelIndex(l.weightShape, l.weightChannelDims);
  std::vector<int64_t> outShape = staticShape(mlirOperationGetResult(l.op, 0));
  std::vector<int64_t> chanShape;
  int64_t channels = 1;
  for (int64_t d : l.outputChannelDims) {
    chanShape.push_back(outShape[d]);
    channels *= outShape[d];
  }
  std::vector<float> wScale = q.weightScales;
  if (wScale.size() == 1)
    wScale.assign(channels, wScale[0]);
  if (static_cast<int64_t>(wScale.size()) != channels)
    throw NativeError(layerName(l) + ": " + std::to_string(q.weightScales.size()) +
                      " weight scales for " + std::to_string(channels) +
                      " output channels");
  for (float s : wScale)
    if (!(s > 0.0f) || !std::isfinite(s))
      throw NativeError(layerName(l) + ": weight scales must be positive");
  std::vector<int8_t> wq(w.size());
  std::vector<int32_t> wSum(channels, 0);
  for (size_t i = 0; i < w.size(); ++i) {
    float r = std::nearbyint(w[i] / wScale[wChan[i]]);
    r = std::fmin(std::fmax(r, -127.0f), 127.0f);
    wq[i] = static_cast<int8_t>(r);
    wSum[wChan[i]] += wq[i];
  }
  std::vector<float> outScale(channels);
  for (int64_t c = 0; c < channels; ++c)
    outScale[c] = q.actScale * wScale[c];

  // A bias (the conv's broadcast init, or the Gemm's bias add) is folded
  // into the accumulator as int32, so dequantization is one rounding
  // (float(acc - offset) * scale) that numpy reproduces bit for bit. Any
  // other init is added in f32 after scaling.
  MlirValue init = mlirOperationGetOperand(l.op, 2);
  std::vector<float> bias;
  MlirOperation foldedAdd{nullptr};
  bool addInit = false;
  if (isZeroFill(init)) {
    foldedAdd = epilogueBiasAdd(l, channels, bias);
  } else {
    bias = broadcastBias(l, init, channels);
    addInit = bias.empty();
  }
  std::vector<int32_t> offset(channels);
  for (int64_t c = 0; c < channels; ++c) {
    float b = bias.empty() ? 0.0f : std::nearbyint(bias[c] / outScale[c]);
    b = std::fmin(std::fmax(b, -2147483520.0f), 2147483520.0f);
    offset[c] = q.actZeroPoint * wSum[c] - static_cast<int32_t>(b);
  }

  // Constants, created before the op so they dominate the rewrite.
  MlirContext ctx = mlirOperationGetContext(l.op);
  MlirLocation loc = mlirOperationGetLocation(l.op);
  auto shapedType = [&](const std::vector<int64_t> &shape, MlirType elem) {
    return mlirRankedTensorTypeGet(shape.size(), shape.data(), elem,
                                   mlirAttributeGetNull());
  };
  MlirType i8 = mlirIntegerTypeGet(ctx, 8), i32 = mlirIntegerTypeGet(ctx, 32);
  MlirOperation wConst = createConstant(
      mlirDenseElementsAttrInt8Get(shapedType(l.weightShape, i8), wq.size(), wq.data()),
      loc, l.op);
  MlirOperation sConst = createConstant(
      mlirDenseElementsAttrFloatGet(shapedType(chanShape, mlirF32TypeGet(ctx)),
                                    outScale.size(), outScale.data()),
      loc, l.op);
  MlirOperation cConst = createConstant(
      mlirDenseElementsAttrInt32Get(shapedType(chanShape, i32), offset.size(),
                                    offset.data()),
      loc, l.op);

  // The rewrite as a function template: (x, w, init, scale, offset) -> out.
  std::string tX = printType(mlirValueGetType(l.input));
  std::string tW = tensorType(l.weightShape, "i8");
  std::string tOut = printType(mlirValueGetType(init));
  std::string tAcc = tensorType(outShape, "i32");
  std::string tS = tensorType(chanShape, "f32"), tC = tensorType(chanShape, "i32");
  size_t inRank = l.inputShape.size(), outRank = outShape.size();
  std::ostringstream t;
  t << "func.func @quantune_layer(%x: " << tX << ", %w: " << tW << ", %init: " << tOut
    << ", %s: " << tS << ", %corr: " << tC << ") -> " << tOut << " {\n"
    << "  %sx = arith.constant " << hexFloat(q.actScale) << " : f32\n"
    << "  %zp = arith.constant " << q.actZeroPoint << ".0 : f32\n"
    << "  %zp8 = arith.constant " << q.actZeroPoint << " : i8\n"
    << "  %lo = arith.constant -128.0 : f32\n"
    << "  %hi = arith.constant 127.0 : f32\n"
    << "  %eq = tensor.empty() : " << tensorType(l.inputShape, "i8") << "\n"
    << "  %q0 = linalg.generic {indexing_maps = [" << identityMap(inRank) << ", "
    << identityMap(inRank) << "], iterator_types = " << parallel(inRank)
    << "} ins(%x : " << tX << ") outs(%eq : " << tensorType(l.inputShape, "i8")
    << ") {\n  ^bb0(%a: f32, %o: i8):\n"
    << "    %d = arith.divf %a, %sx : f32\n"
    << "    %r = math.roundeven %d : f32\n"
    << "    %z = arith.addf %r, %zp : f32\n"
    << "    %c0 = arith.maximumf %z, %lo : f32\n"
    << "    %c1 = arith.minimumf %c0, %hi : f32\n"
    << "    %i = arith.fptosi %c1 : f32 to i8\n"
    << "    linalg.yield %i : i8\n"
    << "  } -> " << tensorType(l.inputShape, "i8") << "\n";
  std::string cur = "%q0", curType = tensorType(l.inputShape, "i8");
  int n = 1;
  for (MlirOperation p : l.prologue) {
    std::string name = std::string(opName(p));
    std::string next = "%q" + std::to_string(n++);
    std::string nextType =
        tensorType(staticShape(mlirOperationGetResult(p, 0)), "i8");
    if (name == "tensor.pad") {
      t << padText(p, cur, next, curType, nextType, l);
    } else if (name == "tensor.expand_shape" || name == "tensor.collapse_shape") {
      std::string reassoc = printAttr(
          mlirOperationGetAttributeByName(p, toRef("reassociation")));
      t << "  " << next << " = " << name << " " << cur << " " << reassoc;
      if (name == "tensor.expand_shape")
        t << " output_shape ["
          << joinDims(staticShape(mlirOperationGetResult(p, 0)), ", ") << "]";
      t << " : " << curType << " into " << nextType << "\n";
    } else {
      throw NativeError(layerName(l) + ": cannot quantize through " + name);
    }
    cur = next;
    curType = nextType;
  }
  std::vector<int64_t> chanMap(l.outputChannelDims.begin(), l.outputChannelDims.end());
  t << "  %z32 = arith.constant 0 : i32\n"
    << "  %ea = tensor.empty() : " << tAcc << "\n"
    << "  %acc0 = linalg.fill ins(%z32 : i32) outs(%ea : " << tAcc << ") -> " << tAcc << "\n"
    << "  %acc = " << l.opName << " " << opAttrs(l) << "ins(" << cur << ", %w : "
    << curType << ", " << tW << ") outs(%acc0 : " << tAcc << ") -> " << tAcc << "\n"
    << "  %eo = tensor.empty() : " << tOut << "\n"
    << "  %out = linalg.generic {indexing_maps = [" << identityMap(outRank) << ", "
    << affineMap(outRank, chanMap) << ", " << affineMap(outRank, chanMap)
    << (addInit ? ", " + identityMap(outRank) : std::string()) << ", "
    << identityMap(outRank) << "], iterator_types = " << parallel(outRank)
    << "} ins(%acc, %s, %corr" << (addInit ? ", %init" : "") << " : " << tAcc << ", "
    << tS << ", " << tC << (addInit ? ", " + tOut : std::string()) << ") outs(%eo : "
    << tOut << ") {\n  ^bb0(%a: i32, %sc: f32, %cc: i32"
    << (addInit ? ", %b: f32" : "") << ", %o: f32):\n"
    << "    %0 = arith.subi %a, %cc : i32\n"
    << "    %1 = arith.sitofp %0 : i32 to f32\n"
    << "    %2 = arith.mulf %1, %sc : f32\n";
  if (addInit)
    t << "    %3 = arith.addf %2, %b : f32\n    linalg.yield %3 : f32\n";
  else
    t << "    linalg.yield %2 : f32\n";
  t << "  } -> " << tOut << "\n"
    << "  return %out : " << tOut << "\n}\n";

  std::string text = t.str();
  MlirModule tmpl = mlirModuleCreateParse(ctx, toRef(text));
  if (mlirModuleIsNull(tmpl))
    throw NativeError(layerName(l) + ": internal error, the rewrite did not parse:\n" +
                      text);
  MlirOperation fn = mlirBlockGetFirstOperation(mlirModuleGetBody(tmpl));
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(fn, 0));
  MlirValue args[] = {l.input, mlirOperationGetResult(wConst, 0), init,
                      mlirOperationGetResult(sConst, 0),
                      mlirOperationGetResult(cConst, 0)};
  for (intptr_t i = 0; i < 5; ++i)
    mlirValueReplaceAllUsesOfWith(mlirBlockGetArgument(body, i), args[i]);

  // Splice the template's body in front of the op, on the layer's location.
  MlirOperation ret = mlirBlockGetTerminator(body);
  MlirValue replacement = mlirOperationGetOperand(ret, 0);
  int generics = 0;
  for (MlirOperation op = mlirBlockGetFirstOperation(body);
       !mlirOperationEqual(op, ret);) {
    MlirOperation next = mlirOperationGetNextInBlock(op);
    mlirOperationMoveBefore(op, l.op);
    mlirOperationSetLocation(op, loc);
    std::string_view name = opName(op);
    if (name == "linalg.generic")
      mlirOperationSetAttributeByName(
          op, toRef(kRoleAttr),
          mlirStringAttrGet(ctx, toRef(generics++ ? kRoleDequantize : kRoleQuantize)));
    else if (name == l.opName)
      mlirOperationSetAttributeByName(
          op, toRef(kLayerAttr),
          mlirIntegerAttrGet(mlirIntegerTypeGet(ctx, 64), l.id));
    op = next;
  }
  mlirModuleDestroy(tmpl);

  MlirValue old = mlirOperationGetResult(l.op, 0);
  mlirValueReplaceAllUsesOfWith(old, replacement);
  eraseWithDeadProducers(l.op);
  if (!mlirOperationIsNull(foldedAdd)) {
    mlirValueReplaceAllUsesOfWith(mlirOperationGetResult(foldedAdd, 0), replacement);
    eraseWithDeadProducers(foldedAdd);
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
