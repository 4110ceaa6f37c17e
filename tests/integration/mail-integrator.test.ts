/**
 * The mail channel tried as an integrator would (issue "MSSanté mail channel", Done when): a gateway
 * process started with the integrator's own PKI — two tiers as IGC-Santé: a root as the only trust
 * anchor, an issuing CA that travels in each signature and publishes the CRL, the gateway's key and
 * certificate, all made here by `openssl` — messages built by `openssl cms` from document variants
 * the project's fixtures never hold (other ids, another patient living elsewhere), sent by swaks
 * (Debian) over SMTP with STARTTLS and a read-receipt request. Every valid message's documents end
 * stored and pullable by the PTA they are routed to; every hostile one is quarantined with its
 * code, its original bytes kept, and answered by an MDN at the relay; the gateway's memory stays
 * bounded, a 50 MB message included.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodedHeader, parseMessage } from '../../gateway/mail/mime.js';
import { insWithKey, withDocumentId, withPatient } from '../support/cda-variants.js';
import { corpusDocument } from '../support/corpus.js';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process.js';
import { testPki, yymmdd, type TestPki } from '../support/openssl-pki.js';
import { CapturingRelay } from '../support/relay.js';
import { settledEntry } from '../support/settled.js';
import { metadataXml, xdm, type DocSpec } from '../support/xdm.js';

const run = promisify(execFile);
const DAY = 86_400_000;
const YEAR = 365 * DAY;
const ADMIN = 'integrator-admin-token-0000001';
const PTA_PARIS = 'integrator-pta-paris-token-0001';
const PTA_LYON = 'integrator-pta-lyon-token-00001';
const MAILBOX = 'bal@passerelle.test';
/**
 * The gateway's peak RSS allowed over the whole file, a 50 MB message refused while it streams
 * included (≈ 270 MB seen; the directory index and schema validators are most of it). A coarse
 * bound: smtp-listener.test.ts measures the streaming refusal itself against a control.
 */
const MAX_RSS_MB = 384;

const root = testPki('passerelle-integrator-root-');
/** The issuing CA, its CRL and its certificates. */
const pki = testPki('passerelle-integrator-');
/** Another issuing CA under the same root, whose CRL is out of date when the gateway starts. */
const late = testPki('passerelle-integrator-late-');
const dir = mkdtempSync(join(tmpdir(), 'passerelle-integrator-'));
let gateway: GatewayProcess;
let smtpPort: number;

/** The integrator's relay, where the gateway sends its MDNs and DSNs. */
const relay = new CapturingRelay();

