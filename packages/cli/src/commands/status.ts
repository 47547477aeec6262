import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import { normalizeListenAddress } from '@perseus/service-kit';

interface StatusFlags {
  server: string;
  job?: string;
  timeoutS: string;
}

function unary<Req, Res>(
  fn: (
    req: Req,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: Res) => void,
  ) => unknown,
  req: Req,
  deadline: Date,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, new grpc.Metadata(), { deadline }, (err, res) =>
      err ? reject(err) : resolve(res as Res),
    ),
  );
}

/** Registers `perseus status`: health of a server's services and, with --job, the job's phase. */
export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description(
      "show a server's health and, with --job, a job's phase, plan version and predicted saving",
    )
    .option(
      '--server <address>',
      'optimizer (or all-in-one) address',
      process.env['PERSEUS_OPTIMIZER_URL'] ?? '127.0.0.1:50051',
    )
    .option('--job <id>', 'job id')
    .option('--timeout-s <s>', 'deadline per call, seconds', '5')
    .action(async (flags: StatusFlags) => {
      const address = normalizeListenAddress(flags.server);
      const deadline = new Date(Date.now() + Number(flags.timeoutS) * 1000);
      const { Optimizer } = perseusGrpc().perseus.optimizer.v1;
      const client = new Optimizer(address, grpc.credentials.createInsecure());
      try {
        await new Promise<void>((resolve, reject) =>
          client.waitForReady(deadline, (err) => (err ? reject(err) : resolve())),
        );
        process.stdout.write(`server ${address}: reachable\n`);
        if (flags.job !== undefined) {
          const s = await unary<
            optimizerV1.GetJobStatusRequest,
            optimizerV1.GetJobStatusResponse__Output
          >(client.GetJobStatus.bind(client), { job_id: flags.job }, deadline);
          process.stdout.write(
            [
              `job ${flags.job}: ${s.phase.replace('PHASE_', '').toLowerCase()}`,
              `  schedule version ${s.schedule_version}, ranks ${s.registered_ranks}/${s.world_size}`,
              `  predicted saving ${s.predicted_saving_percent.toFixed(2)}% vs all-max clocks`,
              `  stragglers: ${s.straggler_dp_ranks.length ? s.straggler_dp_ranks.join(', ') : 'none'}`,
              s.detail ? `  ${s.detail}` : '',
            ]
              .filter(Boolean)
              .join('\n') + '\n',
          );
        }
      } catch (err) {
        const e = err as grpc.ServiceError;
        process.stderr.write(`perseus status: ${e.details ?? e.message}\n`);
        process.exitCode = 1;
      } finally {
        client.close();
      }
    });
}
