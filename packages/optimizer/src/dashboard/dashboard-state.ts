import type { Frontier, PlannerInput, Profile } from '@perseus/planner';
import { planTimeline } from '@perseus/planner';
import type { TopLevelSpec } from 'vega-lite';
import type { JobDetails, JobSummary } from '../job';
import type { IterationReport } from '../validate';
import {
  frontierChartPoints,
  frontierChartSpec,
  iterationsChartSpec,
  timelineChartSpec,
  type ChartContext,
  type MarkedPoint,
} from './chart-specs';

/** What the dashboard reads from the optimizer core (plain methods; tests may fake it). */
export interface DashboardSource {
  listJobs(limit: number, afterJobId: string): { jobs: JobSummary[]; more: boolean };
  getJob(jobId: string): JobDetails;
  getFrontier(jobId: string): { frontier: Frontier; chosenIndex: number };
  /** The profile a job was planned from (for instruction durations); undefined if unknown. */
  profileFor(job: JobDetails): Promise<Profile | undefined>;
}

/** One line of a job's event log. */
export interface DashboardEvent {
  atMs: number;
  kind: 'job' | 'phase' | 'profiling' | 'plan' | 'straggler';
  text: string;
}

/** One iteration of a job, summed over its ranks. */
export interface DashboardIteration {
  iteration: number;
  /** Phase of the job when the iteration completed (`profiling`, `deployed`, `deployed, straggler`). */
  phase: string;
  version: number;
  /** Longest rank's iteration time, s. */
  timeS: number;
  /** Energy summed over every rank of the job, J. */
  energyJ: number;
}

/** A job as the dashboard shows it. */
export interface DashboardJob {
  summary: JobSummary;
  gpu: string;
  shape: string;
}

/** Everything the page shows for one job. */
export interface DashboardJobView extends DashboardJob {
  detail: string;
  stragglers: JobDetails['stragglers'];
  events: DashboardEvent[];
  charts: {
    frontier: TopLevelSpec | null;
    iterations: TopLevelSpec | null;
    timeline: TopLevelSpec | null;
  };
}

const MAX_ITERATIONS = 400;
const MAX_EVENTS = 300;
const MAX_PENDING = 64;

interface Pending {
  n: number;
  timeS: number;
  energyJ: number;
  version: number;
}

interface Snapshot {
  phase: string;
  version: number;
  detail: string;
  stragglers: string;
}

interface JobRecord {
  pending: Map<number, Pending>;
  rows: DashboardIteration[];
  events: DashboardEvent[];
  last: Snapshot | undefined;
  timeline: { key: string; spec: TopLevelSpec | null } | undefined;
}

const phaseWord = (p: string): string => p.toLowerCase();

/**
 * The dashboard's view of the optimizer: iteration reports summed per iteration (live time and
 * energy), and an event log made by comparing successive polls of the core (new jobs, phase and
 * plan changes, profiling progress, stragglers). Read-only: it never calls a mutating method.
 */
export class DashboardState {
  private readonly jobs = new Map<string, JobRecord>();

  constructor(
    private readonly source: DashboardSource,
    private readonly now: () => number = Date.now,
  ) {}

  private record(jobId: string): JobRecord {
    let r = this.jobs.get(jobId);
    if (r === undefined) {
      r = { pending: new Map(), rows: [], events: [], last: undefined, timeline: undefined };
      this.jobs.set(jobId, r);
    }
    return r;
  }

  private event(r: JobRecord, kind: DashboardEvent['kind'], text: string): void {
    r.events.push({ atMs: this.now(), kind, text });
    if (r.events.length > MAX_EVENTS) r.events.splice(0, r.events.length - MAX_EVENTS);
  }

