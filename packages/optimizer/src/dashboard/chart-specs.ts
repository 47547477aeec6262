/**
 * Vega-Lite specifications of every Perseus plot. The same functions feed the static SVGs of
 * `perseus plan` and `perseus demo` (rendered by Vega in Node) and the live dashboard (rendered by
 * Vega in the browser), so there is one plotting code path. Pure: data in, JSON spec out.
 *
 * Readability rules every spec follows: nice (round) ticks with units in the axis titles; a title
 * naming the profile, GPU and schedule; legends below the plot (never over data or axis titles);
 * a colour bar whenever colour encodes a number; the saving written in the subtitle.
 */
import type { Frontier } from '@perseus/planner';
import type { TopLevelSpec } from 'vega-lite';

/** What every plot's title names. */
export interface ChartContext {
  /** Profile or job the data comes from (e.g. `gpt3-175b+a40_bf16.csv`, or a job id). */
  profile: string;
  /** GPU model (e.g. `A40`, `A100 SXM (simulated)`). */
  gpu: string;
  /** Pipeline schedule and shape (e.g. `1F1B, 8 stages, 12 microbatches`). */
  schedule: string;
  /** Marks the figures as emulated (simulated GPUs or profile tables) rather than measured. */
  emulated: boolean;
}

/** One point of a time–energy frontier. */
export interface FrontierChartPoint {
  timeS: number;
  energyJ: number;
  /** The planner's relaxed (lower-bound) energy of the same time, when known. */
  boundJ?: number;
}

/** A labelled point drawn over the frontier (all-max, deployed, stragglers, measured phases). */
export interface MarkedPoint {
  label: string;
  timeS: number;
  energyJ: number;
}

/** Inputs of {@link frontierChartSpec}. */
export interface FrontierChartInput {
  context: ChartContext;
  points: FrontierChartPoint[];
  /** Plan with every instruction at the highest clock. */
  allMax: { timeS: number; energyJ: number };
  /** The plan in force (intrinsic or after a straggler), when one is. */
  deployed?: MarkedPoint;
  /** Points chosen for stragglers (one per straggler time). */
  stragglers?: MarkedPoint[];
  /** Measured or emulated phases (demo). */
  measured?: MarkedPoint[];
  /** Least-energy point of the frontier (T*). */
  minEnergy?: MarkedPoint;
  /** What the energy axis measures, e.g. `energy per iteration, one pipeline`. */
  energyQuantity: string;
  width?: number;
  height?: number;
}

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

const titleOf = (what: string, ctx: ChartContext): string =>
  `${what} — ${ctx.profile}, ${ctx.gpu}, ${ctx.schedule}`;

const emulatedNote = (ctx: ChartContext): string =>
  ctx.emulated ? 'EMULATED (simulated GPUs / profile tables)' : 'measured';

/** Percent saving of `energyJ` against `referenceJ`, formatted for a subtitle. */
export function savingText(energyJ: number, referenceJ: number): string {
  return `${(100 * (1 - energyJ / referenceJ)).toFixed(2)} % less energy than all-max clocks`;
}

const fixed = (x: number, d: number): string => x.toFixed(d);

/** Legend text of a marked point: its label with its coordinates. */
function markLabel(p: MarkedPoint): string {
  return `${p.label} (${fixed(p.timeS, 3)} s, ${Math.round(p.energyJ).toLocaleString('en-US')} J)`;
}

