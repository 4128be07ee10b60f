//===- Splice.cpp - Putting a rewrite written as MLIR text in place -------===//

#include "quantune/Splice.h"
#include "quantune/CAPIHelpers.h"

namespace quantune {

MlirValue spliceFunction(MlirOperation anchor, const std::string &text,
                         const std::vector<MlirValue> &args,
                         const std::function<void(MlirOperation)> &visit,
                         const std::string &what) {
  MlirContext ctx = mlirOperationGetContext(anchor);
  MlirLocation loc = mlirOperationGetLocation(anchor);
  MlirModule tmpl = mlirModuleCreateParse(ctx, toRef(text));
  if (mlirModuleIsNull(tmpl))
    throw NativeError(what + ": internal error, the rewrite did not parse:\n" + text);
  MlirOperation fn = mlirBlockGetFirstOperation(mlirModuleGetBody(tmpl));
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(fn, 0));
  for (size_t i = 0; i < args.size(); ++i)
    mlirValueReplaceAllUsesOfWith(mlirBlockGetArgument(body, i), args[i]);
  MlirOperation ret = mlirBlockGetTerminator(body);
  MlirValue replacement = mlirOperationGetOperand(ret, 0);
  for (MlirOperation op = mlirBlockGetFirstOperation(body); !mlirOperationEqual(op, ret);) {
    MlirOperation next = mlirOperationGetNextInBlock(op);
    mlirOperationMoveBefore(op, anchor);
    mlirOperationSetLocation(op, loc);
    visit(op);
    op = next;
  }
  mlirModuleDestroy(tmpl);
  return replacement;
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

static bool hasUses(MlirValue v) { return !mlirOpOperandIsNull(mlirValueGetFirstUse(v)); }

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

} // namespace quantune
