/** A throwaway PKI for TLS tests, made with the openssl CLI in a temp dir. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** A CA that signed nothing here, for "wrong CA" tests. */
  otherCaCert: string;
  clientCert(user: string): { cert: string; key: string };
  dir: string;
  cleanup(): void;
}

export function makeTestPki(opts: { serverNames?: string[] } = {}): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'crdb-pki-'));
  const ssl = (...args: string[]): void =>
    void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 30_000 });
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  const makeCa = (name: string): void =>
    ssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '3',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  const issue = (name: string, cn: string, ext: string): void => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      `/CN=${escapeSubjectValue(cn)}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '3',
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    );
  };
  makeCa('ca');
  makeCa('other');
  const names = opts.serverNames ?? ['localhost', '127.0.0.1'];
  const san = names.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  issue('server', names[0]!, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  return {
    caCert: read('ca.crt'),
    caKey: read('ca.key'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    otherCaCert: read('other.crt'),
    clientCert(user) {
      const name = `client-${user.replace(/[^a-z0-9_]/gi, '_')}`;
      issue(name, user, 'extendedKeyUsage=clientAuth\n');
      return { cert: read(`${name}.crt`), key: read(`${name}.key`) };
    },
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** openssl -subj splits on `/` and `+`; a user name may contain either. */
function escapeSubjectValue(value: string): string {
  return value.replace(/[\\/+=]/g, (c) => `\\${c}`);
}
