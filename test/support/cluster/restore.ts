/**
 * `RESTORE DATABASE … FROM <subdir | LATEST> IN <collection> [AS OF SYSTEM TIME …] WITH …` as
 * CockroachDB 22.2–25.x plans and runs it, for the action's restore check (`schema_only,
 * verify_backup_table_data, new_db_name, detached`). Statement-time checks follow
 * pkg/backup/restore_planning.go (restorePlanHook, checkPrivilegesForRestore, doRestorePlan,
 * allocateDescriptorRewrites); the job reads every data file of the chain up to the chosen time
 * from the bucket with the collection URI's credentials and checks it against the checksum the
 * backup recorded (restore_job.go, restore_data_processor.go), then makes the database public.
 */
import type { Job, Session } from './engine-state.js';
import type { EngineInternals } from './internals.js';
import type { JobStorage, Manifest, ManifestDatabase, ManifestTable } from './jobs.js';
import { passphraseHash, sanitizeUri, sha256 } from './jobs.js';
import type { Notice, QueryResult } from './protocol-types.js';
import { Oid, SqlError } from './protocol-types.js';
import {
  formatIdent,
  formatTs,
  parseIdent,
  quoteLiteral,
  resolveValue,
  splitList,
  syntaxError,
  VALUE,
} from './sqltext.js';

/** restore_planning.go `deprecatedPrivilegesRestorePreamble` (backup_planning.go in older trees). */
const RESTORE_PREAMBLE =
  'The existing privileges are being deprecated in favour of a fine-grained privilege model explained here https://www.cockroachlabs.com/docs/stable/restore.html#required-privileges. In a future release, to run';

/** cloud.ErrFileDoesNotExist. */
const FILE_DOES_NOT_EXIST = "external_storage: file doesn't exist";

interface RestoreOptions {
  schemaOnly: boolean;
  verifyData: boolean;
  detached: boolean;
  newDbName?: string;
  passphrase?: string;
  kms?: string;
  skip: string[];
}

type Layer = { folder: string; manifest: Manifest };

export class RestoreStatement {
  constructor(
    private readonly e: EngineInternals,
    /** Starts a job now, or at COMMIT inside a transaction (transactions.ts). */
    private readonly startJob: (s: Session, job: Job, start: () => Promise<void>) => Promise<void>,
  ) {}

  matches(sql: string): boolean {
    return /^RESTORE\s/i.test(sql);
  }

