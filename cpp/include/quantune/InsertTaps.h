//===- InsertTaps.h - quantune-insert-taps --------------------------------===//
//
// Makes chosen layers' activation inputs and outputs extra results of the
// function that holds them (see lib/Transforms/InsertTaps.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_INSERTTAPS_H
#define QUANTUNE_INSERTTAPS_H

#include "mlir-c/Pass.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quantune {

/// Where each layer's taps landed among the entry function's results.
struct TapEntry {
  int64_t layerId = 0;
  int64_t inputResult = -1;
  int64_t outputResult = -1;
  // The second operand of a float matmul whose both operands are activations
  // (attention's Q.K^T, attn.V): its range is calibrated too; -1 otherwise.
  int64_t weightResult = -1;
};
struct TapResult {
  std::string function; // symbol name of the tapped function
  int64_t numOriginalResults = 0;
  int64_t numTaps = 0; // distinct values added as results
  std::vector<TapEntry> entries;
};

/// State shared between the caller and the quantune-insert-taps pass.
struct InsertTapsOptions {
  bool allLayers = true; // tap every layer, else only layerIds
  std::vector<int64_t> layerIds;
  TapResult result;  // filled in by the pass
  std::string error; // why the pass failed, if it did
};

/// Creates the quantune-insert-taps pass (anchored on builtin.module). The
/// options must outlive the pass.
MlirPass createInsertTapsPass(InsertTapsOptions *options);

} // namespace quantune

#endif // QUANTUNE_INSERTTAPS_H
