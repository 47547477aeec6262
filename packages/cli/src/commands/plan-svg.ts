import type { Frontier, TimelineEntry } from '@perseus/planner';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const fmt = (x: number, d = 3): string => x.toFixed(d);

function niceTicks(lo: number, hi: number, count = 6): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) out.push(t);
  return out;
}

/** Time–energy frontier plot: discrete frontier, relaxed lower bound, all-max, intrinsic and T*. */
export function frontierSvg(frontier: Frontier, title: string): string {
  const W = 800;
  const H = 520;
  const m = { l: 80, r: 30, t: 40, b: 60 };
  const pts = frontier.points;
  const { allMax } = frontier;
  const xs = [...pts.map((p) => p.timeS), allMax.timeS];
  const ys = [...pts.map((p) => p.energyJ), allMax.energyJ, ...pts.map((p) => p.modelEnergyJ)];
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const y0 = Math.min(...ys);
  const y1 = Math.max(...ys);
  const padX = (x1 - x0) * 0.04 || 0.01;
  const padY = (y1 - y0) * 0.06 || 1;
  const sx = (x: number): number =>
    m.l + ((x - (x0 - padX)) / (x1 - x0 + 2 * padX)) * (W - m.l - m.r);
  const sy = (y: number): number =>
    H - m.b - ((y - (y0 - padY)) / (y1 - y0 + 2 * padY)) * (H - m.t - m.b);
  const path = (get: (p: (typeof pts)[number]) => number): string =>
    pts.map((p, i) => `${i ? 'L' : 'M'}${fmt(sx(p.timeS), 1)},${fmt(sy(get(p)), 1)}`).join('');
  const intr = frontier.intrinsic().point;
  const star = pts[pts.length - 1]!;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
  ];
  for (const t of niceTicks(x0 - padX, x1 + padX)) {
    out.push(
      `<line x1="${fmt(sx(t), 1)}" y1="${m.t}" x2="${fmt(sx(t), 1)}" y2="${H - m.b}" stroke="#eee"/>`,
    );
    out.push(
      `<text x="${fmt(sx(t), 1)}" y="${H - m.b + 18}" text-anchor="middle">${+t.toPrecision(6)}</text>`,
    );
  }
  for (const t of niceTicks(y0 - padY, y1 + padY)) {
    out.push(
      `<line x1="${m.l}" y1="${fmt(sy(t), 1)}" x2="${W - m.r}" y2="${fmt(sy(t), 1)}" stroke="#eee"/>`,
    );
    out.push(
      `<text x="${m.l - 8}" y="${fmt(sy(t) + 4, 1)}" text-anchor="end">${+t.toPrecision(6)}</text>`,
    );
  }
  out.push(
    `<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#444"/>`,
    `<text x="${W / 2}" y="${H - 18}" text-anchor="middle">iteration time (s)</text>`,
    `<text transform="translate(20,${H / 2}) rotate(-90)" text-anchor="middle">energy per iteration per pipeline GPU set (J)</text>`,
    `<path d="${path((p) => p.modelEnergyJ)}" fill="none" stroke="#999" stroke-dasharray="4 3"/>`,
    `<path d="${path((p) => p.energyJ)}" fill="none" stroke="#1f77b4" stroke-width="2"/>`,
    `<circle cx="${fmt(sx(allMax.timeS), 1)}" cy="${fmt(sy(allMax.energyJ), 1)}" r="6" fill="#d62728"/>`,
    `<text x="${fmt(sx(allMax.timeS) + 9, 1)}" y="${fmt(sy(allMax.energyJ) + 4, 1)}">all-max clocks (${fmt(allMax.timeS, 4)} s, ${fmt(allMax.energyJ, 1)} J)</text>`,
    `<circle cx="${fmt(sx(intr.timeS), 1)}" cy="${fmt(sy(intr.energyJ), 1)}" r="5" fill="#2ca02c"/>`,
    `<text x="${fmt(sx(intr.timeS) + 9, 1)}" y="${fmt(sy(intr.energyJ) + 4, 1)}">intrinsic (${fmt(intr.timeS, 4)} s, ${fmt(intr.energyJ, 1)} J)</text>`,
    `<circle cx="${fmt(sx(star.timeS), 1)}" cy="${fmt(sy(star.energyJ), 1)}" r="5" fill="#9467bd"/>`,
    `<text x="${fmt(sx(star.timeS) - 9, 1)}" y="${fmt(sy(star.energyJ) - 10, 1)}" text-anchor="end">T* = ${fmt(star.timeS, 4)} s (${fmt(star.energyJ, 1)} J)</text>`,
    `<line x1="${W - m.r - 190}" y1="${m.t + 16}" x2="${W - m.r - 160}" y2="${m.t + 16}" stroke="#1f77b4" stroke-width="2"/>`,
    `<text x="${W - m.r - 154}" y="${m.t + 20}">frontier (measured options)</text>`,
    `<line x1="${W - m.r - 190}" y1="${m.t + 34}" x2="${W - m.r - 160}" y2="${m.t + 34}" stroke="#999" stroke-dasharray="4 3"/>`,
    `<text x="${W - m.r - 154}" y="${m.t + 38}">relaxation (lower bound)</text>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}

function clockColor(f: number, lo: number, hi: number): string {
  const x = hi > lo ? (f - lo) / (hi - lo) : 1;
  // blue (low clock) → yellow → red (high clock)
  const r = Math.round(x < 0.5 ? 60 + 390 * x : 255);
  const g = Math.round(x < 0.5 ? 110 + 200 * x : 210 - 300 * (x - 0.5));
  const b = Math.round(x < 0.5 ? 200 - 300 * x : 50);
  return `rgb(${Math.min(255, r)},${Math.max(0, Math.min(255, g))},${Math.max(0, b)})`;
}

/** Gantt chart of one plan: a row per stage, a box per instruction coloured by its clock. */
export function timelineSvg(timeline: TimelineEntry[][], title: string): string {
  const rowH = 28;
  const m = { l: 70, r: 20, t: 40, b: 70 };
  const W = 1100;
  const H = m.t + m.b + rowH * timeline.length;
  const end = Math.max(...timeline.flat().map((e) => e.endS));
  const freqs = timeline.flat().map((e) => e.frequencyMhz);
  const lo = Math.min(...freqs);
  const hi = Math.max(...freqs);
  const sx = (t: number): number => m.l + (t / end) * (W - m.l - m.r);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
  ];
  timeline.forEach((row, s) => {
    const y = m.t + s * rowH;
    out.push(`<text x="${m.l - 8}" y="${y + rowH / 2 + 4}" text-anchor="end">stage ${s}</text>`);
    for (const e of row) {
      const x = sx(e.startS);
      const w = Math.max(0.5, sx(e.endS) - x);
      const label = `${e.kind === 'forward' ? 'F' : 'B'}${e.microbatch}`;
      out.push(
        `<rect x="${fmt(x, 2)}" y="${y + 3}" width="${fmt(w, 2)}" height="${rowH - 6}" fill="${clockColor(e.frequencyMhz, lo, hi)}" stroke="${e.kind === 'forward' ? '#333' : '#000'}" stroke-width="${e.kind === 'forward' ? 0.5 : 1.2}"><title>${label} ${e.frequencyMhz} MHz ${fmt(e.startS, 4)}–${fmt(e.endS, 4)} s</title></rect>`,
      );
      if (w > 18)
        out.push(
          `<text x="${fmt(x + w / 2, 2)}" y="${y + rowH / 2 + 4}" text-anchor="middle" font-size="9">${label}</text>`,
        );
    }
  });
  const axisY = m.t + rowH * timeline.length + 4;
  for (const t of niceTicks(0, end, 10)) {
    out.push(
      `<line x1="${fmt(sx(t), 1)}" y1="${axisY}" x2="${fmt(sx(t), 1)}" y2="${axisY + 5}" stroke="#444"/>`,
    );
    out.push(
      `<text x="${fmt(sx(t), 1)}" y="${axisY + 17}" text-anchor="middle">${+t.toPrecision(6)}</text>`,
    );
  }
  out.push(
    `<text x="${W / 2}" y="${axisY + 34}" text-anchor="middle">time (s) — colour: SM clock, ${lo} MHz (blue) to ${hi} MHz (red); thick border = backward</text>`,
  );
  out.push('</svg>');
  return out.join('\n') + '\n';
}
