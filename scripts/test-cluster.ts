/**
 * `npm run test-cluster`: starts the test cluster and S3 server on 127.0.0.1
 * and prints how to reach them, until Ctrl-C.
 *   --profile 22.2|23.1|23.2|24.1|24.3|25.2   (default 25.2)
 *   --env-file <path>                        also write the printed INPUT_…=… lines there when ready
 */
import { writeFileSync } from 'node:fs';
import type { ProfileName } from '../test/support/cluster/index.js';
import { PROFILE_NAMES, startTestCluster } from '../test/support/cluster/index.js';
import { startS3Server, TEST_S3_CREDENTIAL } from '../test/support/s3/server.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const profile = (arg('--profile') ?? '25.2') as ProfileName;
if (!PROFILE_NAMES.includes(profile)) {
  console.error(`--profile must be one of ${PROFILE_NAMES.join(', ')}`);
  process.exit(2);
}
const s3 = await startS3Server({ buckets: ['backups'] });
const cluster = await startTestCluster({ profile, jobDurationMs: 5000 });
const env = {
  CONNECTION_STRING: cluster.url('root'),
  COLLECTION: 's3://backups/manual',
  S3_ENDPOINT: s3.endpoint,
  AWS_ACCESS_KEY_ID: TEST_S3_CREDENTIAL.accessKeyId,
  AWS_SECRET_ACCESS_KEY: TEST_S3_CREDENTIAL.secretAccessKey,
};
// The inputs as the runner passes them: printed, and written to --env-file with the same keys.
const inputs: Record<string, string> = {
  'INPUT_CONNECTION-STRING': env.CONNECTION_STRING,
  INPUT_COLLECTION: env.COLLECTION,
  'INPUT_AWS-ACCESS-KEY-ID': env.AWS_ACCESS_KEY_ID,
  'INPUT_AWS-SECRET-ACCESS-KEY': env.AWS_SECRET_ACCESS_KEY,
  'INPUT_AWS-REGION': s3.region,
  'INPUT_S3-ENDPOINT': env.S3_ENDPOINT,
};
console.log(`Test cluster ${cluster.version}`);
console.log(`  psql '${env.CONNECTION_STRING}'`);
console.log(`  non-admin user: ${cluster.url('backup_user')}`);
console.log(`S3 server ${s3.endpoint} (bucket backups, region ${s3.region})`);
console.log('\nInputs for the action (INPUT_* for node dist/index.js):');
for (const [k, v] of Object.entries(inputs)) console.log(`  ${k}=${v}`);
console.log('\nCtrl-C to stop.');
const envFile = arg('--env-file');
if (envFile)
  writeFileSync(
    envFile,
    Object.entries(inputs)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') + '\n',
  );
const stop = async (): Promise<void> => {
  await cluster.close();
  await s3.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