  /** One rank's iteration report (accepted by the core). */
  onIteration(rep: IterationReport): void {
    const r = this.record(rep.jobId);
    const p = r.pending.get(rep.iteration) ?? { n: 0, timeS: 0, energyJ: 0, version: 0 };
    p.n += 1;
    p.timeS = Math.max(p.timeS, rep.timeS);
    p.energyJ += rep.energyJ;
    p.version = Math.max(p.version, rep.scheduleVersion);
    r.pending.set(rep.iteration, p);
    let world: number;
    try {
      world = this.source.getJob(rep.jobId).summary.worldSize;
    } catch {
      return;
    }
    if (p.n >= world) {
      r.pending.delete(rep.iteration);
      const last = r.last;
      const phase =
        last === undefined
          ? 'registering'
          : last.stragglers !== ''
            ? `${phaseWord(last.phase)}, straggler`
            : phaseWord(last.phase);
      r.rows.push({
        iteration: rep.iteration,
        phase,
        version: p.version,
        timeS: p.timeS,
        energyJ: p.energyJ,
      });
      if (r.rows.length > MAX_ITERATIONS) r.rows.splice(0, r.rows.length - MAX_ITERATIONS);
    }
    // Iterations some rank never reported are dropped, oldest first.
    if (r.pending.size > MAX_PENDING) r.pending.delete(Math.min(...r.pending.keys()));
  }

  /** Compares the core's jobs with the last poll and logs what changed. */
  poll(): void {
    const seen = new Set<string>();
    for (const s of this.allJobs()) {
      seen.add(s.jobId);
      const r = this.record(s.jobId);
      let d: JobDetails;
      try {
        d = this.source.getJob(s.jobId);
      } catch {
        continue;
      }
      const snap: Snapshot = {
        phase: s.phase,
        version: s.version,
        detail: d.detail,
        stragglers: d.stragglers
          .map((st) => `${st.dpRank}:${st.iterationTimeS.toFixed(4)}:${st.detected}`)
          .join(','),
      };
      const last = r.last;
      if (last === undefined) {
        this.event(r, 'job', `job ${s.jobId} seen: ${phaseWord(s.phase)}, ${s.worldSize} ranks`);
      } else {
        if (last.phase !== snap.phase)
          this.event(r, 'phase', `phase ${phaseWord(last.phase)} → ${phaseWord(snap.phase)}`);
        if (last.detail !== snap.detail && snap.detail !== '')
          this.event(r, snap.phase === 'PROFILING' ? 'profiling' : 'plan', snap.detail);
        if (last.version !== snap.version)
          this.event(
            r,
            'plan',
            `plan version ${snap.version}${snap.phase === 'DEPLOYED' ? ` deployed, predicted saving ${s.predictedSavingPercent.toFixed(2)} %` : ''}`,
          );
        if (last.stragglers !== snap.stragglers)
          this.event(
            r,
            'straggler',
            d.stragglers.length === 0
              ? 'stragglers cleared'
              : `stragglers: ${d.stragglers.map((st) => `pipeline ${st.dpRank} at ${st.iterationTimeS.toFixed(3)} s (${st.detected ? 'detected' : 'reported'})`).join(', ')}`,
          );
      }
      r.last = snap;
    }
    for (const id of [...this.jobs.keys()]) if (!seen.has(id)) this.jobs.delete(id);
  }

  private allJobs(): JobSummary[] {
    const out: JobSummary[] = [];
    let after = '';
    for (;;) {
      const page = this.source.listJobs(500, after);
      out.push(...page.jobs);
      if (!page.more || page.jobs.length === 0) return out;
      after = page.jobs[page.jobs.length - 1]!.jobId;
    }
  }

  /** The job list. */
  jobList(): DashboardJob[] {
    const out: DashboardJob[] = [];
    for (const s of this.allJobs()) {
      try {
        out.push(describe(s, this.source.getJob(s.jobId)));
      } catch {
        // deleted between the listing and the lookup
      }
    }
    return out;
  }

  /** Iterations recorded for a job (oldest first). */
  iterations(jobId: string): DashboardIteration[] {
    return [...(this.jobs.get(jobId)?.rows ?? [])];
  }

