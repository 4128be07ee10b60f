// Driven by tests/test_passes.py: each chunk is parsed, quantune-insert-taps runs on it with all
// layers, and the printed result (or "// error: ...") is checked here.

// A func.func: the matmul's input (an argument) and output become results 1 and 2; the
// original result keeps its attributes and the taps get none. The matmul output would fuse
// with its consumer, so the tap recomputes it behind a barrier and the original is untouched.
// CHECK-LABEL: func.func @mm(
// CHECK-SAME: -> (tensor<2x3xf32> {my.attr = 1 : i64}, tensor<2x4xf32>, tensor<2x3xf32>)
// CHECK: %[[W:.*]] = arith.constant dense<5.000000e-01>
// CHECK: %[[INIT:.*]] = linalg.fill
// CHECK: %[[MM:.*]] = linalg.matmul ins(%arg0, %[[W]] : {{.*}}) outs(%[[INIT]]
// CHECK: %[[OUT:.*]] = math.tanh %[[MM]]
// CHECK: %[[B:.*]] = util.optimization_barrier %arg0
// CHECK: %[[TAP:.*]] = linalg.matmul ins(%[[B]], %[[W]] : {{.*}}) outs(%[[INIT]]
// CHECK: return %[[OUT]], %arg0, %[[TAP]] : tensor<2x3xf32>, tensor<2x4xf32>, tensor<2x3xf32>
func.func @mm(%arg0: tensor<2x4xf32>) -> (tensor<2x3xf32> {my.attr = 1 : i64}) {
  %w = arith.constant dense<0.5> : tensor<4x3xf32> loc("fc")
  %z = arith.constant 0.0 : f32 loc("fc")
  %e = tensor.empty() : tensor<2x3xf32> loc("fc")
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<2x3xf32>) -> tensor<2x3xf32> loc("fc")
  %0 = linalg.matmul ins(%arg0, %w : tensor<2x4xf32>, tensor<4x3xf32>) outs(%f : tensor<2x3xf32>) -> tensor<2x3xf32> loc("fc")
  %1 = math.tanh %0 : tensor<2x3xf32> loc("act")
  return %1 : tensor<2x3xf32>
}

// -----

// A util.func: the first conv's input is sliced back out of its padded tensor (what IREE
// materializes); the second layer's input is the first layer's output, returned once, and
// needs no recompute since it feeds only a layer.
// CHECK-LABEL: util.func public @two_convs(
// CHECK-SAME: -> (tensor<1x2x4x4xf32>, tensor<1x1x4x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>)
// CHECK: %[[P:.*]] = tensor.pad %arg0 low[0, 0, 1, 1]
// CHECK: %[[C1:.*]] = linalg.conv_2d_nchw_fchw {{.*}} ins(%[[P]],
// CHECK: %[[C2:.*]] = linalg.conv_2d_nchw_fchw {{.*}} ins(%[[C1]],
// CHECK: %[[B:.*]] = util.optimization_barrier %[[P]]
// CHECK: %[[IN:.*]] = tensor.extract_slice %[[B]][0, 0, 1, 1] [1, 1, 4, 4] [1, 1, 1, 1]
// CHECK-NOT: linalg.conv
// CHECK: util.return %[[C2]], %[[IN]], %[[C1]], %[[C2]] :
util.func public @two_convs(%arg0: tensor<1x1x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %z = arith.constant 0.0 : f32 loc("c1")
  %w1 = arith.constant dense<1.0> : tensor<2x1x3x3xf32> loc("c1")
  %w2 = arith.constant dense<1.0> : tensor<2x2x1x1xf32> loc("c2")
  %p = tensor.pad %arg0 low[0, 0, 1, 1] high[0, 0, 1, 1] {
  ^bb0(%i: index, %j: index, %k: index, %l: index):
    tensor.yield %z : f32
  } : tensor<1x1x4x4xf32> to tensor<1x1x6x6xf32> loc("c1")
  %e = tensor.empty() : tensor<1x2x4x4xf32> loc("c1")
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> loc("c1")
  %c1 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%p, %w1 : tensor<1x1x6x6xf32>, tensor<2x1x3x3xf32>) outs(%f : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> loc("c1")
  %c2 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%c1, %w2 : tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>) outs(%f : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> loc("c2")
  util.return %c2 : tensor<1x2x4x4xf32>
}

// -----

// Integer matmuls are already quantized: not a layer, and the module is left as it was.
// CHECK: // error: quantune-insert-taps failed: the module has no quantizable layer to tap
// CHECK-LABEL: func.func @int_mm(
// CHECK-SAME: -> tensor<2x3xi32>
// CHECK: return %{{.*}} : tensor<2x3xi32>
func.func @int_mm(%a: tensor<2x4xi8>, %b: tensor<4x3xi8>) -> tensor<2x3xi32> {
  %z = arith.constant 0 : i32
  %e = tensor.empty() : tensor<2x3xi32>
  %f = linalg.fill ins(%z : i32) outs(%e : tensor<2x3xi32>) -> tensor<2x3xi32>
  %0 = linalg.matmul ins(%a, %b : tensor<2x4xi8>, tensor<4x3xi8>) outs(%f : tensor<2x3xi32>) -> tensor<2x3xi32>
  return %0 : tensor<2x3xi32>
}
