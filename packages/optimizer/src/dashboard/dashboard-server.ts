import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as grpc from '@grpc/grpc-js';
import type { AccessPolicy, AccessToken, Logger } from '@perseus/service-kit';
import { PermissionDeniedError, UnauthenticatedError, listenerPolicy } from '@perseus/service-kit';
import { DASHBOARD_PAGE_HTML, DASHBOARD_PAGE_SCRIPT } from './dashboard-page';
import type { DashboardState } from './dashboard-state';

/** Options of {@link startDashboardServer}. */
export interface DashboardServerOptions {
  /** `host:port` (port 0 picks one). Loopback only, unless TLS is given. */
  listen: string;
  state: DashboardState;
  logger: Logger;
  /** PEM certificate chain and key: serve HTTPS (required for a non-loopback address). */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** The optimizer's access tokens (its token file); undefined = none. */
  tokens?: readonly AccessToken[] | undefined;
  /** How often the state polls the core for events, ms. Default 500. */
  pollMs?: number;
}

/** A running dashboard. */
export interface DashboardServer {
  /** `http(s)://host:port/`. */
  url: string;
  close(): Promise<void>;
}

const LISTEN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d+)$/;

/** The browser builds of Vega and Vega-Lite, served from node_modules (no CDN, no network). */
const VENDOR: Record<string, string> = {
  '/vendor/vega.min.js': 'vega/build/vega.min.js',
  '/vendor/vega-lite.min.js': 'vega-lite/build/vega-lite.min.js',
};

/**
 * Serves the optimizer's read-only dashboard: the page, its script, the vendored chart library
 * and `GET /api/jobs`, `GET /api/jobs/<id>` (JSON the page polls). Nothing here changes state;
 * anything but GET/HEAD is 405. The optimizer's gRPC access rules apply (service-kit
 * `listenerPolicy`): on a local address it is open, or needs a `read` token when the optimizer has a
 * token file; anywhere else it needs TLS and a token file. The API takes the token as
 * `authorization: Bearer`; the page, which holds no data, passes on the one given in its URL
 * fragment (`#token=…`, never sent to the server or its logs).
 */
export async function startDashboardServer(opts: DashboardServerOptions): Promise<DashboardServer> {
  const m = LISTEN.exec(opts.listen.trim());
  if (!m)
    throw new Error(
      `dashboard listen address must be host:port, got ${JSON.stringify(opts.listen)}`,
    );
  const hostText = m[1]!;
  const tls = opts.tlsCertFile !== undefined && opts.tlsKeyFile !== undefined;
  if ((opts.tlsCertFile === undefined) !== (opts.tlsKeyFile === undefined))
    throw new Error('dashboard TLS needs both a certificate and a key');
  // Settled before listening, so a refused address is never bound.
  const policy = await listenerPolicy(`${hostText}:${m[2]}`, {
    tokens: opts.tokens,
    tls,
    service: 'the optimizer dashboard',
  });
  const vendor = new Map<string, Buffer>();
  for (const [route, mod] of Object.entries(VENDOR))
    vendor.set(route, fs.readFileSync(require.resolve(mod)));
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    void route(req, res, opts, vendor, policy).catch((err: unknown) => {
      opts.logger.error({ err }, 'dashboard request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    });
  };
  const server = tls
    ? https.createServer(
        { cert: fs.readFileSync(opts.tlsCertFile!), key: fs.readFileSync(opts.tlsKeyFile!) },
        handler,
      )
    : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), hostText.replace(/^\[|\]$/g, ''), () => resolve());
  });
  const a = server.address();
  const port = typeof a === 'object' && a !== null ? a.port : Number(m[2]);
  const url = `${tls ? 'https' : 'http'}://${hostText}:${port}/`;
  opts.state.poll();
  const timer = setInterval(() => {
    try {
      opts.state.poll();
    } catch (err) {
      opts.logger.warn({ err }, 'dashboard poll failed');
    }
  }, opts.pollMs ?? 500);
  timer.unref();
  opts.logger.info({ url }, 'dashboard serving');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  // Vega compiles its expressions with Function(): 'unsafe-eval', nothing from elsewhere.
  'content-security-policy':
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
};

async function route(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  opts: DashboardServerOptions,
  vendor: Map<string, Buffer>,
  policy: AccessPolicy,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('read-only\n');
    return;
  }
  const path = new URL(req.url ?? '/', 'http://dashboard').pathname;
  const send = (type: string, body: string | Buffer, status = 200): void => {
    res.writeHead(status, { 'content-type': type, ...SECURITY_HEADERS });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (path === '/') return send('text/html; charset=utf-8', DASHBOARD_PAGE_HTML);
  if (path === '/dashboard.js')
    return send('text/javascript; charset=utf-8', DASHBOARD_PAGE_SCRIPT);
  const lib = vendor.get(path);
  if (lib !== undefined) return send('text/javascript; charset=utf-8', lib);
  if (path.startsWith('/api/')) {
    const md = new grpc.Metadata();
    const auth = req.headers.authorization;
    if (auth !== undefined) md.set('authorization', auth);
    try {
      policy.check(md, 'read');
    } catch (err) {
      if (err instanceof UnauthenticatedError || err instanceof PermissionDeniedError)
        return send(
          'application/json',
          JSON.stringify({ error: err.message }),
          err instanceof UnauthenticatedError ? 401 : 403,
        );
      throw err;
    }
  }
  if (path === '/api/jobs') return send('application/json', JSON.stringify(opts.state.jobList()));
  const job = /^\/api\/jobs\/([A-Za-z0-9._-]{1,128})$/.exec(path);
  if (job) {
    const view = await opts.state.jobView(job[1]!);
    if (view === undefined)
      return send('application/json', JSON.stringify({ error: 'no such job' }), 404);
    return send('application/json', JSON.stringify(view));
  }
  send('text/plain', 'not found\n', 404);
}
