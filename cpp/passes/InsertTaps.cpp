//===- InsertTaps.cpp - quantune-insert-taps ------------------------------===//
//
// Makes the activation input and the output of chosen quantizable layers
// extra results of the function that holds them, so one run of the compiled
// module yields every intermediate tensor calibration needs. It runs on
// linalg-on-tensors IR before IREE forms dispatch regions. Assumes all chosen
// layers live in one single-block util.func or func.func; the function's
// own results keep their positions, taps are appended (a value feeding
// several taps is returned once), and function_type, res_attrs and
// util.func's tied_operands are extended to match.
//
//===----------------------------------------------------------------------===//

#include "Passes.h"
#include "capi_helpers.h"

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
  if (options.layerIds.empty()) {
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
    throw NativeError("the module has no quantizable layer to tap");

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
  for (const Layer *l : chosen) {
    TapEntry entry;
    entry.layerId = l->id;
    entry.inputResult = result.numOriginalResults + tapIndex(taps, l->input);
    entry.outputResult = result.numOriginalResults + tapIndex(taps, l->output);
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

void construct(void *) {}
void destruct(void *) {}
void *clonePass(void *userData) { return userData; }

void run(MlirOperation op, MlirExternalPass pass, void *userData) {
  auto *options = static_cast<InsertTapsOptions *>(userData);
  try {
    insertTaps(op, *options);
  } catch (const NativeError &e) {
    options->error = e.what();
    mlirExternalPassSignalFailure(pass);
  }
}

} // namespace

MlirPass quantune::createInsertTapsPass(InsertTapsOptions *options) {
  static MlirTypeIDAllocator allocator = mlirTypeIDAllocatorCreate();
  static MlirTypeID passId = mlirTypeIDAllocatorAllocateTypeID(allocator);
  MlirExternalPassCallbacks callbacks{construct, destruct, nullptr, clonePass,
                                      run};
  return mlirCreateExternalPass(
      passId, toRef("InsertTaps"), toRef("quantune-insert-taps"),
      toRef("Return quantizable layers' inputs and outputs as extra results"),
      toRef("builtin.module"), 0, nullptr, callbacks, options);
}
