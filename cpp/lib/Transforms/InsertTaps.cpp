//===- InsertTaps.cpp - quantune-insert-taps ------------------------------===//
//
// Makes the activation input and the output of chosen quantizable layers
// (and the second operand of an activation x activation matmul) extra
// results of the function that holds them, so one run of the compiled
// module yields every intermediate tensor calibration needs. It runs on
// linalg-on-tensors IR before IREE forms dispatch regions. Assumes all chosen
// layers live in one single-block util.func or func.func; the function's
// own results keep their positions, taps are appended (a value feeding
// several taps is returned once), and function_type, res_attrs and
// util.func's tied_operands are extended to match.
//
// A layer output that IREE would fuse into a consumer (a conv followed by its
// activation) is not returned directly: that would split the fused dispatch
// and change the model's own numerics. The tap recomputes it instead from a
// util.optimization_barrier on the layer's input, so the original dispatches,
// and so the model outputs, stay bit-identical. For the same reason an input
// behind the node's own pad is sliced back out of the padded tensor, which is
// what IREE materializes.
//
//===----------------------------------------------------------------------===//

#include "quantune/InsertTaps.h"
#include "quantune/CAPIHelpers.h"
#include "quantune/LayerTable.h"

#include "mlir-c/Pass.h"

#include <algorithm>

using namespace quantune;

