/**
 * `npm run demo`: runs the BUNDLED action (dist/index.js) against the
 * project's own test cluster and S3 server, then prints its log, outputs and
 * job summary. Nothing leaves this machine: both servers bind 127.0.0.1.
 */
import { existsSync } from 'node:fs';
import { BUNDLE, runAction } from '../test/support/action-runner.js';
import type { ProfileName } from '../test/support/cluster/index.js';
import { PROFILE_NAMES, startTestCluster } from '../test/support/cluster/index.js';
import { startS3Server, TEST_S3_CREDENTIAL } from '../test/support/s3/server.js';

const profile = (process.env.DEMO_PROFILE ?? '25.2') as ProfileName;
if (!PROFILE_NAMES.includes(profile)) {
  console.error(`DEMO_PROFILE must be one of ${PROFILE_NAMES.join(', ')}`);
  process.exit(2);
}
if (!existsSync(BUNDLE)) {
  console.error(`${BUNDLE} is missing: run \`npm run bundle\` first.`);
  process.exit(2);
}

const rule = (title: string): void =>
  console.log(`\n──── ${title} ${'─'.repeat(Math.max(0, 60 - title.length))}`);

const s3 = await startS3Server({ buckets: ['backups'] });
const cluster = await startTestCluster({ profile, jobDurationMs: 3000 });
let code = 1;
try {
  rule(`test cluster ${cluster.version.split(' (')[0]} on 127.0.0.1:${cluster.port}, S3 on ${s3.endpoint}`);
  const result = await runAction({
    inputs: {
      'connection-string': cluster.url('root'),
      collection: 's3://backups/demo',
      'aws-access-key-id': TEST_S3_CREDENTIAL.accessKeyId,
      'aws-secret-access-key': TEST_S3_CREDENTIAL.secretAccessKey,
      'aws-region': s3.region,
      's3-endpoint': s3.endpoint,
      'poll-interval': '1s',
    },
  });
  rule('action log (dist/index.js)');
  process.stdout.write(result.stdout.replace(/^::add-mask::.*\n/gm, ''));
  if (result.stderr) process.stdout.write(result.stderr);
  rule('outputs');
  for (const [k, v] of Object.entries(result.outputs)) console.log(`${k.padEnd(16)} ${v}`);
  rule('job summary (Markdown)');
  console.log(result.summary);
  rule(`exit code ${result.code}`);
  code = result.code ?? 1;
} finally {
  await cluster.close();
  await s3.close();
}
process.exit(code);