const MARK_COLOURS = ['#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
const MARK_SHAPES = [
  'circle',
  'diamond',
  'triangle-up',
  'square',
  'cross',
  'triangle-down',
  'wedge',
];

/**
 * The chart points of a planner frontier: each point with the relaxed lower bound at its time; a
 * frontier of more than `maxPoints` is thinned to that many.
 */
export function frontierChartPoints(
  frontier: Frontier,
  maxPoints = FRONTIER_CHART_MAX_POINTS,
): FrontierChartPoint[] {
  const { points } = frontier;
  const n = points.length;
  // A chart is ~1,000 px wide: beyond a few points per pixel the line looks the same, and vega
  // holds every row as objects (21,075 points of the A40 M=96 frontier cost ~70 MB to render).
  // Evenly spaced by index, first and last always in.
  const step = n > maxPoints ? (n - 1) / (maxPoints - 1) : 1;
  const count = n > maxPoints ? maxPoints : n;
  return Array.from({ length: count }, (_, k) => {
    const p = points[k === count - 1 ? n - 1 : Math.round(k * step)]!;
    return { timeS: p.timeS, energyJ: p.energyJ, boundJ: frontier.lowerBoundJ(p.timeS) };
  });
}

/** Frontier points drawn at most (see {@link frontierChartPoints}). */
export const FRONTIER_CHART_MAX_POINTS = 2000;

/**
 * Time–energy frontier: the planner's points as a line (and its relaxed bound dashed), with the
 * all-max, deployed, T*, straggler and measured points as distinct symbols named in the legend.
 */
export function frontierChartSpec(input: FrontierChartInput): TopLevelSpec {
  const ctx = input.context;
  const lines: Array<{ series: string; t: number; e: number }> = [];
  for (const p of input.points)
    lines.push({ series: 'frontier (planned)', t: p.timeS, e: p.energyJ });
  for (const p of input.points)
    if (p.boundJ !== undefined)
      lines.push({ series: 'relaxation (lower bound)', t: p.timeS, e: p.boundJ });
  const marks: MarkedPoint[] = [
    { label: 'all-max clocks', ...input.allMax },
    ...(input.deployed ? [input.deployed] : []),
    ...(input.minEnergy ? [input.minEnergy] : []),
    ...(input.stragglers ?? []),
    ...(input.measured ?? []),
  ];
  const markRows = marks.map((m) => ({ mark: markLabel(m), t: m.timeS, e: m.energyJ }));
  const subtitle: string[] = [emulatedNote(ctx)];
  if (input.deployed)
    subtitle.push(
      `${input.deployed.label}: ${savingText(input.deployed.energyJ, input.allMax.energyJ)}`,
    );
  const seriesDomain = [
    'frontier (planned)',
    ...(lines.some((l) => l.series !== 'frontier (planned)') ? ['relaxation (lower bound)'] : []),
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: titleOf('Time–energy frontier', ctx),
      subtitle,
      anchor: 'start',
      font: FONT,
      subtitleFont: FONT,
    },
    width: input.width ?? 640,
    height: input.height ?? 380,
    background: 'white',
    config: {
      font: FONT,
      legend: { orient: 'bottom', direction: 'vertical', columns: 1, labelLimit: 480 },
    },
    resolve: { scale: { color: 'independent', shape: 'independent', strokeDash: 'independent' } },
    layer: [
      {
        data: { values: lines },
        mark: { type: 'line', strokeWidth: 2 },
        encoding: {
          x: {
            field: 't',
            type: 'quantitative',
            title: 'iteration time (s)',
            scale: { zero: false, nice: true },
            axis: { tickCount: 8 },
          },
          y: {
            field: 'e',
            type: 'quantitative',
            title: `${input.energyQuantity} (J)`,
            scale: { zero: false, nice: true },
            axis: { tickCount: 8, format: ',d' },
          },
          color: {
            field: 'series',
            type: 'nominal',
            title: 'lines',
            scale: { domain: seriesDomain, range: ['#1f77b4', '#7f7f7f'] },
          },
          strokeDash: {
            field: 'series',
            type: 'nominal',
            title: 'lines',
            scale: {
              domain: seriesDomain,
              range: [
                [1, 0],
                [5, 4],
              ],
            },
          },
          order: { field: 't', type: 'quantitative' },
        },
      },
      {
        data: { values: markRows },
        mark: {
          type: 'point',
          filled: true,
          size: 110,
          opacity: 1,
          stroke: 'black',
          strokeWidth: 0.6,
        },
        encoding: {
          x: { field: 't', type: 'quantitative' },
          y: { field: 'e', type: 'quantitative' },
          color: {
            field: 'mark',
            type: 'nominal',
            title: 'points',
            sort: null,
            scale: { range: MARK_COLOURS },
          },
          shape: {
            field: 'mark',
            type: 'nominal',
            title: 'points',
            sort: null,
            scale: { range: MARK_SHAPES },
          },
          tooltip: [{ field: 'mark', type: 'nominal' }],
        },
      },
    ],
  };
}

