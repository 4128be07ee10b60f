//===- Splice.h - Putting a rewrite written as MLIR text in place ---------===//
//
// The C API builds no linalg ops, so quantune's rewrites are written as one
// func.func in MLIR text, parsed, and their body moved in front of the op
// they replace.
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_SPLICE_H
#define QUANTUNE_SPLICE_H

#include "mlir-c/IR.h"

#include <functional>
#include <string>
#include <vector>

namespace quantune {

/// Parses `text` (one func.func), binds its arguments to `args`, moves its
/// body before `anchor` on the anchor's location and calls `visit` on each
/// moved op, in order. Returns the value the function returns. `what` names
/// the rewrite in the error raised when the text does not parse.
MlirValue spliceFunction(MlirOperation anchor, const std::string &text,
                         const std::vector<MlirValue> &args,
                         const std::function<void(MlirOperation)> &visit, const std::string &what);

/// An arith.constant of `value`, created before `before`.
MlirOperation createConstant(MlirAttribute value, MlirLocation loc, MlirOperation before);

/// Erases `op` and then, recursively, the pure ops that only fed it.
void eraseWithDeadProducers(MlirOperation op);

} // namespace quantune

#endif // QUANTUNE_SPLICE_H
