import { describe, expect, it } from 'vitest';

import { convShapesFromJson } from '../bench/resnet50_convs.js';

describe('bench:kernels --shapes', () => {
  it('reads a network’s conv shapes, padding (k − 1) / 2 unless given', () => {
    const text = JSON.stringify([
      { name: 'stem', size: 28, cin: 3, cout: 16, k: 3, stride: 1, count: 1 },
      { name: 'down', size: 28, cin: 16, cout: 32, k: 1, stride: 2, count: 1 },
      { name: 'valid', size: 7, cin: 8, cout: 8, k: 3, stride: 1, pad: 0, count: 2 },
    ]);
    expect(convShapesFromJson(text, 'net.json').map((s) => [s.name, s.pad, s.count])).toEqual([
      ['stem', 1, 1],
      ['down', 0, 1],
      ['valid', 0, 2],
    ]);
  });

  it.each([
    ['not json', /net\.json: expected JSON, found a parse error/],
    ['[]', /net\.json: expected a non-empty array of conv shapes, found \[\]/],
    ['[3]', /net\.json, entry 0: expected an object, found 3/],
    [
      '[{"name":"a","size":28,"cin":3,"cout":16,"k":3,"stride":1.5,"count":1}]',
      /entry 0 \('a'\): expected 'stride' to be an integer ≥ 1, found 1\.5/,
    ],
    [
      '[{"name":"a","size":2,"cin":3,"cout":16,"k":7,"stride":1,"pad":0,"count":1}]',
      /a 7×7 filter does not fit a 2² input padded by 0/,
    ],
    [
      '[{"name":"a","size":28,"cin":3,"cout":16,"k":3,"stride":1,"count":1,"groups":2}]',
      /expected fields among name, size, cin, cout, k, stride, pad, count, found 'groups'/,
    ],
  ])('refuses %s, naming the file, the entry and the field', (text, message) => {
    expect(() => convShapesFromJson(text, 'net.json')).toThrow(message);
  });
});
