/**
 * A real Dovecot IMAP server for one test (the IMAP poller is tested against it, never against a
 * fake). Everything lives in a temporary directory: configuration, passwd-file, maildirs, sockets,
 * state and log; the server runs in the foreground (`-F`) as a child of the test process and as the
 * current user, so root in CI and an ordinary user on a workstation both work.
 *
 * `.ci/run` installs the Debian package `dovecot-imapd` (which pulls `dovecot-core`). The
 * configuration below is Dovecot 2.3 syntax (Debian 12 "bookworm", the base of our images);
 * Dovecot 2.4 renamed most of these settings, so it is refused loudly rather than misread.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './loopback.js';

const run = promisify(execFile);

export const DOVECOT_BINARY = '/usr/sbin/dovecot';

export interface DovecotTls {
  /** PEM paths of the server certificate and key. */
  cert: string;
  key: string;
  /** When set, clients must present a certificate issued by this CA (PEM path). */
  clientCa?: string;
  /** TLS by STARTTLS on the cleartext port (RFC 9051 §6.2.1) instead of implicit TLS; no login before the upgrade. */
  starttls?: boolean;
}

export interface DovecotOptions {
  /** Reuse this port (to restart a server on the same address); a free one otherwise. */
  port?: number;
  /** Reuse this directory (same maildirs, same password); a new temporary one otherwise. */
  dir?: string;
  /** Implicit TLS on the listener (RFC 8314 §3.2), or STARTTLS (see DovecotTls), instead of cleartext. */
  tls?: DovecotTls;
  /**
   * Replaces the CAPABILITY list Dovecot advertises (`imap_capability`), to drive a client down
   * the paths it takes with a server that lacks an extension (e.g. no MOVE, RFC 6851).
   */
  capability?: string;
}

export interface Dovecot {
  port: number;
  user: string;
  password: string;
  /** The user's maildir (Maildir++: INBOX is the root, other folders are `.Name`). */
  maildir: string;
  /** The temporary directory holding everything (pass it back as `dir` to restart). */
  dir: string;
  stop(): Promise<void>;
}

const USER = 'passerelle';

/**
 * $1 = dovecot binary, $2 = configuration. The shell leads its own process group (spawned
 * detached) holding Dovecot and every process it forks; once stdin reaches end of file — stop()
 * closes it, and so does the kernel when the test process dies in any way (a killed vitest worker
 * runs no 'exit' handler) — the whole group is killed. stdin is kept as fd 3 because a
 * non-interactive shell gives background jobs /dev/null as stdin.
 */
const WRAPPER = 'exec 3<&0; "$1" -F -c "$2" & pid=$!; ( cat <&3 >/dev/null; kill -KILL 0 ) & wait "$pid"';