/** One instruction box of a per-stage timeline. */
export interface TimelineChartEntry {
  stage: number;
  kind: 'forward' | 'backward';
  microbatch: number;
  frequencyMhz: number;
  startS: number;
  endS: number;
}

/** Inputs of {@link timelineChartSpec}. */
export interface TimelineChartInput {
  context: ChartContext;
  /** Which plan this is (e.g. `intrinsic plan`, `deployed plan v3`). */
  planLabel: string;
  entries: TimelineChartEntry[];
  /** Iteration time and energy of the plan, for the subtitle. */
  timeS: number;
  energyJ: number;
  /** All-max energy, to annotate the saving. */
  allMaxEnergyJ?: number;
  /** Least width of the plot, px (it grows so the narrowest box still holds its label). */
  minWidth?: number;
}

/** Width a box needs to hold its label (`F12`, `B3`) at the label font size, px. */
export const TIMELINE_LABEL_PX = 16;
/** Widest timeline plot, px: beyond it the narrowest boxes keep their label in the tooltip only. */
export const TIMELINE_MAX_WIDTH_PX = 6000;

/**
 * Gantt chart of one plan: a row per stage, a box per instruction coloured by its SM clock on a
 * sequential scale with a colour bar. The plot is made wide enough that the narrowest box holds its
 * label (up to {@link TIMELINE_MAX_WIDTH_PX}); backward boxes have a heavier outline.
 */
export function timelineChartSpec(input: TimelineChartInput): TopLevelSpec {
  const ctx = input.context;
  const end = Math.max(...input.entries.map((e) => e.endS), 1e-9);
  const narrowest = Math.min(...input.entries.map((e) => Math.max(e.endS - e.startS, 1e-12)));
  const width = Math.round(
    Math.min(
      TIMELINE_MAX_WIDTH_PX,
      Math.max(input.minWidth ?? 900, (TIMELINE_LABEL_PX * end) / narrowest),
    ),
  );
  const stages = [...new Set(input.entries.map((e) => e.stage))].sort((a, b) => a - b);
  const rows = input.entries.map((e) => {
    const px = ((e.endS - e.startS) / end) * width;
    const label = `${e.kind === 'forward' ? 'F' : 'B'}${e.microbatch}`;
    return {
      stage: `stage ${e.stage}`,
      kind: e.kind,
      label,
      shown: px >= TIMELINE_LABEL_PX - 0.5 ? label : '',
      mhz: e.frequencyMhz,
      start: e.startS,
      end: e.endS,
      mid: (e.startS + e.endS) / 2,
    };
  });
  const subtitle = [
    `${emulatedNote(ctx)}; heavy outline = backward; ${input.planLabel}: ${fixed(input.timeS, 4)} s, ${Math.round(input.energyJ).toLocaleString('en-US')} J per iteration`,
  ];
  if (input.allMaxEnergyJ !== undefined)
    subtitle.push(savingText(input.energyJ, input.allMaxEnergyJ));
  const y = {
    field: 'stage',
    type: 'ordinal' as const,
    title: 'pipeline stage',
    sort: stages.map((s) => `stage ${s}`),
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: titleOf(`Per-stage timeline of the ${input.planLabel}`, ctx),
      subtitle,
      anchor: 'start',
      font: FONT,
      subtitleFont: FONT,
    },
    width,
    height: { step: 30 },
    background: 'white',
    config: { font: FONT, legend: { orient: 'bottom', gradientLength: 320 } },
    data: { values: rows },
    layer: [
      {
        mark: { type: 'rect', height: 24 },
        encoding: {
          x: {
            field: 'start',
            type: 'quantitative',
            title: 'time since iteration start (s)',
            scale: { domain: [0, end], nice: true },
            axis: { tickCount: 10 },
          },
          x2: { field: 'end' },
          y,
          color: {
            field: 'mhz',
            type: 'quantitative',
            title: 'SM clock (MHz)',
            scale: { scheme: 'viridis' },
            legend: { type: 'gradient', direction: 'horizontal' },
          },
          stroke: { value: 'black' },
          strokeWidth: { condition: { test: "datum.kind === 'backward'", value: 1.4 }, value: 0.4 },
          tooltip: [
            { field: 'stage', type: 'ordinal' },
            { field: 'label', type: 'nominal', title: 'instruction' },
            { field: 'mhz', type: 'quantitative', title: 'clock (MHz)' },
            { field: 'start', type: 'quantitative', format: '.4f', title: 'start (s)' },
            { field: 'end', type: 'quantitative', format: '.4f', title: 'end (s)' },
          ],
        },
      },
      {
        mark: { type: 'text', fontSize: 9, baseline: 'middle', align: 'center' },
        encoding: {
          x: { field: 'mid', type: 'quantitative' },
          y,
          text: { field: 'shown' },
          // Light text on the dark (low-clock) end of viridis, dark text on the light end.
          color: {
            condition: { test: `datum.mhz < ${midClock(input.entries)}`, value: 'white' },
            value: 'black',
          },
        },
      },
    ],
  };
}

