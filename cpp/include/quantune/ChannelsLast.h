//===- ChannelsLast.h - quantune-channels-last ---------------------------===//
//
// Rewrites float NCHW convs and depthwise convs channels-last (see
// lib/Transforms/ChannelsLast.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_CHANNELSLAST_H
#define QUANTUNE_CHANNELSLAST_H

#include "mlir-c/Pass.h"

#include <cstdint>
#include <string>

namespace quantune {

/// State shared between the caller and quantune-channels-last.
struct ChannelsLastOptions {
  int64_t rewritten = 0; // how many convs the pass rewrote
  std::string error;     // why the pass failed, if it did
};

/// Creates the quantune-channels-last pass (anchored on
/// builtin.module). The options must outlive the pass.
MlirPass createChannelsLastPass(ChannelsLastOptions *options);

} // namespace quantune

#endif // QUANTUNE_CHANNELSLAST_H
