import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import {
  Checker,
  NotFoundError,
  PerseusServer,
  createLogger,
  decodeFieldViolations,
  rpc,
} from '../src';

const { Optimizer } = perseusGrpc().perseus.optimizer.v1;
type Client = InstanceType<typeof Optimizer>;

function call<Req, Res>(
  fn: (req: Req, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, (err, res) => (err ? reject(err) : resolve(res as Res))),
  );
}

describe('PerseusServer', () => {
  let server: PerseusServer;
  let client: Client;
  const hookCalls: string[] = [];

  beforeAll(async () => {
    server = new PerseusServer({ address: '127.0.0.1:0', logger: createLogger('test', 'silent') });
    server.addService({
      name: 'perseus.optimizer.v1.Optimizer',
      definition: Optimizer.service,
      handlers: {
        GetJobStatus: rpc.unary<
          optimizerV1.GetJobStatusRequest__Output,
          optimizerV1.GetJobStatusResponse
        >((req) => {
          const c = new Checker();
          const jobId = c.id('job_id', req.job_id);
          c.done();
          if (jobId === 'boom') throw new Error('secret internals: /etc/shadow');
          throw new NotFoundError(`job ${jobId} not found`);
        }),
      },
    });
    server.onShutdown(() => {
      hookCalls.push('hook');
    });
    const address = await server.start();
    client = new Optimizer(address, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client.close();
    await server.shutdown(1000);
  });

  it('maps validation errors to INVALID_ARGUMENT with BadRequest field violations', async () => {
    const err = (await call(client.GetJobStatus.bind(client), { job_id: '' }).catch(
      (e: unknown) => e,
    )) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(decodeFieldViolations(err.metadata)).toEqual([
      { field: 'job_id', description: 'is required' },
    ]);
  });

  it('keeps domain statuses and hides unexpected errors behind INTERNAL', async () => {
    const nf = (await call(client.GetJobStatus.bind(client), { job_id: 'j1' }).catch(
      (e: unknown) => e,
    )) as grpc.ServiceError;
    expect([nf.code, nf.details]).toEqual([grpc.status.NOT_FOUND, 'job j1 not found']);
    const internal = (await call(client.GetJobStatus.bind(client), { job_id: 'boom' }).catch(
      (e: unknown) => e,
    )) as grpc.ServiceError;
    expect([internal.code, internal.details]).toEqual([grpc.status.INTERNAL, 'internal error']);
  });

  it('answers UNIMPLEMENTED for methods without a handler', async () => {
    const err = (await call(client.GetFrontier.bind(client), { job_id: 'j' }).catch(
      (e: unknown) => e,
    )) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(err.details).toBe('perseus.optimizer.v1.Optimizer/GetFrontier is not implemented yet');
  });

  it('fails a server stream without a handler with UNIMPLEMENTED', async () => {
    const stream = client.WatchSchedule({ job_id: 'j', rank: 0 });
    const err = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it('is serving, then runs hooks and stops on shutdown', async () => {
    expect(server.state).toBe('serving');
    const other = new PerseusServer({
      address: '127.0.0.1:0',
      logger: createLogger('t2', 'silent'),
    });
    const order: string[] = [];
    other.onShutdown(() => {
      order.push('reset');
    });
    await other.start();
    await other.shutdown(500);
    expect(order).toEqual(['reset']);
    expect(other.state).toBe('stopped');
  });

  it('listens on a Unix socket with the requested mode and removes it on shutdown', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-sk-'));
    const sock = path.join(dir, 's.sock');
    const uds = new PerseusServer({
      address: `unix:${sock}`,
      logger: createLogger('t3', 'silent'),
      socketMode: 0o660,
    });
    await uds.start();
    expect(fs.statSync(sock).mode & 0o777).toBe(0o660);
    await uds.shutdown(500);
    expect(fs.existsSync(sock)).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
