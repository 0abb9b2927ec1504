// A line chart as SVG: series of { name, color, points: [x, y][] }, axes with ticks, a legend.
// writePlots saves charts as SVG and PNG (sharp).
import { Buffer } from 'node:buffer';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import sharp from 'sharp';

const W = 640;
const H = 400;
const M = { left: 64, right: 24, top: 40, bottom: 56 };
function ticks(lo, hi, n = 5) {
  const span = hi - lo || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => span / s <= n) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
export function lineChart(title, xLabel, yLabel, series) {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const x0 = Math.min(0, ...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const y0 = Math.min(...ys);
  const y1 = Math.max(...ys, y0 + 1e-6);
  const pad = (y1 - y0) * 0.05;
  const [ylo, yhi] = [y0 - pad, y1 + pad];
  const px = (x) => M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (y) => H - M.bottom - ((y - ylo) / (yhi - ylo)) * (H - M.top - M.bottom);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<line x1="${M.left}" y1="${H - M.bottom}" x2="${W - M.right}" y2="${H - M.bottom}" stroke="black"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${H - M.bottom}" stroke="black"/>`,
  ];
  for (const t of ticks(x0, x1)) {
    parts.push(
      `<line x1="${px(t)}" y1="${H - M.bottom}" x2="${px(t)}" y2="${H - M.bottom + 5}" stroke="black"/>`,
    );
    parts.push(`<text x="${px(t)}" y="${H - M.bottom + 18}" text-anchor="middle">${t}</text>`);
  }
  for (const t of ticks(ylo, yhi)) {
    parts.push(
      `<line x1="${M.left - 5}" y1="${py(t)}" x2="${W - M.right}" y2="${py(t)}" stroke="#ddd"/>`,
    );
    parts.push(`<text x="${M.left - 8}" y="${py(t) + 4}" text-anchor="end">${t}</text>`);
  }
  parts.push(
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 14}" text-anchor="middle">${esc(xLabel)}</text>`,
  );
  parts.push(
    `<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const d = s.points
      .map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`)
      .join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const [x, y] of s.points)
      parts.push(
        `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${s.color}"/>`,
      );
    // Legend in the lower right, where rising accuracy curves leave room.
    const ly = H - M.bottom - 16 - (series.length - 1 - i) * 18;
    parts.push(
      `<line x1="${W - M.right - 120}" y1="${ly}" x2="${W - M.right - 96}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`,
    );
    parts.push(`<text x="${W - M.right - 90}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Each `[name, svg]` as `<out>/<name>.svg` and `<out>/<name>.png`. */
export async function writePlots(out, plots) {
  for (const [name, svg] of plots) {
    await writeFile(join(out, `${name}.svg`), svg);
    await sharp(Buffer.from(svg))
      .png()
      .toFile(join(out, `${name}.png`));
  }
}
