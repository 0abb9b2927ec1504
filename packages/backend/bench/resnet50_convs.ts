/** A distinct convolution of ResNet-50 v1.5 (torchvision layout) at 224², NHWC. */
export interface ConvShape {
  name: string;
  /** Input height and width, channels in and out, kernel size, stride, padding (each side). */
  size: number;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  pad: number;
  /** How many times the shape occurs in one forward pass. */
  count: number;
}

const conv = (
  name: string,
  size: number,
  cin: number,
  cout: number,
  k: number,
  stride: number,
  count: number,
): ConvShape => ({ name, size, cin, cout, k, stride, pad: (k - 1) >> 1, count });

/** Every distinct conv shape of ResNet-50 v1.5 ([3, 4, 6, 3] bottlenecks, stride on the 3×3). */
export const resnet50Convs: ConvShape[] = [
  conv('conv1 7x7/2', 224, 3, 64, 7, 2, 1),
  conv('l1 1x1 64>64', 56, 64, 64, 1, 1, 1),
  conv('l1 3x3 64', 56, 64, 64, 3, 1, 3),
  conv('l1 1x1 64>256', 56, 64, 256, 1, 1, 4),
  conv('l1 1x1 256>64', 56, 256, 64, 1, 1, 2),
  conv('l2 1x1 256>128', 56, 256, 128, 1, 1, 1),
  conv('l2 3x3/2 128', 56, 128, 128, 3, 2, 1),
  conv('l2 down 1x1/2 256>512', 56, 256, 512, 1, 2, 1),
  conv('l2 1x1 128>512', 28, 128, 512, 1, 1, 4),
  conv('l2 1x1 512>128', 28, 512, 128, 1, 1, 3),
  conv('l2 3x3 128', 28, 128, 128, 3, 1, 3),
  conv('l3 1x1 512>256', 28, 512, 256, 1, 1, 1),
  conv('l3 3x3/2 256', 28, 256, 256, 3, 2, 1),
  conv('l3 down 1x1/2 512>1024', 28, 512, 1024, 1, 2, 1),
  conv('l3 1x1 256>1024', 14, 256, 1024, 1, 1, 6),
  conv('l3 1x1 1024>256', 14, 1024, 256, 1, 1, 5),
  conv('l3 3x3 256', 14, 256, 256, 3, 1, 5),
  conv('l4 1x1 1024>512', 14, 1024, 512, 1, 1, 1),
  conv('l4 3x3/2 512', 14, 512, 512, 3, 2, 1),
  conv('l4 down 1x1/2 1024>2048', 14, 1024, 2048, 1, 2, 1),
  conv('l4 1x1 512>2048', 7, 512, 2048, 1, 1, 3),
  conv('l4 1x1 2048>512', 7, 2048, 512, 1, 1, 2),
  conv('l4 3x3 512', 7, 512, 512, 3, 1, 2),
];

/**
 * Conv shapes from a JSON file (`bench:kernels --shapes`): an array of objects with `name`, `size`
 * (input height and width), `cin`, `cout`, `k`, `stride` and `count` (times in one forward pass),
 * and optionally `pad` (each side; default (k − 1) / 2 rounded down). Errors name the file, the
 * entry and the field.
 */
export function convShapesFromJson(text: string, file: string): ConvShape[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: expected JSON, found a parse error: ${(e as Error).message}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) {
    throw new Error(
      `${file}: expected a non-empty array of conv shapes, found ${JSON.stringify(parsed)?.slice(0, 80)}`,
    );
  }
  return parsed.map((entry: unknown, i) => {
    const at = `${file}, entry ${i}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new Error(`${at}: expected an object, found ${JSON.stringify(entry)}`);
    }
    const e = entry as Record<string, unknown>;
    if (typeof e['name'] !== 'string' || e['name'] === '') {
      throw new Error(
        `${at}: expected 'name' to be a non-empty string, found ${JSON.stringify(e['name'])}`,
      );
    }
    const int = (key: string, min: number): number => {
      const v = e[key];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
        throw new Error(
          `${at} ('${e['name']}'): expected '${key}' to be an integer ≥ ${min}, found ${JSON.stringify(v)}`,
        );
      }
      return v;
    };
    const k = int('k', 1);
    const shape: ConvShape = {
      name: e['name'],
      size: int('size', 1),
      cin: int('cin', 1),
      cout: int('cout', 1),
      k,
      stride: int('stride', 1),
      pad: e['pad'] === undefined ? (k - 1) >> 1 : int('pad', 0),
      count: int('count', 1),
    };
    if (shape.size + 2 * shape.pad < k) {
      throw new Error(
        `${at} ('${shape.name}'): a ${k}×${k} filter does not fit a ${shape.size}² input padded by ${shape.pad}`,
      );
    }
    const known = ['name', 'size', 'cin', 'cout', 'k', 'stride', 'pad', 'count'];
    const unknown = Object.keys(e).filter((key) => !known.includes(key));
    if (unknown.length > 0) {
      throw new Error(
        `${at} ('${shape.name}'): expected fields among ${known.join(', ')}, found ${unknown.map((u) => `'${u}'`).join(', ')}`,
      );
    }
    return shape;
  });
}