function missing(): Error {
  return new Error(
    `${DOVECOT_BINARY} not found: the IMAP tests need a real Dovecot. ` +
    'Install the Debian package dovecot-imapd (`apt-get install -y dovecot-imapd`, as .ci/run does).',
  );
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('dovecot: condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function checkVersion(): Promise<void> {
  const { stdout } = await run(DOVECOT_BINARY, ['--version']);
  const [major, minor] = stdout.trim().split(/[.\s]/).map(Number);
  if (major !== 2 || minor === undefined || minor > 3) {
    throw new Error(`tests/support/dovecot.ts writes a Dovecot 2.3 configuration; ${DOVECOT_BINARY} is ${stdout.trim()}`);
  }
}

interface Accounts { root: boolean; internalUser: string; internalGroup: string; loginUser: string; mailUid: number; mailGid: number }

/**
 * Who runs the services. As an ordinary user, everything runs as that user. As root (CI), Dovecot
 * refuses root for the pre-login processes ("This process must not be run as root") and for the
 * mail processes ("userdb returned 0 as uid"), so they use the unprivileged accounts the Debian
 * package creates: `dovenull` for logins, `dovecot` for the internal services and the mail.
 */
async function accounts(): Promise<Accounts> {
  const me = userInfo();
  if (me.uid !== 0) {
    // The group of the internal sockets too, which a non-root master cannot chown to `dovecot`.
    const group = (await run('id', ['-gn'])).stdout.trim();
    return { root: false, internalUser: me.username, internalGroup: group, loginUser: me.username, mailUid: me.uid, mailGid: me.gid };
  }
  const entry = async (account: string): Promise<string[]> => {
    try {
      return (await run('getent', ['passwd', account])).stdout.trim().split(':');
    } catch {
      throw new Error(`running as root, Dovecot needs the system account ${account}, which the Debian package dovecot-core creates`);
    }
  };
  await entry('dovenull');
  const dovecot = await entry('dovecot');
  return { root: true, internalUser: 'dovecot', internalGroup: 'dovecot', loginUser: 'dovenull', mailUid: Number(dovecot[2]), mailGid: Number(dovecot[3]) };
}

function config(dir: string, port: number, options: DovecotOptions, who: Accounts): string {
  const tls = options.tls;
  return [
    'protocols = imap',
    'listen = 127.0.0.1',
    `base_dir = ${join(dir, 'run')}`,
    `state_dir = ${join(dir, 'state')}`,
    `log_path = ${join(dir, 'dovecot.log')}`,
    `info_log_path = ${join(dir, 'dovecot.log')}`,
    `default_internal_user = ${who.internalUser}`,
    `default_internal_group = ${who.internalGroup}`,
    `default_login_user = ${who.loginUser}`,
    'first_valid_uid = 0',
    'first_valid_gid = 0',
    // Cleartext LOGIN on loopback only (the TLS variants below are what production looks like);
    // with STARTTLS, none before the upgrade.
    `disable_plaintext_auth = ${tls?.starttls ? 'yes' : 'no'}`,
    'auth_mechanisms = plain login',
    `passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u ${join(dir, 'passwd')}\n}`,
    `userdb {\n  driver = static\n  args = uid=${who.mailUid} gid=${who.mailGid} home=${join(dir, 'home', '%u')}\n}`,
    `mail_location = maildir:${join(dir, 'mail', '%u')}`,
    // Folders the tests create must be usable at once.
    'namespace inbox {\n  inbox = yes\n  separator = /\n}',
    // Tests open many sessions as one user from one address (the default allows 10).
    `protocol imap {\n  mail_max_userip_connections = 200\n${options.capability ? `  imap_capability = ${options.capability}\n` : ''}}`,
    ...(tls
      ? [
          'ssl = required',
          `ssl_cert = <${tls.cert}`,
          `ssl_key = <${tls.key}`,
          'ssl_min_protocol = TLSv1.2',
          ...(tls.clientCa
            // The test CA publishes no CRL; Dovecot 2.3 requires one by default (ssl_require_crl).
            ? [`ssl_ca = <${tls.clientCa}`, 'ssl_verify_client_cert = yes', 'auth_ssl_require_client_cert = yes', 'ssl_require_crl = no']
            : []),
        ]
      : ['ssl = no']),
    // Only root may chroot (the login and anvil processes do by default).
    ...(who.root ? [] : ['service anvil {\n  chroot =\n}']),
    `service imap-login {\n${who.root ? '' : '  chroot =\n'}` +
      (tls && !tls.starttls
        ? `  inet_listener imap {\n    port = 0\n  }\n  inet_listener imaps {\n    port = ${port}\n    ssl = yes\n  }\n}`
        : `  inet_listener imap {\n    port = ${port}\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}`),
    // Not needed, and their default sockets or ports could collide with a system instance.
    'service stats {\n  unix_listener stats-reader {\n    mode = 0600\n  }\n  unix_listener stats-writer {\n    mode = 0600\n  }\n}',
    '',
  ].join('\n');
}

/** Starts Dovecot and resolves once its IMAP port accepts connections. */
export async function startDovecot(options: DovecotOptions = {}): Promise<Dovecot> {
  if (!existsSync(DOVECOT_BINARY)) throw missing();
  await checkVersion();
  const who = await accounts();
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'passerelle-dovecot-')));
  // Traversable (not listable) so that the unprivileged login and auth processes reach their
  // sockets under run/ and the passwd-file; the maildirs stay private.
  await chmod(dir, 0o711);
  for (const sub of ['run', 'state', 'home', 'mail']) await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
  // The mail processes write the maildirs and the home as the mail user.
  for (const sub of ['home', 'mail']) await chown(join(dir, sub), who.mailUid, who.mailGid);
  const passwdFile = join(dir, 'passwd');
  let password: string;
  if (existsSync(passwdFile)) {
    password = (await readFile(passwdFile, 'utf8')).split(':')[1]?.replace(/^\{PLAIN\}/, '') ?? '';
  } else {
    password = randomBytes(12).toString('hex');
    // Readable by the auth process (the `dovecot` account under root): a throwaway test password.
    await writeFile(passwdFile, `${USER}:{PLAIN}${password}::::::\n`, { mode: 0o644 });
  }
  // A killed master leaves its pid file, and its pid may live on as a zombie where PID 1 reaps
  // nothing (a container without init): Dovecot would think itself "already running".
  await rm(join(dir, 'run', 'master.pid'), { force: true });
  const port = options.port ?? (await freePort());
  const confFile = join(dir, 'dovecot.conf');
  await writeFile(confFile, config(dir, port, options, who));

  // Through a tiny shell that stops Dovecot when its stdin closes: stop() closes it, and so does
  // the kernel when the test process dies in any way (a killed vitest worker runs no 'exit'
  // handler), so no server is left behind holding the port.
  const child: ChildProcess = spawn('/bin/sh', ['-c', WRAPPER, 'dovecot-wrapper', DOVECOT_BINARY, confFile], {
    stdio: ['pipe', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  child.once('error', () => undefined);

  const log = async (): Promise<string> => `${stderr}${await readFile(join(dir, 'dovecot.log'), 'utf8').catch(() => '')}`;
  const deadline = Date.now() + 15_000;
  while (!(await canConnect(port))) {
    if (exited) throw new Error(`dovecot exited during start:\n${await log()}`);
    if (Date.now() > deadline) {
      child.stdin?.end();
      throw new Error(`dovecot did not listen on 127.0.0.1:${port} within 15 s:\n${await log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    port,
    user: USER,
    password,
    maildir: join(dir, 'mail', USER),
    dir,
    /**
     * Kills every Dovecot process at once: a SIGTERM to the master alone leaves the running imap
     * sessions (and the log process) alive, and a server that "goes away" must take them along.
     * The kernel closes their sockets, so clients see the connection drop.
     */
    async stop(): Promise<void> {
      if (!exited) {
        child.stdin?.end();
        await exit;
      }
      await until(async () => !(await canConnect(port)), 5_000);
    },
  };
}

export interface TestPki {
  ca: string;
  server: { cert: string; key: string };
  client: { cert: string; key: string };
}

/**
 * A CA, a server certificate for 127.0.0.1 and a client certificate (clientAuth), made with the
 * openssl command line (a dependency of dovecot-core), for the TLS and client-certificate tests.
 */
export async function makeTestPki(dir: string): Promise<TestPki> {
  await mkdir(dir, { recursive: true });
  const p = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): Promise<unknown> => run('openssl', args);
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2',
    '-subj', '/CN=Passerelle IMAP test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const issue = async (name: string, subject: string, extensions: string): Promise<void> => {
    await writeFile(p(`${name}.ext`), extensions);
    await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', subject);
    await openssl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial',
      '-out', p(`${name}.pem`), '-days', '2', '-extfile', p(`${name}.ext`));
  };
  await issue('server', '/CN=localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await issue('client', '/CN=passerelle-imap-client', 'extendedKeyUsage=clientAuth\n');
  // Readable by the unprivileged Dovecot processes when the tests run as root.
  for (const f of ['ca.pem', 'server.pem', 'server.key']) await chmod(p(f), 0o644);
  return {
    ca: p('ca.pem'),
    server: { cert: p('server.pem'), key: p('server.key') },
    client: { cert: p('client.pem'), key: p('client.key') },
  };
}

/** Removes a server's directory once it is stopped for good. */
export async function removeDovecotDir(dovecot: Dovecot): Promise<void> {
  await rm(dovecot.dir, { recursive: true, force: true });
}
