import type * as grpc from '@grpc/grpc-js';
import type { agentV1 } from '@perseus/proto';
import { perseusGrpc } from '@perseus/proto';
import type { Handler, HostedService, Logger } from '@perseus/service-kit';
import { failStream, rpc } from '@perseus/service-kit';
import type { GpuAgentCore } from './agent';
import type { Authorizer, SwitchableAuthorizer } from './auth';
import type { Session, SessionSink } from './session';
import {
  validateAdminReset,
  validateListDevices,
  validateReadEnergy,
  validateResetClocks,
  validateSessionRequest,
  validateSetClocks,
} from './validate';
import {
  deviceToWire,
  eventErrorToWire,
  measurementToWire,
  openedToWire,
  resetDeviceToWire,
  seqOf,
} from './wire';

const SERVICE = 'perseus.agent.v1.GpuAgent';

type SessionCall = grpc.ServerDuplexStream<agentV1.SessionRequest__Output, agentV1.SessionResponse>;

/** The methods of the generated GpuAgentHandlers (its index signature removed). */
type GpuAgentMethod = keyof {
  [K in keyof agentV1.GpuAgentHandlers as string extends K ? never : K]: true;
};
/** Request and response types of a unary method, from the generated handler type. */
type UnaryOf<M extends GpuAgentMethod> =
  agentV1.GpuAgentHandlers[M] extends grpc.handleUnaryCall<infer Req, infer Res>
    ? { req: Req; res: Res }
    : never;

function unary<M extends GpuAgentMethod>(
  fn: (
    req: UnaryOf<M>['req'],
    call: grpc.ServerUnaryCall<UnaryOf<M>['req'], UnaryOf<M>['res']>,
  ) => Promise<UnaryOf<M>['res']>,
): Handler {
  return rpc.unary(fn);
}

/**
 * The gRPC adapter of one listener: authorises (per the listener's {@link Authorizer}), validates
 * with the `validateXxx` functions, hands strict values to the core and maps its domain values to
 * the wire (wire.ts). Every method of the generated service type must have a handler here.
 */
export function gpuAgentService(
  core: GpuAgentCore,
  auth: Authorizer | SwitchableAuthorizer,
  logger: Logger,
): HostedService {
  const handlers: Record<GpuAgentMethod, Handler> = {
    ListDevices: unary<'ListDevices'>(async (req, call) => {
      auth.check(call, 'read');
      validateListDevices(req);
      return { devices: (await core.listDevices()).map(deviceToWire) };
    }),
    ReadEnergy: unary<'ReadEnergy'>(async (req, call) => {
      auth.check(call, 'read');
      const r = await core.readEnergy(validateReadEnergy(req, core.devices()));
      return {
        energy_j: r.energyJ,
        power_w: r.powerW,
        timestamp_unix_ns: String(r.timestampUnixNs),
      };
    }),
    SetClocks: unary<'SetClocks'>(async (req, call) => {
      const caller = auth.check(call, 'control');
      const mhz = await core.setClocks(validateSetClocks(req, core.devices()), caller);
      return { applied_sm_clock_mhz: mhz };
    }),
    ResetClocks: unary<'ResetClocks'>(async (req, call) => {
      const caller = auth.check(call, 'control');
      await core.resetClocks(validateResetClocks(req, core.devices()), caller);
      return {};
    }),
    AdminReset: unary<'AdminReset'>(async (req, call) => {
      const caller = auth.check(call, 'admin');
      const results = await core.adminReset(validateAdminReset(req, core.devices()), caller);
      return { devices: results.map(resetDeviceToWire) };
    }),
    OpenSession: rpc.bidi<agentV1.SessionRequest__Output, agentV1.SessionResponse>((call) =>
      openSession(core, auth, logger, call),
    ),
  };
  return {
    name: SERVICE,
    definition: perseusGrpc().perseus.agent.v1.GpuAgent.service,
    handlers,
  };
}

function openSession(
  core: GpuAgentCore,
  auth: Authorizer | SwitchableAuthorizer,
  logger: Logger,
  call: SessionCall,
): void {
  const caller = auth.check(call, 'control');
  let session: Session | undefined;
  let ended = false;
  const send = (response: agentV1.SessionResponse): void => {
    if (!ended) call.write(response);
  };
  const sink: SessionSink = {
    opened: (v) => send(openedToWire(v)),
    measurement: (m) => send(measurementToWire(m)),
    rejected: (seq, err) => send(eventErrorToWire(seq, err, logger)),
    end(err) {
      if (ended) return;
      ended = true;
      if (err !== undefined) failStream(call, err, logger, `${SERVICE}/OpenSession`);
      else call.end();
    },
  };
  logger.debug({ peer: caller.peer, identity: caller.identity }, 'session stream opened');
  call.on('data', (msg: agentV1.SessionRequest__Output) => {
    if (ended) return;
    if (session) {
      const recvNs = core.clockNs();
      session.touch();
      try {
        const ev = validateSessionRequest(msg, {
          first: false,
          device: session.slot.info,
          position: { ppRank: session.lease.rank.ppRank, numStages: session.lease.numStages },
        });
        session.apply(ev, recvNs);
      } catch (err) {
        session.reject(seqOf(msg), err);
      }
      return;
    }
    try {
      const ev = validateSessionRequest(msg, { first: true, devices: core.devices() });
      if (ev.kind !== 'open') return;
      session = core.openSession(ev.open, caller, sink);
    } catch (err) {
      sink.end(err);
    }
  });
  call.on('end', () => {
    // A client that dies also ends the readable side; 'cancelled' follows within the same turn.
    setImmediate(() => {
      const why = call.cancelled
        ? 'stream cancelled (client gone or keepalive lost)'
        : 'client closed the stream';
      if (session) void session.close(why);
      else sink.end();
    });
  });
  const gone = (why: string) => () => {
    ended = true;
    if (session) void session.close(why);
  };
  call.on('cancelled', gone('stream cancelled (client gone or keepalive lost)'));
  call.on('error', gone('stream error'));
  call.on('close', gone('stream closed'));
}