  async run(
    s: Session,
    sql: string,
    params: readonly (string | null)[],
    arrived: number,
  ): Promise<QueryResult> {
    const re = new RegExp(
      `^RESTORE\\s+(?:(DATABASE|TABLE)\\s+(.+?)\\s+)?FROM\\s+(LATEST|${VALUE})\\s+IN\\s+(${VALUE})` +
        `(?:\\s+AS\\s+OF\\s+SYSTEM\\s+TIME\\s+(${VALUE}))?(?:\\s+WITH\\s+(?:OPTIONS\\s*\\((.*)\\)|(.*)))?$`,
      'is',
    );
    const m = re.exec(sql);
    if (!m) throw syntaxError(sql);
    const [, kind, targetText, subdirToken, collectionToken, aostToken, optsParen, optsPlain] = m;
    if (kind?.toUpperCase() !== 'DATABASE')
      throw new SqlError('0A000', 'the test cluster emulates RESTORE DATABASE only');
    // Prepare-time typing: restoreTypeCheck types the URIs, subdirectory and string options, not
    // AS OF SYSTEM TIME, so a bare placeholder there has no type unless the client declared one.
    const bare = aostToken ? /^\$(\d+)$/.exec(aostToken.trim()) : null;
    if (bare && !(s.paramTypes?.[Number(bare[1]) - 1] ?? 0)) {
      throw new SqlError(
        '42P18',
        `could not determine data type of placeholder $${bare[1]}`,
        undefined,
        'consider adding explicit type casts to the placeholder arguments',
      );
    }
    const databases = splitList(targetText!).map(parseIdent);
    const o = this.options(optsParen ?? optsPlain ?? '', params);
    // restorePlanHook, in its order.
    if (!o.schemaOnly && o.verifyData)
      throw new SqlError(
        'XXUUU',
        'to set the verify_backup_table_data option, the schema_only option must be set',
      );
    if (o.kms !== undefined && o.passphrase !== undefined)
      throw new SqlError('XXUUU', 'cannot have both encryption_passphrase and kms option set');
    if (o.newDbName !== undefined && databases.length !== 1)
      throw new SqlError(
        'XXUUU',
        'new_db_name can only be used for RESTORE DATABASE with a single target database',
      );
    if (s.inTxn && !o.detached)
      throw new SqlError(
        'XXUUU',
        'RESTORE cannot be used inside a multi-statement transaction without DETACHED option',
      );
    const uri = resolveValue(collectionToken!, params) ?? '';
    const notices = this.checkPrivileges(s.info.user);
    const store = this.e.storage(s, uri);
    const endMicros = aostToken !== undefined ? this.e.evalAsOf(aostToken, params) : undefined;
    const subdir = await this.resolveSubdir(store, subdirToken!, params, uri);
    const layers = await call(() => store.chain(subdir));
    if (layers.length === 0)
      throw new SqlError(
        'XXUUU',
        `failed to read backup from "${subdir}": path does not contain a completed backup`,
      );
    await this.checkEncryption(store, layers[0]!, o);
    this.checkVersions(layers);
    const chain = this.truncate(layers, endMicros);
    const last = chain[chain.length - 1]!.manifest;
    const inBackup = backedUpDatabases(last, this.e);
    const targets: ManifestDatabase[] = databases.map((d) => {
      const found = inBackup.find((x) => x.name === d);
      if (found) return found;
      const why =
        endMicros === undefined
          ? `database "${d}" does not exist`
          : `database "${d}" does not exist, or invalid RESTORE timestamp: supplied backups do not cover requested time`;
      throw new SqlError(
        'XXUUU',
        `failed to resolve targets in the BACKUP location specified by the RESTORE statement, use SHOW BACKUP to find correct targets: ${why}`,
      );
    });
    for (const name of o.newDbName !== undefined ? [o.newDbName] : databases) {
      if (this.e.catalog.taken(name)) throw new SqlError('XXUUU', `database "${name}" already exists`);
    }
    const description = this.describe(databases, subdir, uri, aostToken, o);
    const job = this.e.createJob(s.info.user, description, sql, uri);
    job.type = 'RESTORE';
    const plan: RestorePlan = {
      chain,
      targets,
      names: o.newDbName !== undefined ? [o.newDbName] : databases,
      readData: o.verifyData || !o.schemaOnly,
      keepRows: !o.schemaOnly,
      user: s.info.user,
    };
    job.done = this.startJob(s, job, () => this.runJob(job, store, plan));
    const withNotices = (r: QueryResult): QueryResult => (notices.length > 0 ? { ...r, notices } : r);
    if (o.detached)
      return withNotices({
        fields: [{ name: 'job_id', typeOid: Oid.int8 }],
        rows: [[job.id]],
        tag: 'RESTORE 1',
      });
    return withNotices({ ...(await this.e.waitBlocking(s, job, arrived)), tag: 'RESTORE 1' });
  }

  private options(text: string, params: readonly (string | null)[]): RestoreOptions {
    const o: RestoreOptions = { schemaOnly: false, verifyData: false, detached: false, skip: [] };
    for (const item of splitList(text)) {
      const m = /^(\w+)(?:\s*=\s*(.+))?$/s.exec(item);
      if (!m) throw syntaxError(item);
      const name = m[1]!.toLowerCase();
      const value = m[2]?.trim();
      const str = () => resolveValue(value ?? "''", params) ?? '';
      switch (name) {
        case 'schema_only':
          o.schemaOnly = true;
          break;
        case 'verify_backup_table_data':
          o.verifyData = true;
          break;
        case 'detached':
          if (value !== undefined && !/^(TRUE|FALSE)$/i.test(value)) throw syntaxError(`detached = ${value}`);
          o.detached = value === undefined || /^TRUE$/i.test(value);
          break;
        case 'new_db_name':
          o.newDbName = str();
          break;
        case 'encryption_passphrase':
          o.passphrase = str();
          break;
        case 'kms':
          o.kms = str();
          break;
        case 'skip_missing_foreign_keys':
        case 'skip_missing_sequences':
        case 'skip_missing_views':
        case 'skip_missing_udfs':
        case 'skip_localities_check':
          o.skip.push(name);
          break;
        default:
          throw syntaxError(item);
      }
    }
    return o;
  }

