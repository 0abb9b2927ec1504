import {
  add,
  logSoftmax,
  mean,
  mul,
  neg,
  oneHot,
  sum,
  tidy,
  type Scalar,
  type Tensor,
  type Tensor1D,
  type Tensor2D,
} from '@tensorflow/tfjs-core';

/**
 * Softmax cross-entropy with label smoothing, averaged over the batch: the target is
 * (1 − ε)·onehot + ε/K over K classes (PyTorch's `CrossEntropyLoss(label_smoothing=ε)`,
 * MindSpore's `CrossEntropySmooth`). `labels` are class indices (int32 [N]) or one-hot [N, K].
 */
export function softmaxCrossEntropy(
  logits: Tensor2D,
  labels: Tensor1D | Tensor2D,
  smoothing = 0,
): Scalar {
  const [n, k] = logits.shape;
  if (labels.rank === 1 ? labels.shape[0] !== n : labels.shape[0] !== n || labels.shape[1] !== k) {
    throw new Error(
      `softmaxCrossEntropy: expected labels [${n}] or [${n}, ${k}] for logits [${n}, ${k}], found [${labels.shape}]`,
    );
  }
  if (!(smoothing >= 0 && smoothing < 1))
    throw new Error(`softmaxCrossEntropy: expected smoothing in [0, 1), found ${smoothing}`);
  return tidy(() => {
    const target = labels.rank === 1 ? oneHot(labels as Tensor1D, k) : (labels as Tensor);
    if (labels.rank === 1 && labels.dtype !== 'int32') {
      throw new Error(`softmaxCrossEntropy: expected int32 class indices, found ${labels.dtype}`);
    }
    const smoothed = smoothing === 0 ? target : add(mul(target, 1 - smoothing), smoothing / k);
    return mean(neg(sum(mul(smoothed, logSoftmax(logits)), 1))) as Scalar;
  });
}
