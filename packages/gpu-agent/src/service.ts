import type * as grpc from '@grpc/grpc-js';
import type { agentV1 } from '@perseus/proto';
import { perseusGrpc } from '@perseus/proto';
import type { HostedService, Logger } from '@perseus/service-kit';
import { failStream, rpc } from '@perseus/service-kit';
import type { GpuAgentCore, Session, SessionSink } from './agent';
import type { Authorizer, SwitchableAuthorizer } from './auth';
import {
  validateListDevices,
  validateReadEnergy,
  validateResetClocks,
  validateSessionRequest,
  validateSetClocks,
} from './validate';

const SERVICE = 'perseus.agent.v1.GpuAgent';

type SessionCall = grpc.ServerDuplexStream<agentV1.SessionRequest__Output, agentV1.SessionResponse>;

/**
 * The gRPC adapter of one listener: authorises (per the listener's {@link Authorizer}), validates
 * with the `validateXxx` functions, and hands strict values to the core.
 */
export function gpuAgentService(
  core: GpuAgentCore,
  auth: Authorizer | SwitchableAuthorizer,
  logger: Logger,
): HostedService {
  return {
    name: SERVICE,
    definition: perseusGrpc().perseus.agent.v1.GpuAgent.service,
    handlers: {
      ListDevices: rpc.unary<agentV1.ListDevicesRequest__Output, agentV1.ListDevicesResponse>(
        async (req, call) => {
          auth.check(call, 'read');
          validateListDevices(req);
          return { devices: await core.listDevices() };
        },
      ),
      ReadEnergy: rpc.unary<agentV1.ReadEnergyRequest__Output, agentV1.ReadEnergyResponse>(
        async (req, call) => {
          auth.check(call, 'read');
          return core.readEnergy(validateReadEnergy(req, core.devices()));
        },
      ),
      SetClocks: rpc.unary<agentV1.SetClocksRequest__Output, agentV1.SetClocksResponse>(
        async (req, call) => {
          const caller = auth.check(call, 'control');
          return core.setClocks(validateSetClocks(req, core.devices()), caller);
        },
      ),
      ResetClocks: rpc.unary<agentV1.ResetClocksRequest__Output, agentV1.ResetClocksResponse>(
        async (req, call) => {
          const caller = auth.check(call, 'control');
          return core.resetClocks(validateResetClocks(req, core.devices()), caller);
        },
      ),
      OpenSession: rpc.bidi<agentV1.SessionRequest__Output, agentV1.SessionResponse>((call) =>
        openSession(core, auth, logger, call),
      ),
    },
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
  const sink: SessionSink = {
    send(response) {
      if (!ended) call.write(response);
    },
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
      session.handle(msg);
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
