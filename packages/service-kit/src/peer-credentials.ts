import type * as net from 'node:net';
import { libcFunction } from './libc';

/**
 * Who is at the other end of a Unix-socket connection, as the kernel says (SO_PEERCRED: the
 * credentials of the process that called connect()), plus a per-process connection number so a
 * service can tell two connections of the same process apart.
 *
 * grpc-js has no API for this: {@link PerseusServer} accepts Unix-socket connections itself, reads
 * the credentials here, and hands the connection to grpc-js with its peer string set to
 * {@link formatUnixPeer}'s text, which every handler sees as `call.getPeer()`.
 */
export interface UnixPeer {
  /** Unique per accepted connection within this process ("unix#17"). */
  connection: string;
  pid?: number;
  uid?: number;
  gid?: number;
}

const SOL_SOCKET = 1;
/** Linux x86-64 and aarch64 (asm-generic); other architectures leave the credentials unknown. */
const SO_PEERCRED = 17;

type GetSockOpt = (fd: number, level: number, name: number, buf: Buffer, len: number[]) => number;
let getsockopt: GetSockOpt | null | undefined;

function loadGetSockOpt(): GetSockOpt | null {
  if (getsockopt !== undefined) return getsockopt;
  const fn = libcFunction(
    'int getsockopt(int fd, int level, int name, _Out_ uint8_t *buf, _Inout_ uint32_t *len)',
  );
  getsockopt = fn && ((fd, level, name, buf, len) => Number(fn(fd, level, name, buf, len)));
  return getsockopt;
}

/** The fd of an accepted Unix-socket connection (Node keeps it on the libuv pipe handle). */
function socketFd(socket: net.Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  return typeof handle?.fd === 'number' && handle.fd >= 0 ? handle.fd : undefined;
}

/** SO_PEERCRED of an accepted Unix-socket connection; undefined where the kernel or fd can't tell. */
export function socketPeerCredentials(
  socket: net.Socket,
): { pid: number; uid: number; gid: number } | undefined {
  const fd = socketFd(socket);
  const fn = loadGetSockOpt();
  if (fd === undefined || fn === null) return undefined;
  const buf = Buffer.alloc(12);
  const len = [12];
  if (fn(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0 || len[0] !== 12) return undefined;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

const PEER_PREFIX = 'unix-peer:';

/** The peer text of a Unix-socket connection: `unix-peer:conn=17,pid=4242,uid=1000,gid=1000`. */
export function formatUnixPeer(peer: UnixPeer): string {
  const parts = [`conn=${peer.connection}`];
  if (peer.pid !== undefined) parts.push(`pid=${peer.pid}`);
  if (peer.uid !== undefined) parts.push(`uid=${peer.uid}`);
  if (peer.gid !== undefined) parts.push(`gid=${peer.gid}`);
  return `${PEER_PREFIX}${parts.join(',')}`;
}

/** Parses {@link formatUnixPeer}'s text (e.g. `call.getPeer()`); undefined for any other peer. */
export function parseUnixPeer(text: string): UnixPeer | undefined {
  if (!text.startsWith(PEER_PREFIX)) return undefined;
  const fields = new Map(
    text
      .slice(PEER_PREFIX.length)
      .split(',')
      .map((kv) => kv.split('=') as [string, string | undefined]),
  );
  const connection = fields.get('conn');
  if (connection === undefined) return undefined;
  const num = (k: string): number | undefined => {
    const v = fields.get(k);
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  return { connection, pid: num('pid'), uid: num('uid'), gid: num('gid') };
}

let nextConnection = 0;

/**
 * Marks an accepted Unix-socket connection with its peer credentials: grpc-js builds
 * `call.getPeer()` from the socket's `remoteAddress`, which Node leaves empty for Unix sockets.
 */
export function tagUnixConnection(socket: net.Socket): UnixPeer {
  const cred = socketPeerCredentials(socket);
  const peer: UnixPeer = { connection: `unix#${++nextConnection}`, ...cred };
  Object.defineProperty(socket, 'remoteAddress', {
    value: formatUnixPeer(peer),
    configurable: true,
  });
  return peer;
}