function midClock(entries: TimelineChartEntry[]): number {
  const f = entries.map((e) => e.frequencyMhz);
  return (Math.min(...f) + Math.max(...f)) / 2;
}

/** One iteration of a running (or emulated) job. */
export interface IterationChartRow {
  iteration: number;
  /** Phase or plan the iteration ran under (e.g. `baseline`, `profiling`, `intrinsic`, `v3`). */
  phase: string;
  timeS: number;
  energyJ: number;
}

/** Inputs of {@link iterationsChartSpec}. */
export interface IterationsChartInput {
  context: ChartContext;
  rows: IterationChartRow[];
  /** What the energy axis measures, e.g. `energy per iteration, all 2 pipelines`. */
  energyQuantity: string;
  /** Phase order for the legend (default: first appearance). */
  phases?: string[];
  width?: number;
}

/** One panel of a vertically concatenated spec. */
type ConcatPanel = Extract<TopLevelSpec, { vconcat: unknown }>['vconcat'][number];

/** Per-iteration time and energy, two panels sharing the iteration axis, coloured by phase. */
export function iterationsChartSpec(input: IterationsChartInput): TopLevelSpec {
  const ctx = input.context;
  const phases = input.phases ?? [...new Set(input.rows.map((r) => r.phase))];
  const rows = input.rows.map((r) => ({
    iteration: r.iteration,
    phase: r.phase,
    t: r.timeS,
    e: r.energyJ,
  }));
  const colour = {
    field: 'phase',
    type: 'nominal' as const,
    title: 'phase',
    scale: { domain: phases, scheme: 'category10' },
  };
  const x = {
    field: 'iteration',
    type: 'quantitative' as const,
    title: 'iteration',
    axis: { tickMinStep: 1, format: 'd' },
  };
  // The quantity goes in each panel's (horizontal) title and the rotated axis title stays short:
  // Vega in Node estimates text widths generously, and a long rotated title pads the panel.
  const panel = (
    field: 't' | 'e',
    heading: string,
    axisTitle: string,
    format?: string,
  ): ConcatPanel => {
    const y = {
      field,
      type: 'quantitative' as const,
      title: axisTitle,
      scale: { zero: false, nice: true },
      // No format: Vega picks the precision of the tick step (1.6, 1.8, 2.0).
      axis: format === undefined ? { tickCount: 6 } : { tickCount: 6, format },
    };
    return {
      title: { text: heading, anchor: 'start', fontSize: 12, font: FONT },
      width: input.width ?? 640,
      height: 180,
      layer: [
        { mark: { type: 'line' as const, color: '#bbbbbb', strokeWidth: 1 }, encoding: { x, y } },
        {
          mark: { type: 'point' as const, filled: true, size: 45 },
          encoding: {
            x,
            y,
            color: colour,
            tooltip: [
              { field: 'iteration', type: 'quantitative' },
              { field: 'phase', type: 'nominal' },
              { field, type: 'quantitative', format: '.4f', title: heading },
            ],
          },
        },
      ],
    };
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: titleOf('Per-iteration time and energy', ctx),
      subtitle: [emulatedNote(ctx)],
      anchor: 'start',
      font: FONT,
      subtitleFont: FONT,
    },
    background: 'white',
    config: { font: FONT, legend: { orient: 'bottom', columns: 4 } },
    data: { values: rows },
    vconcat: [
      panel('t', 'iteration time (s)', 'time (s)'),
      panel('e', `${input.energyQuantity} (J)`, 'energy (J)', ',d'),
    ],
  };
}
