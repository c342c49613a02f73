/**
 * The statements the engine hands on to their own modules: RESTORE (restore.ts), DROP DATABASE and
 * the database lists (catalog.ts), CHECK EXTERNAL CONNECTION / SHOW BACKUP CONNECTION (external-check.ts), the privilege views
 * (privilege-views.ts), SHOW BACKUP's table rows (backup-objects.ts), and COMMIT / ROLLBACK for jobs
 * created inside a transaction (transactions.ts). `dispatch` answers undefined for anything else.
 */
import { showBackupWithObjects } from './backup-objects.js';
import type { Session } from './engine-state.js';
import { ExternalCheck } from './external-check.js';
import type { EngineInternals } from './internals.js';
import { PrivilegeViews } from './privilege-views.js';
import type { QueryResult } from './protocol-types.js';
import { RestoreStatement } from './restore.js';
import { Transactions } from './transactions.js';

export class Statements {
  readonly txn: Transactions;
  readonly restore: RestoreStatement;
  readonly externalCheck: ExternalCheck;
  readonly privileges: PrivilegeViews;

  constructor(private readonly e: EngineInternals) {
    this.txn = new Transactions(e);
    this.restore = new RestoreStatement(e, (s, job, start) => this.txn.startJob(s, job, start));
    this.externalCheck = new ExternalCheck(e);
    this.privileges = new PrivilegeViews(e);
  }

  async dispatch(
    s: Session,
    sql: string,
    params: readonly (string | null)[],
    arrived: number,
  ): Promise<QueryResult | undefined> {
    // Observed, then answered by the engine as before.
    if (/^(COMMIT|END)$/i.test(sql)) this.txn.commit(s);
    else if (/^ROLLBACK$/i.test(sql)) this.txn.rollback(s);
    if (this.restore.matches(sql)) return this.restore.run(s, sql, params, arrived);
    if (/^DROP\s+DATABASE\s/i.test(sql)) {
      const safe = /^(on|true)$/i.test(s.vars.get('sql_safe_updates') ?? '');
      return this.e.catalog.dropDatabase(
        s.info.user,
        this.e.isAdmin(s.info.user),
        s.vars.get('database') ?? s.info.database,
        safe,
        sql,
        params,
      );
    }
    const listed = this.e.catalog.showDatabases(sql, params);
    if (listed) return listed;
    const checked = await this.externalCheck.run(s, sql, params);
    if (checked) return checked;
    const view = this.privileges.run(s, sql, params);
    if (view) return view;
    return showBackupWithObjects(this.e, s, sql, params);
  }
}