beforeAll(async () => {
  root.init({ name: 'Integrator Root CA' });
  pki.init({ name: 'Integrator Issuing CA', issuedBy: root });
  const now = Date.now();
  pki.leaf('gateway', { email: MAILBOX, keyUsage: 'digitalSignature, keyEncipherment' });
  pki.leaf('clinique', { email: 'secretariat@clinique.test' });
  pki.leaf('expired', { email: 'expired@clinique.test', notBefore: new Date(now - 3 * YEAR), notAfter: new Date(now - 2 * YEAR) });
  pki.leaf('future', { email: 'future@clinique.test', notBefore: new Date(now + YEAR), notAfter: new Date(now + 2 * YEAR) });
  pki.leaf('revoked', { email: 'revoked@clinique.test' });
  pki.openssl('ca', '-config', 'ca.cnf', '-revoke', 'revoked.pem', '-crl_reason', 'keyCompromise');
  pki.openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem');
  late.init({ name: 'Integrator Issuing CA 2', issuedBy: root, serial: '5000' });
  late.leaf('ehpad', { email: 'infirmerie@ehpad.test' });
  late.openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem',
    '-crl_lastupdate', yymmdd(new Date(now - 60 * DAY)), '-crl_nextupdate', yymmdd(new Date(now - 30 * DAY)));
  // A certificate of another authority, right in every other respect.
  pki.openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'stranger.key', '-out', 'stranger.pem', '-subj', '/CN=stranger', '-days', '30',
    '-addext', 'subjectAltName=email:stranger@clinique.test', '-addext', 'extendedKeyUsage=emailProtection', '-addext', 'keyUsage=critical,digitalSignature');

  const relayPort = await relay.listen();
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify({
    http: { port: 0, host: '127.0.0.1' },
    smtp: { port: 0, domains: ['passerelle.test'], relay: { host: '127.0.0.1', port: relayPort } },
    dataDir: join(dir, 'data'),
    smime: {
      certificate: pki.file('gateway.pem'), privateKey: pki.file('gateway.key'), trustAnchors: [root.file('ca.pem')], crls: [pki.file('crl.pem'), late.file('crl.pem')],
      requireSignature: true, requireEncryption: true,
    },
    pipeline: { pollMs: 50, retryBaseMs: 200, retryMaxMs: 1000 },
    clients: [
      { id: 'ops', token: ADMIN, role: 'admin' },
      { id: 'pta-paris', token: PTA_PARIS, role: 'pta', organization: '750990038' },
      { id: 'pta-lyon', token: PTA_LYON, role: 'pta', organization: '690990015' },
    ],
    log: { level: 'info' },
  }));
  gateway = await spawnGateway(configFile);
  for (let i = 0; i < 200 && smtpPort === undefined; i++) {
    const port = gateway.logs.find((l) => l.msg === 'smtp listening')?.port;
    if (typeof port === 'number') smtpPort = port;
    else await new Promise((r) => setTimeout(r, 25));
  }
}, 60_000);

afterAll(async () => {
  await gateway?.kill('SIGTERM');
  await relay.close();
  for (const p of [pki, late, root]) p.remove();
  rmSync(dir, { recursive: true, force: true });
});

// --- what the integrator builds ------------------------------------------------------------

interface Cipher {
  /** openssl cms -encrypt options: the content cipher, then the key transport of the recipient. */
  cipher: string;
  keyopt: string[];
  /** Signed-data detached (multipart/signed) or opaque (application/pkcs7-mime). */
  detached: boolean;
}
const OAEP = ['-keyopt', 'rsa_padding_mode:oaep'];
const CBC_V15: Cipher = { cipher: '-aes256', keyopt: [], detached: true };
const GCM_OAEP: Cipher = { cipher: '-aes-256-gcm', keyopt: OAEP, detached: true };
const OPAQUE_CBC_OAEP: Cipher = { cipher: '-aes-128-cbc', keyopt: OAEP, detached: false };

/** A multipart/mixed entity with the IHE_XDM.zip, CRLF line ends. */
function entity(zip: Buffer): Buffer {
  return Buffer.from([
    'Content-Type: multipart/mixed; boundary="integrator"', '', '--integrator', 'Content-Type: text/plain; charset=utf-8', '', 'Document(s) ci-joint(s).',
    '--integrator', 'Content-Type: application/zip; name="IHE_XDM.zip"', 'Content-Disposition: attachment; filename="IHE_XDM.zip"', 'Content-Transfer-Encoding: base64', '',
    zip.toString('base64').replace(/.{76}/g, '$&\r\n'), '--integrator--', '',
  ].join('\r\n'));
}