namespace {

bool isFunction(MlirOperation op) {
  std::string_view name = opName(op);
  return name == "util.func" || name == "func.func";
}

MlirOperation enclosingFunction(MlirOperation op) {
  for (MlirOperation p = mlirOperationGetParentOperation(op);
       !mlirOperationIsNull(p); p = mlirOperationGetParentOperation(p))
    if (isFunction(p))
      return p;
  return MlirOperation{nullptr};
}

std::string symbolName(MlirOperation fn) {
  MlirAttribute sym = mlirOperationGetAttributeByName(fn, toRef("sym_name"));
  return mlirAttributeIsNull(sym) ? std::string("<anonymous>")
                                  : std::string(toView(mlirStringAttrGetValue(sym)));
}

/// Appends `extra` copies of `value` to the array attribute `name`, if set.
void extendArrayAttr(MlirOperation fn, std::string_view name, intptr_t extra,
                     MlirAttribute value) {
  MlirAttribute old = mlirOperationGetAttributeByName(fn, toRef(name));
  if (mlirAttributeIsNull(old) || !mlirAttributeIsAArray(old))
    return;
  std::vector<MlirAttribute> elems;
  for (intptr_t i = 0, e = mlirArrayAttrGetNumElements(old); i < e; ++i)
    elems.push_back(mlirArrayAttrGetElement(old, i));
  elems.insert(elems.end(), extra, value);
  MlirContext ctx = mlirOperationGetContext(fn);
  mlirOperationSetAttributeByName(
      fn, toRef(name), mlirArrayAttrGet(ctx, elems.size(), elems.data()));
}

bool contains(const std::vector<MlirOperation> &ops, MlirOperation op) {
  return std::any_of(ops.begin(), ops.end(),
                     [&](MlirOperation o) { return mlirOperationEqual(o, op); });
}

/// Ops that start a layer's dispatch: the layer ops and their prologues. A
/// value used only by these (or returned) is a dispatch result anyway.
std::vector<MlirOperation> dispatchEntries(const std::vector<Layer> &layers) {
  std::vector<MlirOperation> ops;
  for (const Layer &l : layers) {
    ops.push_back(l.op);
    ops.insert(ops.end(), l.prologue.begin(), l.prologue.end());
  }
  return ops;
}

bool materializedAnyway(MlirValue v, const std::vector<MlirOperation> &entries,
                        MlirOperation ret) {
  for (MlirOpOperand use = mlirValueGetFirstUse(v); !mlirOpOperandIsNull(use);
       use = mlirOpOperandGetNextUse(use)) {
    MlirOperation user = mlirOpOperandGetOwner(use);
    if (!mlirOperationEqual(user, ret) && !contains(entries, user))
      return false;
  }
  return true;
}

MlirOperation insertBefore(MlirOperation ret, MlirOperationState &state) {
  MlirOperation op = mlirOperationCreate(&state);
  if (mlirOperationIsNull(op))
    throw NativeError("cannot create " +
                      std::string(toView(state.name)));
  mlirBlockInsertOwnedOperationBefore(mlirOperationGetBlock(ret), ret, op);
  return op;
}

/// util.optimization_barrier(v) before `ret`: stops folding and CSE with the
/// original computation without touching it.
MlirValue barrier(MlirValue v, MlirLocation loc, MlirOperation ret) {
  MlirType type = mlirValueGetType(v);
  MlirOperationState state =
      mlirOperationStateGet(toRef("util.optimization_barrier"), loc);
  mlirOperationStateAddOperands(&state, 1, &v);
  mlirOperationStateAddResults(&state, 1, &type);
  return mlirOperationGetResult(insertBefore(ret, state), 0);
}

MlirNamedAttribute named(MlirContext ctx, std::string_view name,
                         MlirAttribute attr) {
  return mlirNamedAttributeGet(mlirIdentifierGet(ctx, toRef(name)), attr);
}

/// tensor.extract_slice of `source` at static `offsets` with the shape of
/// `like`, unit strides.
MlirValue extractSlice(MlirValue source, const std::vector<int64_t> &offsets,
                       MlirValue like, MlirLocation loc, MlirOperation ret) {
  MlirContext ctx = mlirValueGetContext(source);
  std::vector<int64_t> sizes = staticShape(like);
  std::vector<int64_t> strides(sizes.size(), 1);
  int32_t segments[] = {1, 0, 0, 0};
  MlirNamedAttribute attrs[] = {
      named(ctx, "static_offsets",
            mlirDenseI64ArrayGet(ctx, offsets.size(), offsets.data())),
      named(ctx, "static_sizes",
            mlirDenseI64ArrayGet(ctx, sizes.size(), sizes.data())),
      named(ctx, "static_strides",
            mlirDenseI64ArrayGet(ctx, strides.size(), strides.data())),
      named(ctx, "operandSegmentSizes", mlirDenseI32ArrayGet(ctx, 4, segments)),
  };
  MlirType type = mlirValueGetType(like);
  MlirOperationState state =
      mlirOperationStateGet(toRef("tensor.extract_slice"), loc);
  mlirOperationStateAddOperands(&state, 1, &source);
  mlirOperationStateAddResults(&state, 1, &type);
  mlirOperationStateAddAttributes(&state, 4, attrs);
  return mlirOperationGetResult(insertBefore(ret, state), 0);
}

/// The point where a layer's input is materialized by IREE: the result of
/// the node's own tensor.pad when it has one (IREE writes the producer
/// straight into the padded buffer, so the unpadded tensor never exists),
/// else the input itself. `after` gets the node's ops that follow it.
struct InputPoint {
  MlirValue value;
  MlirOperation pad{nullptr};
  std::vector<MlirOperation> after;
};

InputPoint inputPoint(const Layer &l) {
  InputPoint p{l.input, MlirOperation{nullptr}, {}};
  for (MlirOperation op : l.prologue) {
    if (mlirOperationIsNull(p.pad) && opName(op) == "tensor.pad") {
      p.pad = op;
      p.value = mlirOperationGetResult(op, 0);
      p.after.clear();
      continue;
    }
    p.after.push_back(op);
  }
  p.after.push_back(l.op);
  p.after.insert(p.after.end(), l.epilogue.begin(), l.epilogue.end());
  return p;
}

/// The static low padding of a tensor.pad, or empty when any is dynamic.
std::vector<int64_t> staticLowPad(MlirOperation pad) {
  MlirAttribute low = mlirOperationGetAttributeByName(pad, toRef("static_low"));
  std::vector<int64_t> offsets;
  for (intptr_t i = 0, e = mlirDenseArrayGetNumElements(low); i < e; ++i) {
    int64_t v = mlirDenseI64ArrayGetElement(low, i);
    if (v == mlirShapedTypeGetDynamicSize())
      return {};
    offsets.push_back(v);
  }
  return offsets;
}

/// The layer's input as a tap. Behind a pad, it is sliced back out of the
/// padded tensor (through a barrier, so the slice is not folded away).
MlirValue inputTap(const Layer &l, MlirOperation ret) {
  // An int8 layer's pad is on the quantized tensor; its float input is the
  // tap (integer producers are exact, so returning it perturbs nothing).
  InputPoint p = inputPoint(l);
  if (mlirOperationIsNull(p.pad) || l.precision != Precision::FP32)
    return l.input;
  std::vector<int64_t> offsets = staticLowPad(p.pad);
  if (offsets.empty())
    return l.input;
  MlirLocation loc = mlirOperationGetLocation(l.op);
  return extractSlice(barrier(p.value, loc, ret), offsets, l.input, loc, ret);
}

/// Recomputes the layer's output before `ret`: the node's ops after its
/// input point are cloned and fed from a barrier on that point.
MlirValue recomputeOutput(const Layer &l, MlirOperation ret) {
  InputPoint p = inputPoint(l);
  std::vector<std::pair<MlirValue, MlirValue>> mapping = {
      {p.value, barrier(p.value, mlirOperationGetLocation(l.op), ret)}};
  MlirValue last = p.value;
  for (MlirOperation op : p.after) {
    MlirOperation clone = mlirOperationClone(op);
    for (intptr_t i = 0, e = mlirOperationGetNumOperands(clone); i < e; ++i)
      for (auto &[from, to] : mapping)
        if (mlirValueEqual(mlirOperationGetOperand(clone, i), from))
          mlirOperationSetOperand(clone, i, to);
    mlirBlockInsertOwnedOperationBefore(mlirOperationGetBlock(ret), ret, clone);
    mapping.emplace_back(mlirOperationGetResult(op, 0),
                         mlirOperationGetResult(clone, 0));
    last = mlirOperationGetResult(clone, 0);
  }
  return last;
}

/// Returns the index of `v` in `taps`, appending it when new.
int64_t tapIndex(std::vector<MlirValue> &taps, MlirValue v) {
  auto it = std::find_if(taps.begin(), taps.end(),
                         [&](MlirValue t) { return mlirValueEqual(t, v); });
  if (it != taps.end())
    return it - taps.begin();
  taps.push_back(v);
  return static_cast<int64_t>(taps.size()) - 1;
}

void insertTaps(MlirOperation module, InsertTapsOptions &options) {
  std::vector<Layer> layers = collectLayers(module);
  std::vector<const Layer *> chosen;
  if (options.allLayers) {
    for (const Layer &l : layers)
      chosen.push_back(&l);
  } else {
    for (int64_t id : options.layerIds) {
      if (id < 0 || id >= static_cast<int64_t>(layers.size()))
        throw NativeError("no layer with id " + std::to_string(id) + " (module has " +
                          std::to_string(layers.size()) + " layers)");
      chosen.push_back(&layers[id]);
    }
  }
  if (chosen.empty())
    throw NativeError(options.allLayers
                          ? "the module has no quantizable layer to tap"
                          : "no layer was chosen to tap");

  MlirOperation fn = enclosingFunction(chosen.front()->op);
  if (mlirOperationIsNull(fn))
    throw NativeError("layer '" + chosen.front()->node +
                      "' is not inside a util.func or func.func");
  for (const Layer *l : chosen)
    if (!mlirOperationEqual(enclosingFunction(l->op), fn))
      throw NativeError("layers are spread over several functions ('" +
                        symbolName(fn) + "' and '" +
                        symbolName(enclosingFunction(l->op)) +
                        "'); inline the module first");

  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(fn, 0));
  if (!mlirBlockIsNull(mlirBlockGetNextInRegion(body)))
    throw NativeError("function '" + symbolName(fn) + "' has several blocks");
  MlirOperation ret = mlirBlockGetTerminator(body);
  std::string_view retName = opName(ret);
  if (retName != "util.return" && retName != "func.return")
    throw NativeError("function '" + symbolName(fn) + "' ends in " +
                      std::string(retName) + ", not a return");