  /** Everything the page shows for one job; undefined when the job does not exist. */
  async jobView(jobId: string): Promise<DashboardJobView | undefined> {
    let d: JobDetails;
    try {
      d = this.source.getJob(jobId);
    } catch {
      return undefined;
    }
    const base = describe(d.summary, d);
    const r = this.record(jobId);
    const context: ChartContext = {
      profile: `job ${jobId}${d.hasImportedProfile ? ' (imported profile)' : ''}`,
      gpu: base.gpu,
      schedule: base.shape,
      emulated: d.summary.simulated,
    };
    const dp = d.spec.dpDegree;
    let frontierSpec: TopLevelSpec | null = null;
    let timelineSpec: TopLevelSpec | null = null;
    let planned: { frontier: Frontier; chosenIndex: number } | undefined;
    try {
      planned = this.source.getFrontier(jobId);
    } catch {
      planned = undefined;
    }
    if (planned !== undefined) {
      const { frontier, chosenIndex } = planned;
      const chosen = frontier.points[chosenIndex] ?? frontier.points[0]!;
      const stragglers: MarkedPoint[] = d.stragglers
        .filter((st) => st.iterationTimeS > 0)
        .map((st) => {
          const p = frontier.planFor(st.iterationTimeS).point;
          return {
            label: `plan for straggler pipeline ${st.dpRank} (T' ${st.iterationTimeS.toFixed(3)} s)`,
            timeS: p.timeS,
            energyJ: p.energyJ,
          };
        });
      const recent = r.rows.filter((x) => x.version === d.summary.version).slice(-10);
      const measured: MarkedPoint[] =
        recent.length === 0
          ? []
          : [
              {
                label: `${d.summary.simulated ? 'emulated' : 'measured'}, last ${recent.length} iterations of v${d.summary.version}`,
                timeS: mean(recent.map((x) => x.timeS)),
                energyJ: mean(recent.map((x) => x.energyJ)) / dp,
              },
            ];
      frontierSpec = frontierChartSpec({
        context,
        points: frontierChartPoints(frontier),
        allMax: frontier.allMax,
        deployed: {
          label: `deployed plan (v${d.summary.version})`,
          timeS: chosen.timeS,
          energyJ: chosen.energyJ,
        },
        stragglers,
        measured,
        energyQuantity: 'energy per iteration, one pipeline',
        width: 560,
        height: 320,
      });
      timelineSpec = await this.timeline(r, d, frontier, chosenIndex, context);
    }
    const rows = r.rows;
    const iterationsSpec =
      rows.length === 0
        ? null
        : iterationsChartSpec({
            context,
            rows: rows.map((x) => ({
              iteration: x.iteration,
              phase: x.phase,
              timeS: x.timeS,
              energyJ: x.energyJ,
            })),
            energyQuantity: `energy per iteration, all ${d.summary.worldSize} GPUs`,
            width: 560,
          });
    return {
      ...base,
      detail: d.detail,
      stragglers: d.stragglers,
      events: [...r.events],
      charts: { frontier: frontierSpec, iterations: iterationsSpec, timeline: timelineSpec },
    };
  }

  private async timeline(
    r: JobRecord,
    d: JobDetails,
    frontier: Frontier,
    chosenIndex: number,
    context: ChartContext,
  ): Promise<TopLevelSpec | null> {
    const key = `${d.summary.generation}/${d.summary.version}/${chosenIndex}`;
    if (r.timeline?.key === key) return r.timeline.spec;
    let spec: TopLevelSpec | null = null;
    const profile = await this.source.profileFor(d);
    if (profile !== undefined) {
      const input: PlannerInput = {
        profile,
        pipeline: d.spec.pipeline,
        blockingPowerW: d.blockingPowerW > 0 ? d.blockingPowerW : 1,
        unitTimeS: d.spec.unitTimeS > 0 ? d.spec.unitTimeS : 1e-3,
      };
      try {
        const point = frontier.points[chosenIndex]!;
        const entries = planTimeline(input, frontier.plan(chosenIndex)).flatMap((row, stage) =>
          row.map((e) => ({ stage, ...e })),
        );
        spec = timelineChartSpec({
          context,
          planLabel: `deployed plan v${d.summary.version}`,
          entries,
          timeS: point.timeS,
          energyJ: point.energyJ,
          allMaxEnergyJ: frontier.allMax.energyJ,
          minWidth: 560,
        });
      } catch {
        spec = null; // the profile lacks a clock of the plan (e.g. pruned): no timeline
      }
    }
    r.timeline = { key, spec };
    return spec;
  }
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

function describe(s: JobSummary, d: JobDetails): DashboardJob {
  const p = d.spec.pipeline;
  return {
    summary: s,
    gpu: `${d.spec.gpuModel || 'GPU'}${s.simulated ? ' (simulated)' : ''}`,
    shape: `${p.schedule.toUpperCase()}, ${d.spec.dpDegree} pipelines × ${p.numStages} stages${p.numChunks !== undefined && p.numChunks > 1 ? ` × ${p.numChunks} chunks` : ''}${d.spec.tpDegree > 1 ? ` × TP ${d.spec.tpDegree}` : ''}, ${p.numMicrobatches} microbatches`,
  };
}