/** Signed by `signer` (its certificate and key in the PKI dir; the issuing CA's certificate included), then encrypted to the gateway, with the header of a read-receipt request. */
function message(signer: string, from: string, zip: Buffer, cipher: Cipher = CBC_V15, ca: TestPki = pki): Buffer {
  const chain = signer === 'stranger' ? [] : ['-certfile', 'ca.pem'];
  const signed = ca.openssl('cms', '-sign', '-crlfeol', ...(cipher.detached ? [] : ['-nodetach']), '-signer', `${signer}.pem`, '-inkey', `${signer}.key`, ...chain, '-in', ca.temp(entity(zip)));
  const encrypted = pki.openssl('cms', '-encrypt', '-crlfeol', cipher.cipher, '-recip', 'gateway.pem', ...cipher.keyopt, '-in', pki.temp(signed));
  const header = [
    `From: ${from}`, `To: ${MAILBOX}`, 'Subject: XDM/1.0/DDM', `Message-ID: <${randomBytes(8).toString('hex')}@clinique.test>`,
    `Date: ${new Date().toUTCString()}`, `Disposition-Notification-To: ${from}`, '',
  ].join('\r\n');
  // openssl ends the base64 lines with LF alone: CRLF throughout, as an MTA puts it on the wire (RFC 5321 §2.3.8).
  return Buffer.from(Buffer.concat([Buffer.from(header, 'latin1'), encrypted]).toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
}

const CDA = {
  ldl: corpusDocument('LDL-SES_2022.01.xml').toString('utf8'),
  bio: corpusDocument('BIO-CR-BIO_2024.01_TSH_1.xml').toString('utf8'),
  dlu: corpusDocument('DLU-EHPAD-FLUDT_2022.01.xml').toString('utf8'),
};
/** The corpus patient (Paris 7e), as XDS writes its INS. */
const PARIS_PATIENT = '279035121518989^^^&1.2.250.1.213.1.4.10&ISO';
/** A patient the fixtures do not know, living in Lyon 3e. */
const LYON_INS = insWithKey('1850369383012');
const LYON_PATIENT = `${LYON_INS}^^^&1.2.250.1.213.1.4.8&ISO`;

function zipOf(cda: string, patientId: string, typeCode: string, typeDisplay: string): Buffer {
  const doc: DocSpec = { id: 'Doc01', uri: 'DOC0001.XML', bytes: Buffer.from(cda, 'utf8'), patientId, typeCode, typeDisplay };
  return xdm([doc], { metadata: metadataXml([doc], { patientId, contentType: { code: typeCode, display: typeDisplay } }) });
}

// --- what the integrator runs and reads ----------------------------------------------------

/** swaks over STARTTLS; returns the journal id from the 250 after DATA, or the failing reply. */
async function send(raw: Buffer, from: string): Promise<{ id?: string; output: string }> {
  const file = pki.temp(raw);
  const args = ['--server', '127.0.0.1', '--port', String(smtpPort), '-tls', '--ehlo', 'mta.clinique.test', '--from', from, '--to', MAILBOX, '--data', `@${file}`, '--suppress-data'];
  let output: string;
  try {
    output = (await run('swaks', args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    output = String((err as { stdout?: string }).stdout ?? err);
  }
  const id = /<~\s+250 2\.0\.0 Ok: queued as ([0-9a-f-]{36})/.exec(output)?.[1];
  return id ? { id, output } : { output };
}

async function api<T>(path: string, token: string): Promise<T> {
  const res = await fetch(`${gateway.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

interface MessageView { id: string; state: string; errorCode?: string; bundles: string[] }

const settled = (id: string): Promise<MessageView> => settledEntry<MessageView>(gateway.url, id, ADMIN, 30_000);

/** The MDN relayed to `address`, opened: decrypted with the sender's key when it came encrypted. */
async function mdnFor(address: string, signer: string): Promise<{ subject: string | undefined; text: string }> {
  const [mail] = await relay.to(address);
  if (!mail) throw new Error(`no acknowledgement relayed to ${address}`);
  expect(mail.from).toBe(''); // RFC 8098 §3: an MDN has a null reverse-path
  const root = parseMessage(mail.raw);
  const subject = decodedHeader(root, 'subject');
  const encrypted = /^application\/(x-)?pkcs7-mime\b/i.test(decodedHeader(root, 'content-type') ?? '');
  const text = encrypted ? pki.openssl('cms', '-decrypt', '-recip', `${signer}.pem`, '-inkey', `${signer}.key`, '-in', pki.temp(mail.raw)).toString('utf8') : mail.text;
  return { subject, text };
}

function peakRssMB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Infinity;
}

describe('the mail channel, as an integrator tries it', () => {
  it('stores every valid message\'s document for the PTA it is routed to, and answers each with an MDN "processed"', async () => {
    const valid = [
      { key: 'ldl', from: 'secretariat@clinique.test', cipher: CBC_V15, pta: PTA_LYON,
        zip: zipOf(withPatient(withDocumentId(CDA.ldl, 'integrator-ldl'), { insBody: LYON_INS.slice(0, 13), family: 'VERNAY', birthTime: '19850312', postalCode: '69003', city: 'LYON' }), LYON_PATIENT, '11490-0', 'Lettre de liaison') },
      { key: 'bio', from: 'secretariat@clinique.test', cipher: GCM_OAEP, pta: PTA_PARIS,
        zip: zipOf(withDocumentId(CDA.bio, 'integrator-bio'), PARIS_PATIENT, '11502-2', 'CR d\'examens biologiques') },
      { key: 'dlu', from: 'secretariat@clinique.test', cipher: OPAQUE_CBC_OAEP, pta: PTA_PARIS,
        zip: zipOf(withDocumentId(CDA.dlu, 'integrator-dlu'), PARIS_PATIENT, '74207-2', 'Dossier de liaison d\'urgence') },
    ];
    const delivered: { id: string; bundle: string; pta: string }[] = [];
    for (const v of valid) {
      const sent = await send(message('clinique', v.from, v.zip, v.cipher), v.from);
      expect(sent.id, `${v.key}: ${sent.output}`).toBeDefined();
      const entry = await settled(sent.id as string);
      expect(entry, v.key).toMatchObject({ state: 'delivered' });
      expect(entry.bundles, v.key).toHaveLength(1);
      delivered.push({ id: entry.id, bundle: entry.bundles[0] as string, pta: v.pta });
    }

    // Each PTA pulls what is routed to it, and only that.
    for (const pta of [PTA_PARIS, PTA_LYON]) {
      const search = await api<{ total: number; entry?: { resource: { id: string } }[] }>('/fhir/Bundle?_count=100', pta);
      const mine = delivered.filter((d) => d.pta === pta).map((d) => d.bundle.replace(/^Bundle\//, ''));
      expect(search.entry?.map((e) => e.resource.id).sort()).toEqual(mine.sort());
    }

    // One MDN per message, to the sender: processed (RFC 8098 §3.2.6), signed by the gateway and encrypted to the sender's certificate.
    const mdns = await relay.to('secretariat@clinique.test', valid.length);
    expect(mdns).toHaveLength(valid.length);
    for (const mdn of mdns) {
      // From the mailbox the message was sent to, which the gateway's certificate names (its signer).
      expect(decodedHeader(parseMessage(mdn.raw), 'from')).toBe(MAILBOX);
      const text = pki.openssl('cms', '-decrypt', '-recip', 'clinique.pem', '-inkey', 'clinique.key', '-in', pki.temp(mdn.raw)).toString('utf8');
      expect(text).toContain(`Final-Recipient: rfc822;${MAILBOX}`);
      expect(text).toContain(`Reporting-UA: ${hostname()}; passerelle`); // RFC 8098 §3.2.1: ua-name; ua-product
      expect(text).toContain('multipart/signed');
      expect(text).toContain('MDN-sent-automatically; processed');
      expect(text).not.toContain('Error:');
    }
  }, 120_000);

  it('quarantines the message of each untrustworthy signer with its code, keeps its bytes, and answers with the ANS error', async () => {
    const zip = zipOf(withDocumentId(CDA.ldl, 'integrator-hostile'), PARIS_PATIENT, '11490-0', 'Lettre de liaison');
    const cases = [
      { signer: 'expired', code: 'SMIME_SIGNER_EXPIRED' },
      { signer: 'future', code: 'SMIME_SIGNER_EXPIRED' },
      { signer: 'revoked', code: 'SMIME_SIGNER_REVOKED' },
      { signer: 'stranger', code: 'SMIME_SIGNER_NOT_TRUSTED' },
    ];
    for (const { signer, code } of cases) {
      const from = `${signer}@clinique.test`;
      const raw = message(signer, from, zip);
      const sent = await send(raw, from);
      expect(sent.id, `${signer}: ${sent.output}`).toBeDefined();
      expect(await settled(sent.id as string), signer).toMatchObject({ state: 'quarantined', errorCode: code });

          // The original bytes, behind the Return-Path and Received fields the listener puts on top (RFC 5321 §4.4).
      const res = await fetch(`${gateway.url}/messages/${sent.id as string}/raw`, { headers: { authorization: `Bearer ${ADMIN}` } });
      const stored = Buffer.from(await res.arrayBuffer());
      const at = stored.indexOf(raw);
      expect(at, `${signer}: original bytes kept`).toBeGreaterThan(0);
      expect(stored.subarray(at + raw.length).toString('latin1'), signer).toMatch(/^(\r\n)?$/); // swaks ends DATA with its own CRLF

      // The MDN in the ANS format: 906 for a security failure (DOMAIN.md §2).
      const mdn = await mdnFor(from, signer);
      expect(mdn.subject, signer).toMatch(/^\[KO Intégration système !\]\[906\]/);
      expect(mdn.text, signer).toMatch(/MDN-sent-automatically; processed\/error/i);
      expect(mdn.text, signer).toMatch(/^Error: 906\^/m);
    }
  }, 120_000);

  it('keeps a message whose CRL is out of date waiting, and delivers it once a current CRL is in place', async () => {
    const zip = zipOf(withDocumentId(CDA.bio, 'integrator-late-crl'), PARIS_PATIENT, '11502-2', 'CR d\'examens biologiques');
    const from = 'infirmerie@ehpad.test';
    const sent = await send(message('ehpad', from, zip, CBC_V15, late), from);
    expect(sent.id, sent.output).toBeDefined();
    const id = sent.id as string;
    let view: (MessageView & { history: { outcome: string; errorCode?: string }[] }) | undefined;
    for (let i = 0; i < 200 && !view?.history.some((h) => h.outcome === 'retry'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      view = await api(`/messages/${id}`, ADMIN);
    }
    expect(view?.history.filter((h) => h.outcome === 'retry').map((h) => h.errorCode)).toContain('SMIME_CRL_OUT_OF_DATE');
    expect(['quarantined', 'failed', 'delivered']).not.toContain(view?.state);
    expect(gateway.logs.some((l) => String(l.msg).startsWith('CRL out of date') && l.file === late.file('crl.pem'))).toBe(true);

    // What monitoring sees: this file's nextUpdate in the past.
    const crlGauge = async (): Promise<number> => {
      const text = await (await fetch(`${gateway.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`passerelle_crl_next_update_timestamp_seconds{file="${late.file('crl.pem')}"}`));
      return Number(line?.split(' ').at(-1));
    };
    expect(await crlGauge()).toBeLessThan(Date.now() / 1000);

    // The operator's cron puts the new CRL in place: the next attempt reads it.
    late.openssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem');
    expect(await settled(id)).toMatchObject({ state: 'delivered' });
    expect(await crlGauge()).toBeGreaterThan(Date.now() / 1000);
    expect(gateway.logs.some((l) => l.msg === 'CRL file reloaded' && l.file === late.file('crl.pem'))).toBe(true);
  }, 120_000);

  it('refuses a 50 MB message with 552 while it streams, and the gateway stays within bounded memory', async () => {
    const big = Buffer.concat([
      Buffer.from(`From: secretariat@clinique.test\r\nTo: ${MAILBOX}\r\nSubject: XDM/1.0/DDM\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n`),
      Buffer.from(randomBytes(38 * 1024 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n')),
    ]);
    expect(big.length).toBeGreaterThan(50 * 1024 * 1024);
    const sent = await send(big, 'secretariat@clinique.test');
    expect(sent.id).toBeUndefined();
    expect(sent.output).toMatch(/<~\*\s+552\b/);
    const pid = gateway.child.pid ?? 0;
    expect(peakRssMB(pid)).toBeLessThan(MAX_RSS_MB);
    // Still serving.
    expect((await fetch(`${gateway.url}/health`)).status).toBe(200);
  }, 120_000);
});