  /**
   * checkPrivilegesForRestore (restore_planning.go, the same rule 22.2–25.x): admins pass; a database
   * restore needs the RESTORE system privilege, or else (deprecated, with a notice) CREATEDB as a role
   * option or system privilege; without either: `only users with the CREATEDB privilege can restore
   * databases` (42501) with the notice as hint. The destination checks (EXTERNALIOIMPLICITACCESS,
   * USAGE on an external connection) follow in `storage()`. Docs: restore.md "Required privileges"
   * (v22.2, v23.2, v24.3, v25.2).
   */
  private checkPrivileges(user: string): Notice[] {
    if (this.e.isAdmin(user) || this.e.hasSystem(user, 'RESTORE')) return [];
    const notice = `${RESTORE_PREAMBLE} RESTORE DATABASE, user ${user} will exclusively require the RESTORE system privilege.`;
    const u = this.e.users.get(user);
    if (u?.roleOptions.has('CREATEDB') || u?.system.has('CREATEDB')) return [{ message: notice }];
    throw new SqlError(
      '42501',
      'only users with the CREATEDB privilege can restore databases',
      undefined,
      notice,
    );
  }

  private async resolveSubdir(
    store: JobStorage,
    token: string,
    params: readonly (string | null)[],
    uri: string,
  ): Promise<string> {
    if (/^LATEST$/i.test(token)) {
      const latest = await call(() => store.latest());
      if (!latest)
        throw new SqlError('58P01', `path does not contain a completed latest backup: ${sanitizeUri(uri)}`);
      return '/' + latest.replace(/^\/+/, '');
    }
    return '/' + (resolveValue(token, params) ?? '').replace(/^\/+/, '');
  }

  /**
   * doRestorePlan: a passphrase makes it read ENCRYPTION-INFO (backupencryption.ReadEncryptionOptions),
   * which an unencrypted backup lacks; reading an encrypted manifest without a key or with the wrong
   * one fails as SHOW BACKUP does (the same texts as show-backup.ts). KMS keys are not modelled: a `kms`
   * option is taken as the right one.
   */
  private async checkEncryption(store: JobStorage, full: Layer, o: RestoreOptions): Promise<void> {
    if (o.kms !== undefined) return;
    const encryption = full.manifest.encryption;
    if (o.passphrase !== undefined) {
      if (encryption === undefined || !(await call(() => store.get(`${full.folder}/ENCRYPTION-INFO`))))
        throw new SqlError('XXUUU', 'could not find or read encryption information');
      if (passphraseHash(o.passphrase) !== encryption)
        throw new SqlError(
          'XXUUU',
          'failed to decrypt — check passphrase/key: cipher: message authentication failed',
        );
      return;
    }
    if (encryption !== undefined)
      throw new SqlError(
        'XXUUU',
        'file appears encrypted -- try specifying one of "encryption_passphrase" or "kms"',
      );
  }

  /**
   * checkBackupManifestVersionCompatability (restore_planning.go): a backup from a newer cluster
   * version, or from one older than the oldest version this release can upgrade from
   * (clusterversion MinSupportedVersion), is refused before any job starts.
   */
  private checkVersions(layers: Layer[]): void {
    const p = this.e.profile;
    const current = `${p.major}.${p.minor}`;
    const min = MIN_SUPPORTED[current];
    for (const { manifest } of layers) {
      const v = manifest.clusterVersion;
      if (v === undefined) continue;
      if (versionLess(current, v))
        throw new SqlError('XXUUU', `backup from version ${v} is newer than current version ${current}`);
      if (min !== undefined && versionLess(v, min)) {
        throw new SqlError(
          'XXUUU',
          `backup from version ${v} is older than the minimum restorable version ${min}`,
          undefined,
          'refer to our documentation about restoring across versions: https://www.cockroachlabs.com/docs/stable/restoring-backups-across-versions.html',
        );
      }
    }
  }

