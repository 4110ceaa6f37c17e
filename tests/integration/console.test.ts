/**
 * The operator console in a real browser (Debian's Chromium, driven by playwright-core; `.ci/run`
 * installs it): an operator signs in with an admin token, filters the journal by state, opens a
 * quarantined mail, reads its code, the catalogue's message and the parsed `XDM/1.0/DDM+…`
 * subject, and replays it. Also the API the console reads (`GET /messages/{id}/mail`, the counts
 * of `GET /messages`) and what the page must never do (render a sender's text as HTML, accept a
 * non-admin token).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config.js';
import { silentLogger } from '../../gateway/log.js';
import { start, type RunningGateway } from '../../gateway/server.js';
import { withDocumentId } from '../support/cda-variants.js';
import { corpusDocument } from '../support/corpus.js';
import { settledEntry } from '../support/settled.js';

const CHROMIUM = '/usr/bin/chromium';
const ADMIN = 'console-admin-token-000000001';
const SENDER = 'console-sender-token-00000001';
const dir = mkdtempSync(join(tmpdir(), 'passerelle-console-'));
let gateway: RunningGateway;
let browser: Browser;

/** A plain mail from the trusted domain; `attachment` is a CDA sent as is, or none. */
function mail(subject: string, attachment?: Buffer): Buffer {
  const lines = [
    'From: secretariat@hopital.test', 'To: bal@passerelle.test', `Subject: ${subject}`, `Message-ID: <${Math.random().toString(36).slice(2)}@hopital.test>`,
    'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain; charset=utf-8', '', 'Bonjour.',
    ...(attachment
      ? ['--b', 'Content-Type: application/hl7-cda+xml; name="doc.xml"', 'Content-Disposition: attachment; filename="doc.xml"', 'Content-Transfer-Encoding: base64', '',
          attachment.toString('base64').replace(/.{76}/g, '$&\r\n')]
      : []),
    '--b--', '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

async function post(path: string, contentType: string, body: Buffer): Promise<string> {
  const res = await fetch(`${gateway.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${SENDER}`, 'content-type': contentType }, body });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

const settled = (id: string): Promise<{ state: string; errorCode?: string }> => settledEntry(gateway.url, id, ADMIN, 10_000);

const ids: Record<'noDocument' | 'delivered' | 'badIns' | 'hostileSubject', string> = { noDocument: '', delivered: '', badIns: '', hostileSubject: '' };

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: the console test needs Debian's chromium (apt-get install -y chromium, as .ci/run does)`);
  const config = loadConfig({
    env: {}, cwd: dir,
    overrides: {
      http: { port: 0, host: '127.0.0.1' }, smtp: { port: null }, pipeline: { pollMs: 20 },
      smime: { plainDomains: ['hopital.test'] },
      clients: [{ id: 'ops', token: ADMIN, role: 'admin' }, { id: 'mss', token: SENDER, role: 'sender' }],
    },
  });
  gateway = await start(config, silentLogger);
  ids.noDocument = await post('/messages', 'message/rfc822', mail('XDM/1.0/DDM+Lettre de liaison DUPONT Marie 03/05/1979'));
  ids.delivered = await post('/messages', 'message/rfc822', mail('XDM/1.0/DDM+Lettre de liaison MARTIN Paul 12/01/1950',
    Buffer.from(withDocumentId(corpusDocument('LDL-SES_2022.01.xml').toString('utf8'), 'console'))));
  ids.badIns = await post('/documents', 'application/hl7-cda+xml', corpusDocument('CSE-MDE_2023.01.xml'));
  ids.hostileSubject = await post('/messages', 'message/rfc822', mail('XDM/1.0/DDM+<img src=x onerror="document.title=1">CR DURAND Léa 01/02/2003'));
  for (const id of Object.values(ids)) await settled(id);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the API the console reads', () => {
  it('GET /messages/{id}/mail parses the mail header for admins only, the catalogue message beside the code', async () => {
    const asAdmin = await fetch(`${gateway.url}/messages/${ids.noDocument}/mail`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(asAdmin.status).toBe(200);
    expect(await asAdmin.json()).toMatchObject({
      id: ids.noDocument,
      error: { code: 'MIME_NO_DOCUMENT', releasable: false },
      header: {
        from: 'secretariat@hopital.test', to: 'bal@passerelle.test',
        xdm: { version: '1.0', labelAndName: 'Lettre de liaison DUPONT Marie', birthDate: '1979-05-03', guess: { family: 'DUPONT', given: 'Marie' } },
      },
    });
    // Patient traits are read from the original bytes, never copied into the journal.
    const entry = JSON.stringify(await (await fetch(`${gateway.url}/messages/${ids.noDocument}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json());
    expect(entry).not.toContain('DUPONT');

    const asSender = await fetch(`${gateway.url}/messages/${ids.noDocument}/mail`, { headers: { authorization: `Bearer ${SENDER}` } });
    expect(asSender.status).toBe(403);
    const document = await (await fetch(`${gateway.url}/messages/${ids.badIns}/mail`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
    expect(document).toMatchObject({ error: { code: 'INS_KEY_INVALID' }, header: null });
  });

  it('GET /messages counts entries per state', async () => {
    const body = (await (await fetch(`${gateway.url}/messages?limit=1`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { counts: Record<string, number>; entries: unknown[] };
    expect(body.entries).toHaveLength(1);
    expect(body.counts).toMatchObject({ delivered: 1, quarantined: 3 });
  });

  it('serves the page with a Content-Security-Policy that allows nothing but its own files', async () => {
    const res = await fetch(`${gateway.url}/console`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'/);
    expect(await res.text()).not.toContain(ADMIN);
  });
});

describe('the console in Chromium', () => {
  async function signIn(token: string): Promise<Page> {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    (page as Page & { problems: string[] }).problems = problems;
    page.setDefaultTimeout(10_000);
    await page.goto(`${gateway.url}/console`);
    await page.fill('#token', token);
    await page.click('#login-form button[type=submit]');
    return page;
  }
  const problemsOf = (page: Page): string[] => (page as Page & { problems: string[] }).problems;

  it('refuses an unknown token and a non-admin one', async () => {
    const unknown = await signIn('not-a-token');
    await unknown.waitForSelector('#login-error:has-text("Jeton refusé")');
    expect(await unknown.isVisible('#app')).toBe(false);
    const sender = await signIn(SENDER);
    await sender.waitForSelector('#login-error:has-text("administrateur")');
    expect(await sender.isVisible('#app')).toBe(false);
    await unknown.close();
    await sender.close();
  });

  it('lists entries by state, shows a quarantined mail with its code and parsed subject, and replays it', async () => {
    const page = await signIn(ADMIN);
    await page.waitForSelector(`#entries tr[data-id="${ids.delivered}"]`);
    expect(await page.locator('#entries tbody tr').count()).toBe(4);

    await page.click('#states button[data-state="quarantined"]');
    // Locators, not waitForFunction: a string predicate is evaluated in the page, and its CSP forbids eval.
    await expect.poll(() => page.locator('#entries tbody tr').count()).toBe(3);
    expect(await page.textContent('#states button[data-state="quarantined"]')).toBe('quarantined (3)');

    await page.click(`#entries tr[data-id="${ids.noDocument}"]`);
    await page.waitForSelector('#d-code:has-text("MIME_NO_DOCUMENT")');
    const mailView = await page.textContent('#d-mail');
    expect(mailView).toContain('Lettre de liaison DUPONT Marie');
    expect(mailView).toContain('1979-05-03');
    expect(mailView).toContain('secretariat@hopital.test');
    expect(await page.textContent('#d-message')).not.toBe('');
    expect(await page.isVisible('#release')).toBe(false); // MIME_NO_DOCUMENT cannot be overridden

    await page.fill('#reason', 'pièce jointe renvoyée par le secrétariat');
    await page.click('#replay');
    await page.waitForSelector('#action-result:has-text("Rejouée")');
    expect(await settled(ids.noDocument)).toMatchObject({ state: 'quarantined', errorCode: 'MIME_NO_DOCUMENT' });
    await page.click('#states button[data-state="quarantined"]'); // the list as it is now
    await page.click(`#entries tr[data-id="${ids.noDocument}"]`);
    await page.locator('#d-history tbody tr', { hasText: 'replay' }).filter({ hasText: 'ops' }).waitFor();
    expect(problemsOf(page)).toEqual([]);
    await page.close();
  });

  it('shows a sender\'s markup as text, never as HTML', async () => {
    const page = await signIn(ADMIN);
    await page.waitForSelector(`#entries tr[data-id="${ids.hostileSubject}"]`);
    await page.click(`#entries tr[data-id="${ids.hostileSubject}"]`);
    await page.waitForSelector('#d-mail dd');
    expect(await page.textContent('#d-mail')).toContain('<img src=x onerror=');
    expect(await page.locator('#d-mail img').count()).toBe(0);
    expect(await page.title()).toBe('passerelle — console');
    expect(problemsOf(page)).toEqual([]);
    await page.close();
  });

  it('downloads the original bytes', async () => {
    const page = await signIn(ADMIN);
    await page.waitForSelector(`#entries tr[data-id="${ids.delivered}"]`);
    await page.click(`#entries tr[data-id="${ids.delivered}"]`);
    await page.waitForSelector('#d-code', { state: 'hidden' });
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#raw')]);
    const path = await download.path();
    const raw = await gateway.journal.raw(ids.delivered);
    expect(readFileSync(path).equals(raw ?? Buffer.alloc(0))).toBe(true);
    await page.close();
  });
});
