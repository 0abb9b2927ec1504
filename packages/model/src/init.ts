import type { Rng } from './rng.js';

/**
 * All of the model's initialization, as torchvision's ResNet does it: convolutions Kaiming-normal
 * with fan_out and ReLU gain (std = √(2 / (kh·kw·Cout))), batch norm γ = 1 and β = 0 (γ = 0 on each
 * block's last batch norm with `zeroInitResidual`), and the classifier as PyTorch's nn.Linear
 * default: weight and bias uniform in ±1/√fan_in.
 */
export const init = {
  /** Kernel [kh, kw, cin, cout] (HWIO). */
  conv(rng: Rng, shape: [number, number, number, number]): Float32Array {
    const [kh, kw, , cout] = shape;
    const size = shape.reduce((a, b) => a * b, 1);
    return rng.fillNormal(new Float32Array(size), Math.sqrt(2 / (kh * kw * cout)));
  },
  batchNormGamma(channels: number, zero: boolean): Float32Array {
    return new Float32Array(channels).fill(zero ? 0 : 1);
  },
  linearWeight(rng: Rng, fanIn: number, fanOut: number): Float32Array {
    const bound = 1 / Math.sqrt(fanIn);
    return rng.fillUniform(new Float32Array(fanIn * fanOut), -bound, bound);
  },
  linearBias(rng: Rng, fanIn: number, fanOut: number): Float32Array {
    const bound = 1 / Math.sqrt(fanIn);
    return rng.fillUniform(new Float32Array(fanOut), -bound, bound);
  },
};