  /**
   * backupinfo.ValidateEndTimeAndTruncate: the layer with start < t <= end covers t; t other than its
   * end needs revision_history; no layer covers t: `invalid RESTORE timestamp: supplied backups do
   * not cover requested time`. The chain is cut after that layer.
   */
  private truncate(layers: Layer[], t: bigint | undefined): Layer[] {
    if (t === undefined) return layers;
    for (let i = 0; i < layers.length; i++) {
      const m = layers[i]!.manifest;
      const start = BigInt(m.startMicros);
      const end = BigInt(m.endMicros);
      if (!(start < t && t <= end)) continue;
      if (t !== end && !m.revisionHistory) {
        const prefix =
          "invalid RESTORE timestamp: restoring to arbitrary time requires that BACKUP for requested time be created with 'revision_history' option.";
        throw new SqlError(
          'XXUUU',
          i === 0
            ? `${prefix} nearest backup time is ${goTime(end)}`
            : `${prefix} nearest BACKUP times are ${goTime(BigInt(layers[i - 1]!.manifest.endMicros))} or ${goTime(end)}`,
        );
      }
      return layers.slice(0, i + 1);
    }
    throw new SqlError('XXUUU', 'invalid RESTORE timestamp: supplied backups do not cover requested time');
  }

  /**
   * restoreJobDescription: targets qualified, the resolved subdirectory, the collection sanitized,
   * the AOST as written, and the options in tree.RestoreOptions' order with the passphrase as
   * '*****' (`WITH OPTIONS (…)` from 23.2, as for BACKUP).
   */
  private describe(
    databases: string[],
    subdir: string,
    uri: string,
    aostToken: string | undefined,
    o: RestoreOptions,
  ): string {
    const opts: string[] = [];
    if (o.passphrase !== undefined) opts.push("encryption_passphrase = '*****'");
    if (o.kms !== undefined) opts.push(`kms = ${quoteLiteral(sanitizeUri(o.kms))}`);
    for (const k of o.skip) opts.push(k);
    if (o.detached) opts.push('detached');
    if (o.newDbName !== undefined) opts.push(`new_db_name = ${quoteLiteral(o.newDbName)}`);
    if (o.schemaOnly) opts.push('schema_only');
    if (o.verifyData) opts.push('verify_backup_table_data');
    const withClause =
      opts.length === 0
        ? ''
        : this.e.profile.optionsInParens
          ? ` WITH OPTIONS (${opts.join(', ')})`
          : ` WITH ${opts.join(', ')}`;
    const aost = aostToken ? ` AS OF SYSTEM TIME ${aostToken}` : '';
    return `RESTORE DATABASE ${databases.map(formatIdent).join(', ')} FROM ${quoteLiteral(subdir)} IN ${quoteLiteral(sanitizeUri(uri))}${aost}${withClause}`;
  }

