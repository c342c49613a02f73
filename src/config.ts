/** Typed configuration produced by inputs.ts and consumed by every other module. */

export type BackupType = 'full' | 'incremental' | 'auto';
export type IfRunning = 'start' | 'attach' | 'wait' | 'fail';
export type VerifyMode = 'none' | 'manifest' | 'files' | 'restore';
export type OnTimeout = 'cancel' | 'leave';
export type PathStyle = 'auto' | 'true' | 'false';
export type S3Auth = 'specified' | 'implicit';
export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface ConnectionConfig {
  /** Name of the input it came from, for error messages (`connection-string`, `grant-connection-string`). */
  readonly input: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password?: string;
  readonly sslmode: SslMode;
  /** PEM texts (from `ca-cert`, `client-cert`, `client-key`). */
  readonly caCert?: string;
  readonly clientCert?: string;
  readonly clientKey?: string;
  /** Other libpq query parameters that were accepted (e.g. `options`, `connect_timeout`). */
  readonly params: Readonly<Record<string, string>>;
}

/** AS OF SYSTEM TIME, validated. */
export type AsOfSystemTime =
  | {
      readonly kind: 'interval';
      readonly text: string;
      /** how far back, in microseconds (> 0) */ readonly micros: bigint;
    }
  | {
      readonly kind: 'timestamp';
      readonly text: string;
      /** ISO 8601 UTC with up to 6 fraction digits */ readonly iso: string;
    };

export type Collection =
  | {
      readonly kind: 's3';
      /** As the user wrote it. */
      readonly raw: string;
      readonly bucket: string;
      /** Path inside the bucket without leading or trailing `/` ('' for the bucket root). */
      readonly path: string;
      /** Accepted non-secret CockroachDB parameters (`S3_STORAGE_CLASS`, `AWS_SERVER_ENC_MODE`, `AWS_SERVER_KMS_ID`), in input order. */
      readonly extraParams: readonly (readonly [string, string])[];
      /** `s3://bucket/path`: no credentials, no query. The `collection-path` output. */
      readonly display: string;
    }
  | {
      readonly kind: 'external';
      readonly raw: string;
      readonly name: string;
      /** `external://name`. */
      readonly display: string;
    };

export interface AwsCredentials {
  readonly accessKeyId?: string;
  readonly secretAccessKey?: string;
  readonly sessionToken?: string;
  /** Where they came from, for the log. */
  readonly source: 'inputs' | 'environment' | 'none';
}

export interface Config {
  readonly connection: ConnectionConfig;
  /** The connection used for `grant-to` and as the fallback for a refused cancel. Same as `connection` when not given. */
  readonly grantConnection: ConnectionConfig;
  readonly grantConnectionGiven: boolean;
  readonly collection: Collection;
  readonly aws: AwsCredentials;
  readonly awsRegion?: string;
  readonly s3Endpoint?: string;
  readonly s3PathStyle: PathStyle;
  readonly s3Auth: S3Auth;
  readonly assumeRole?: string;
  readonly backupType: BackupType;
  /** With auto: a new full backup when the newest one is older than this. */
  readonly fullBackupEveryMs?: number;
  /** Database names as CockroachDB will see them (unquoted folded to lower case, quoted kept). Empty: full cluster. */
  readonly databases: readonly string[];
  readonly asOfSystemTime: AsOfSystemTime;
  readonly revisionHistory: boolean;
  readonly encryptionPassphrase?: string;
  readonly kmsUri?: string;
  readonly grantTo?: string;
  readonly wait: boolean;
  readonly pollIntervalMs: number;
  readonly timeoutMs?: number;
  readonly pausedTimeoutMs: number;
  readonly onTimeout: OnTimeout;
  readonly cancelOnAbort: boolean;
  readonly ifRunning: IfRunning;
  readonly verify: VerifyMode;
  /** The cluster that runs the restore check (`verify: restore`). Same as `connection` when not given. */
  readonly verifyConnection: ConnectionConfig;
  readonly verifyConnectionGiven: boolean;
  readonly pruneKeepLast?: number;
  readonly pruneOlderThanMs?: number;
  readonly pruneDryRun: boolean;
  /** Check everything a run needs, change nothing (preflight.ts). */
  readonly dryRun: boolean;
  readonly summary: boolean;
}
