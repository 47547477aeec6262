// Container HEALTHCHECK: asks grpc.health.v1 for the overall status ('') of the service this
// container runs, at the address its PERSEUS_<ROLE>_LISTEN names (0.0.0.0 → 127.0.0.1). A control
// image names both the profiler's and the optimizer's address and runs one of them: healthy when
// any named address answers SERVING. Exit 0 healthy, 1 not.
'use strict';
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

function check(address) {
  return new Promise((resolve) => {
    const client = new Health(address, grpc.credentials.createInsecure());
    client.Check({ service: '' }, { deadline: Date.now() + 3000 }, (err, res) => {
      client.close();
      resolve(!err && res.status === 'SERVING');
    });
  });
}

Promise.all(addresses.map(check)).then((ok) => process.exit(ok.some(Boolean) ? 0 : 1));