  /** Wait `ms` of the job's time; a cancel or pause is noticed within 50 ms, as the job's context would. */
  private async pause(job: Job, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end && !job.control.cancelled && !job.control.paused && !this.e.closed())
      await sleep(Math.min(50, end - Date.now()));
  }

  /**
   * The job: read every data file of each layer up to the chosen time (restore_data_processor.go
   * opens each SST from the bucket; with verify_backup_table_data the keys are read and checked, not
   * written), fail on the first missing or corrupt one, then create the databases with their tables
   * (no rows with schema_only). Until the end the new databases are OFFLINE (not listed, not droppable);
   * a failed or cancelled restore leaves none (OnFailOrCancel drops them). A database restore is owned
   * by the user running it, with ALL for root and admin (cockroach PR #79144, restore-grants tests), so
   * that user may drop it.
   */
  private async runJob(job: Job, store: JobStorage, p: RestorePlan): Promise<void> {
    await sleep(30);
    if (job.control.cancelled || this.e.closed()) return;
    job.started = BigInt(Date.now()) * 1000n;
    job.modified = job.started;
    const files = p.readData
      ? p.chain.flatMap((l) =>
          l.manifest.files.map((f) => ({ key: `${l.folder}/${f.path}`, checksum: f.checksum })),
        )
      : [];
    const stepMs = this.e.jobDurationMs() / (files.length + 1);
    const clash = p.names.find((n) => this.e.catalog.taken(n));
    if (clash !== undefined) {
      this.e.finish(job, 'failed', `database "${clash}" already exists`);
      return;
    }
    for (const n of p.names) this.e.catalog.takeOffline(n);
    try {
      for (let i = 0; i < files.length; i++) {
        await this.e.gate(job);
        await this.pause(job, stepMs);
        await this.e.gate(job);
        const f = files[i]!;
        const body = await store.get(f.key);
        if (body === undefined) {
          // restore_data_processor.go wraps the open in "opening SSTs"; s3_storage.go openStreamAt
          // wraps the SDK's NoSuchKey (whose text names no key) as ErrFileDoesNotExist.
          throw new Error(
            `opening SSTs: NoSuchKey: The specified key does not exist.\n\tstatus code: 404, request id: ${requestId()}, host id: ${requestId()}: s3 object does not exist: ${FILE_DOES_NOT_EXIST}`,
          );
        }
        // A backup from before checksums were recorded (seeded collections) is read, not compared.
        if (f.checksum !== undefined && sha256(body) !== f.checksum) {
          // processRestoreSpanEntry: errors.Join(backupFileReadError, err) under "processing restore
          // span entry"; pebble's block checksum error names the table by its file number.
          const fileNum = /(\d+)\.sst$/.exec(f.key)?.[1] ?? '0';
          throw new Error(
            `processing restore span entry: error reading backup file\npebble/table: invalid table ${fileNum.padStart(6, '0')} (checksum mismatch at 0/${body.length})`,
          );
        }
        const fraction = (i + 1) / (files.length + 1);
        // fraction_completed moves in steps of at least 5 %, as for backups.
        if (fraction - job.fraction >= 0.05) {
          job.fraction = Math.round(fraction * 100) / 100;
          job.modified = BigInt(Date.now()) * 1000n;
        }
      }
      await this.e.gate(job);
      await this.pause(job, stepMs);
      await this.e.gate(job);
      for (let i = 0; i < p.names.length; i++) {
        const name = p.names[i]!;
        this.e.catalog.releaseOffline(name);
        const tables: ManifestTable[] = p.targets[i]!.tables.map((t) => ({
          ...t,
          rows: p.keepRows ? t.rows : 0,
        }));
        this.e.catalog.create(name, p.user, tables);
      }
      job.fraction = 1;
      this.e.finish(job, 'succeeded', '');
    } catch (err) {
      if (!job.control.cancelled) this.e.finish(job, 'failed', (err as Error).message);
      // The OFFLINE databases go once the job has reverted (a cancel passes through reverting).
      for (let i = 0; i < 600 && !TERMINAL.has(job.status) && !this.e.closed(); i++) await sleep(25);
      for (const n of p.names) this.e.catalog.releaseOffline(n);
    }
  }
}

const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'revert-failed']);

interface RestorePlan {
  chain: Layer[];
  targets: ManifestDatabase[];
  names: string[];
  readData: boolean;
  keepRows: boolean;
  user: string;
}

/** The databases a layer holds: its recorded catalog, or (older manifests) its named databases. */
export function backedUpDatabases(m: Manifest, e: EngineInternals): ManifestDatabase[] {
  if (m.catalog) return m.catalog;
  const names = m.databases.length > 0 ? m.databases : [...e.databases].filter((d) => d !== 'system');
  return names.map((name) => ({ name, tables: [] }));
}

/**
 * The oldest cluster version each release runs with (and so restores from): the previous release,
 * or for a release after an innovation release the one before it (24.3 from 24.1, 25.2 from 24.3;
 * pkg/clusterversion cockroach_versions.go MinSupported, docs "Restoring backups across versions").
 */
const MIN_SUPPORTED: Record<string, string> = {
  '22.2': '22.1',
  '23.1': '22.2',
  '23.2': '23.1',
  '24.1': '23.2',
  '24.3': '24.1',
  '25.2': '24.3',
};

function versionLess(a: string, b: string): boolean {
  const [am, an] = a.split('.').map(Number) as [number, number];
  const [bm, bn] = b.split('.').map(Number) as [number, number];
  return am < bm || (am === bm && an < bn);
}

/** Go's time.Time String() in UTC: `2006-01-02 15:04:05.999999 +0000 UTC`. */
function goTime(micros: bigint): string {
  const text = formatTs(micros, false);
  return `${text} +0000 UTC`;
}

/** An S3 request id as the SDK prints it (16 hex digits). */
function requestId(): string {
  return Array.from({ length: 16 }, () => '0123456789ABCDEF'[Math.floor(Math.random() * 16)]).join('');
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SqlError) throw err;
    throw new SqlError('XXUUU', (err as Error).message);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
