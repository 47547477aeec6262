import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { optimizerV1 } from '@perseus/proto';
import { call, gpt3Profile, jobRequest, startOptimizer, type Harness, CLOCKS } from './helpers';

/**
 * The dashboard in a real browser (Debian's chromium, installed by tools/install-system-deps.sh;
 * PERSEUS_CHROMIUM overrides the path) while an emulated job runs: ranks report iterations over
 * gRPC at the deployed plan's time and energy, a straggler report changes the plan mid-run.
 * Screenshots land in packages/optimizer/test-output/dashboard/ (gitignored).
 */
const CHROMIUM = process.env['PERSEUS_CHROMIUM'] ?? '/usr/bin/chromium';
const SHOTS = path.resolve(__dirname, '..', 'test-output', 'dashboard');
const N = 8;
const DP = 2;

describe('optimizer dashboard in chromium during an emulated run', () => {
  let h: Harness;
  let browser: Browser;
  let page: Page;
  let url: string;
  let running = true;
  let trainer: Promise<void> = Promise.resolve();
  let iterations = 0;

  const status = (): Promise<optimizerV1.GetJobStatusResponse__Output> =>
    call(h.client, 'GetJobStatus', { job_id: 'gpt3' });

  /** Every rank reports each iteration at the chosen plan's time and energy (± 1 %), emulated. */
  async function emulateRanks(): Promise<void> {
    while (running) {
      const s = await status();
      const f = await call<optimizerV1.GetFrontierResponse__Output>(h.client, 'GetFrontier', {
        job_id: 'gpt3',
      }).catch(() => undefined);
      const p = f?.points[f.chosen_index];
      const jitter = 1 + 0.01 * Math.sin(iterations);
      const reports = [];
      for (let r = 0; r < N * DP; r++)
        reports.push(
          call(h.client, 'ReportIteration', {
            job_id: 'gpt3',
            rank: { rank: r, dp_rank: Math.floor(r / N), pp_rank: r % N, tp_rank: 0 },
            iteration: String(iterations),
            time_s: (p?.time_s ?? 2) * jitter,
            energy_j: ((p?.energy_j ?? 8000) / N) * jitter,
            schedule_version: s.schedule_version,
          }),
        );
      await Promise.all(reports);
      iterations++;
      await new Promise((res) => setTimeout(res, 150));
    }
  }

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM))
      throw new Error(
        `no chromium at ${CHROMIUM}: run tools/install-system-deps.sh (or set PERSEUS_CHROMIUM)`,
      );
    fs.mkdirSync(SHOTS, { recursive: true });
    h = await startOptimizer({
      importedProfiles: [{ profile: gpt3Profile() }],
      dashboardListen: '127.0.0.1:0',
    });
    url = h.module.dashboardUrl()!;
    await call(h.client, 'RegisterJob', jobRequest('gpt3', { dp: DP, n: N }));
    for (let r = 0; r < N * DP; r++)
      await call(h.client, 'RegisterRank', {
        job_id: 'gpt3',
        rank: { rank: r, dp_rank: Math.floor(r / N), pp_rank: r % N, tp_rank: 0 },
        node: 'n0',
        device_index: r % N,
        supported_frequencies_mhz: CLOCKS,
        simulated: true,
      });
    trainer = emulateRanks();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  }, 60_000);

  afterAll(async () => {
    running = false;
    await trainer.catch(() => undefined);
    await browser?.close();
    await h?.close();
  });

  it('lists the job, draws the frontier and live iterations, and follows a plan change without reloading', async () => {
    await page.goto(url);
    const row = page.locator('#jobs tbody tr[data-job="gpt3"]');
    await row.waitFor({ timeout: 20_000 });
    // The imported profile skips the sweep: deployed within a few polls.
    await page.locator('#job-meta[data-phase="DEPLOYED"]').waitFor({ timeout: 20_000 });
    const cells = await row.locator('td').allTextContents();
    expect(cells[0]).toBe('gpt3');
    expect(cells[1]).toBe('deployed');
    expect(cells[3]).toBe('16 × A100-SXM4 (simulated)');
    expect(cells[4]).toBe('simulated');
    expect(await page.locator('#job-meta').textContent()).toContain('EMULATED');
    expect(cells[5]).toMatch(/^\d+\.\d\d %$/);
    expect(Number(cells[5]!.split(' ')[0])).toBeGreaterThan(5);

    // Frontier: its line and its relaxed bound, the all-max and deployed points.
    const frontierPoints = page.locator('#frontier svg [aria-roledescription="point"]');
    await frontierPoints.first().waitFor({ timeout: 20_000 });
    expect(await frontierPoints.count()).toBeGreaterThanOrEqual(2);
    expect(await page.locator(`#frontier svg [aria-roledescription="line mark"]`).count()).toBe(2);
    // Live iterations: more points appear with no navigation.
    const iterPoints = page.locator('#iterations svg [aria-roledescription="point"]');
    // (Browser-side code as strings: the tests compile without the DOM library.)
    const iterCount = `document.querySelectorAll('#iterations svg [aria-roledescription="point"]').length`;
    await page.waitForFunction(`${iterCount} >= 6`, undefined, { timeout: 20_000 });
    const before = await iterPoints.count();
    // Timeline of the deployed plan, clock as colour with its colour bar.
    await page.locator('#timeline svg').waitFor({ timeout: 20_000 });
    expect(await page.locator('#timeline svg').textContent()).toContain('SM clock (MHz)');
    await page.screenshot({ path: path.join(SHOTS, '1-deployed.png'), fullPage: true });

    // A plan change while the page stays open.
    await page.evaluate('window.perseusMarker = 42');
    const v0 = Number(await page.locator('#job-meta').getAttribute('data-version'));
    const rep = await call<optimizerV1.ReportStragglerResponse__Output>(
      h.client,
      'ReportStraggler',
      { job_id: 'gpt3', dp_rank: 1, slowdown: 1.2 },
    );
    expect(Number(rep.schedule_version)).toBeGreaterThan(v0);
    await page
      .locator(`#job-meta[data-version="${rep.schedule_version}"]`)
      .waitFor({ timeout: 20_000 });
    await page.locator('#events li[data-kind="straggler"]').waitFor({ timeout: 20_000 });
    await page.waitForFunction(
      `(document.querySelector('#frontier svg')?.textContent ?? '').includes('plan for straggler pipeline 1')`,
      undefined,
      { timeout: 20_000 },
    );
    // Still the same document: a reload would have dropped the marker.
    expect(await page.evaluate('window.perseusMarker')).toBe(42);
    expect(await row.locator('td').nth(2).textContent()).toBe(`v${rep.schedule_version}`);
    await page.waitForFunction(`${iterCount} > ${before}`, undefined, { timeout: 20_000 });
    const events = await page.locator('#events li').allTextContents();
    expect(events.some((e) => /plan version \d+ deployed/.test(e))).toBe(true);
    await page.screenshot({ path: path.join(SHOTS, '2-after-straggler.png'), fullPage: true });
  }, 90_000);

  it('is read-only and serves the chart library from the optimizer, not a CDN', async () => {
    const post = await fetch(`${url}api/jobs`, { method: 'POST' });
    expect(post.status).toBe(405);
    const html = await (await fetch(url)).text();
    expect(html).not.toMatch(/https?:\/\//);
    const lib = await fetch(`${url}vendor/vega-lite.min.js`);
    expect(lib.status).toBe(200);
    expect((await lib.text()).length).toBeGreaterThan(100_000);
    expect((await fetch(`${url}api/jobs/nope`)).status).toBe(404);
  });

  it('follows the optimizer access rules: no plain HTTP off loopback, read tokens when it has a token file', async () => {
    await expect(startOptimizer({ dashboardListen: '0.0.0.0:0' })).rejects.toThrow(
      /optimizer dashboard refuses to serve on 0\.0\.0\.0:0 without TLS and a token file/,
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-dash-tokens-'));
    const file = path.join(dir, 'tokens');
    fs.writeFileSync(
      file,
      'viewer read viewer-secret-0123456789\nbot report bot-secret-0123456789\n',
      {
        mode: 0o600,
      },
    );
    const guarded = await startOptimizer({ dashboardListen: '127.0.0.1:0', tokenFile: file });
    try {
      const base = guarded.module.dashboardUrl()!;
      expect((await fetch(base)).status).toBe(200); // the page itself holds no data
      expect((await fetch(`${base}api/jobs`)).status).toBe(401);
      const auth = (t: string): RequestInit => ({ headers: { authorization: `Bearer ${t}` } });
      expect((await fetch(`${base}api/jobs`, auth('bot-secret-0123456789'))).status).toBe(403);
      const ok = await fetch(`${base}api/jobs`, auth('viewer-secret-0123456789'));
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual([]);
    } finally {
      await guarded.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
