// Driven by tests/ir/test_passes.py: quantune-channels-last on float convs.

// A padded 3x3 conv with a bias: NHWC between transposes, the pad moved to NHWC, the named
// NHWC conv on the HWCF weight (made at compile time), the bias init transposed.
// CHECK-LABEL: util.func public @conv(
// CHECK-DAG: %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<3x3x1x2xf32>
// CHECK: %[[XT:.*]] = linalg.transpose ins(%arg0 : tensor<1x1x4x4xf32>) outs(%{{.*}} : tensor<1x4x4x1xf32>) permutation = [0, 2, 3, 1]
// CHECK: %[[P:.*]] = tensor.pad %[[XT]] low[0, 1, 1, 0] high[0, 1, 1, 0]
// CHECK: %[[IT:.*]] = linalg.transpose ins(%{{.*}} : tensor<1x2x4x4xf32>) outs(%{{.*}} : tensor<1x4x4x2xf32>) permutation = [0, 2, 3, 1]
// CHECK: %[[R:.*]] = linalg.conv_2d_nhwc_hwcf {{.*}} ins(%[[P]], %[[W]] : tensor<1x6x6x1xf32>, tensor<3x3x1x2xf32>) outs(%[[IT]] : tensor<1x4x4x2xf32>)
// CHECK: %[[OUT:.*]] = linalg.transpose ins(%[[R]] : tensor<1x4x4x2xf32>) outs(%{{.*}} : tensor<1x2x4x4xf32>) permutation = [0, 3, 1, 2]
// CHECK-NOT: linalg.conv_2d_nchw_fchw
// CHECK: util.return %[[OUT]]
util.func public @conv(%arg0: tensor<1x1x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %z = arith.constant 0.0 : f32 loc("c")
  %w = arith.constant dense<[[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]], [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]]> : tensor<2x1x3x3xf32> loc("c")
  %b = arith.constant dense<1.0> : tensor<2xf32> loc("c")
  %p = tensor.pad %arg0 low[0, 0, 1, 1] high[0, 0, 1, 1] {
  ^bb0(%i: index, %j: index, %k: index, %l: index):
    tensor.yield %z : f32
  } : tensor<1x1x4x4xf32> to tensor<1x1x6x6xf32> loc("c")
  %e = tensor.empty() : tensor<1x2x4x4xf32> loc("c")
  %bb = linalg.broadcast ins(%b : tensor<2xf32>) outs(%e : tensor<1x2x4x4xf32>) dimensions = [0, 2, 3] loc("c")
  %c = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%p, %w : tensor<1x1x6x6xf32>, tensor<2x1x3x3xf32>) outs(%bb : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> loc("c")
  util.return %c : tensor<1x2x4x4xf32>
}

// -----

// A 1x1 conv becomes the named NHWC conv; a depthwise conv an NHWC generic.
// CHECK-LABEL: util.func public @pointwise_then_depthwise(
// CHECK: linalg.conv_2d_nhwc_hwcf {{.*}} ins(%{{.*}}, %{{.*}} : tensor<1x2x2x4xf32>, tensor<1x1x4x3xf32>) outs(%{{.*}} : tensor<1x2x2x3xf32>)
// CHECK: linalg.generic {{.*}}["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]{{.*}} ins(%{{.*}}, %{{.*}} : tensor<1x4x4x3xf32>, tensor<3x3x3xf32>) outs(%{{.*}} : tensor<1x2x2x3xf32>)
// CHECK-NOT: linalg.depthwise_conv_2d_nchw_chw
// CHECK: util.return
util.func public @pointwise_then_depthwise(%arg0: tensor<1x4x2x2xf32>) -> tensor<1x3x2x2xf32> {
  %z = arith.constant 0.0 : f32 loc("p")
  %w = arith.constant dense<1.0> : tensor<3x4x1x1xf32> loc("p")
  %e = tensor.empty() : tensor<1x3x2x2xf32> loc("p")
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32> loc("p")
  %c = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%arg0, %w : tensor<1x4x2x2xf32>, tensor<3x4x1x1xf32>) outs(%f : tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32> loc("p")
  %wd = arith.constant dense<0.5> : tensor<3x3x3xf32> loc("d")
  %p = tensor.pad %c low[0, 0, 1, 1] high[0, 0, 1, 1] {
  ^bb0(%i: index, %j: index, %k: index, %l: index):
    tensor.yield %z : f32
  } : tensor<1x3x2x2xf32> to tensor<1x3x4x4xf32> loc("d")
  %ed = tensor.empty() : tensor<1x3x2x2xf32> loc("d")
  %fd = linalg.fill ins(%z : f32) outs(%ed : tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32> loc("d")
  %d = linalg.depthwise_conv_2d_nchw_chw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%p, %wd : tensor<1x3x4x4xf32>, tensor<3x3x3xf32>) outs(%fd : tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32> loc("d")
  util.return %d : tensor<1x3x2x2xf32>
}

// -----

// Left alone: a conv whose weight is an argument, and an integer conv.
// CHECK-LABEL: util.func public @left_alone(
// CHECK-NOT: linalg.transpose
// CHECK: linalg.conv_2d_nchw_fchw
// CHECK: linalg.conv_2d_nchw_fchw
util.func public @left_alone(%arg0: tensor<1x1x4x4xf32>, %w: tensor<2x1x3x3xf32>, %x8: tensor<1x1x4x4xi8>) -> (tensor<1x2x2x2xf32>, tensor<1x2x2x2xi32>) {
  %z = arith.constant 0.0 : f32 loc("a")
  %e = tensor.empty() : tensor<1x2x2x2xf32> loc("a")
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32> loc("a")
  %c = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%arg0, %w : tensor<1x1x4x4xf32>, tensor<2x1x3x3xf32>) outs(%f : tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32> loc("a")
  %w8 = arith.constant dense<1> : tensor<2x1x3x3xi8> loc("b")
  %z32 = arith.constant 0 : i32 loc("b")
  %e32 = tensor.empty() : tensor<1x2x2x2xi32> loc("b")
  %f32 = linalg.fill ins(%z32 : i32) outs(%e32 : tensor<1x2x2x2xi32>) -> tensor<1x2x2x2xi32> loc("b")
  %c8 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%x8, %w8 : tensor<1x1x4x4xi8>, tensor<2x1x3x3xi8>) outs(%f32 : tensor<1x2x2x2xi32>) -> tensor<1x2x2x2xi32> loc("b")
  util.return %c, %c8 : tensor<1x2x2x2xf32>, tensor<1x2x2x2xi32>
}
