// Container HEALTHCHECK: asks grpc.health.v1 for the overall status ('') of the service this
// container runs, at the address its PERSEUS_<ROLE>_LISTEN names (0.0.0.0 → 127.0.0.1). A control
// image names both the profiler's and the optimizer's address and runs one of them: healthy when
// any named address answers SERVING. Exit 0 healthy, 1 not.
//
// TLS: when the listener has a certificate (PERSEUS_TLS_CERT), the check dials over TLS and trusts
// PERSEUS_HEALTHCHECK_TLS_CA, else the listener's own certificate file (enough for a self-signed
// certificate or a chain file that ends with its CA). It dials 127.0.0.1, so the certificate's host
// names are not compared; its signature is. With mutual TLS (PERSEUS_TLS_CLIENT_CA) it presents the
// listener's own certificate and key, which must then be signed by that CA (the health service
// needs no token).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const proto = path.join(
  path.dirname(require.resolve('grpc-health-check/package.json')),
  'proto/health/v1/health.proto',
);
const { Health } = grpc.loadPackageDefinition(protoLoader.loadSync(proto, { enums: String })).grpc
  .health.v1;
const addresses = ['PERSEUS_AGENT_LISTEN', 'PERSEUS_PROFILER_LISTEN', 'PERSEUS_OPTIMIZER_LISTEN']
  .map((name) => process.env[name])
  .filter(Boolean)
  .map((a) => a.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '127.0.0.1:'));

function credentials() {
  const env = process.env;
  if (!env.PERSEUS_TLS_CERT) return grpc.credentials.createInsecure();
  const read = (file) => fs.readFileSync(file);
  const mutual = Boolean(env.PERSEUS_TLS_CLIENT_CA);
  return grpc.credentials.createSsl(
    read(env.PERSEUS_HEALTHCHECK_TLS_CA || env.PERSEUS_TLS_CERT),
    mutual ? read(env.PERSEUS_TLS_KEY) : null,
    mutual ? read(env.PERSEUS_TLS_CERT) : null,
    { checkServerIdentity: () => undefined },
  );
}

function check(address, creds) {
  return new Promise((resolve) => {
    // A Unix socket is local: never TLS.
    const client = new Health(
      address,
      address.startsWith('unix:') ? grpc.credentials.createInsecure() : creds,
    );
    client.Check({ service: '' }, { deadline: Date.now() + 3000 }, (err, res) => {
      client.close();
      resolve(!err && res.status === 'SERVING');
    });
  });
}

let creds;
try {
  creds = credentials();
} catch (err) {
  console.error(`healthcheck: ${err.message}`);
  process.exit(1);
}
Promise.all(addresses.map((a) => check(a, creds))).then((ok) =>
  process.exit(ok.some(Boolean) ? 0 : 1),
);