  // Gather the tap values; the taps are appended after the original results.
  TapResult result;
  result.function = symbolName(fn);
  result.numOriginalResults = mlirOperationGetNumOperands(ret);
  std::vector<MlirValue> taps;
  std::vector<MlirOperation> entries = dispatchEntries(layers);
  for (const Layer *l : chosen) {
    TapEntry entry;
    entry.layerId = l->id;
    entry.inputResult =
        result.numOriginalResults + tapIndex(taps, inputTap(*l, ret));
    MlirValue output = materializedAnyway(l->output, entries, ret)
                           ? l->output
                           : recomputeOutput(*l, ret);
    entry.outputResult = result.numOriginalResults + tapIndex(taps, output);
    if (l->precision == Precision::FP32 && !l->weightIsConstant)
      entry.weightResult = result.numOriginalResults + tapIndex(taps, l->weight());
    result.entries.push_back(entry);
  }
  result.numTaps = static_cast<int64_t>(taps.size());

  // Return them.
  std::vector<MlirValue> operands;
  for (intptr_t i = 0; i < result.numOriginalResults; ++i)
    operands.push_back(mlirOperationGetOperand(ret, i));
  operands.insert(operands.end(), taps.begin(), taps.end());
  mlirOperationSetOperands(ret, operands.size(), operands.data());

  // Keep the signature and per-result attributes in step with the return.
  MlirContext ctx = mlirOperationGetContext(fn);
  MlirType oldType = mlirTypeAttrGetValue(
      mlirOperationGetAttributeByName(fn, toRef("function_type")));
  std::vector<MlirType> inputs, results;
  for (intptr_t i = 0, e = mlirFunctionTypeGetNumInputs(oldType); i < e; ++i)
    inputs.push_back(mlirFunctionTypeGetInput(oldType, i));
  for (intptr_t i = 0, e = mlirFunctionTypeGetNumResults(oldType); i < e; ++i)
    results.push_back(mlirFunctionTypeGetResult(oldType, i));
  for (MlirValue t : taps)
    results.push_back(mlirValueGetType(t));
  MlirType newType = mlirFunctionTypeGet(ctx, inputs.size(), inputs.data(),
                                         results.size(), results.data());
  mlirOperationSetAttributeByName(fn, toRef("function_type"),
                                  mlirTypeAttrGet(newType));
  extendArrayAttr(fn, "res_attrs", result.numTaps,
                  mlirDictionaryAttrGet(ctx, 0, nullptr));
  extendArrayAttr(fn, "tied_operands", result.numTaps,
                  mlirIntegerAttrGet(mlirIndexTypeGet(ctx), -1));

  if (!mlirOperationVerify(fn))
    throw NativeError("function '" + result.function +
                      "' does not verify after inserting taps");
  options.result = std::move(result);
}

} // namespace

MlirPass quantune::createInsertTapsPass(InsertTapsOptions *options) {
  return createModulePass<InsertTapsOptions, insertTaps>(
      "InsertTaps", "quantune-insert-taps",
      "Return quantizable layers' inputs and outputs as extra results", options);
}
