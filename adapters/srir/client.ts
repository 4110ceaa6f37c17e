/**
 * The SRIR over HTTP: IHE PIXm ITI-83 and PDQm ITI-78 (FHIR R4, JSON) with node:http(s) and a
 * keep-alive agent (fetch cost about 130 µs more CPU per request, measured: two requests per
 * message on the mail path).
 *
 * - Every request asks for `application/fhir+json` and has its own timeout, which also bounds the
 *   reading of the body; answers above `maxResponseBytes` are refused.
 * - Network failures, timeouts, 429 and 5xx are retried a few times with exponential backoff and
 *   jitter (the pipeline retries the whole stage later anyway, so attempts stay few and bounded);
 *   then PasserelleError('SRIR_UNAVAILABLE'). Other 4xx are not retried.
 * - 404 carrying an OperationOutcome means "not found" (ITI-83 §2:3.83.4.2.2.2 unknown identifier;
 *   ITI-78 §2:3.78.4.1.3 Case 4 unknown domain, §2:3.78.4.3.3 Case 2 unknown resource). A 404
 *   without one (a wrong base URL, a proxy page) is not an answer of the SRIR: SRIR_UNAVAILABLE.
 * - PIXm 400 with issue code `code-invalid` is "sourceIdentifier Assigning Authority not found"
 *   (ITI-83 §2:3.83.4.2.2.3): the SRIR manages no identifier of that domain, so it cannot know
 *   this one; the result is empty, as for an unknown identifier. 403 (§2:3.83.4.2.2.4) means the
 *   configured targetSystem is not one of its domains: SRIR_UNAVAILABLE, naming the configuration.
 * - PDQm follows `next` links (FHIR http.html#paging) for at most `maxPages` pages, only to the
 *   origin of the base URL (a link elsewhere would carry our query, and any credentials, to
 *   another host). More pages than that is refused rather than answered in part: a partial list
 *   could hide a second candidate and turn an ambiguous identity into a false certain match.
 * Redirects are not followed (a 3xx is reported as such): the base URL must name the SRIR itself.
 * Error details name the transaction and the HTTP status or network error code, never the URL
 * (its query holds the INS or the traits).
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Bundle, OperationOutcome, Parameters, Patient } from '@medplum/fhirtypes';
import { PasserelleError } from '../../gateway/errors.js';
import { retryDelayMs } from '../../gateway/pipeline/backoff.js';
import type { IdentityServer, PdqQuery, PixResult } from './port.js';

export interface SrirClientOptions {
  /** The FHIR base of the SRIR, e.g. https://srir.example/fhir (a trailing slash is ignored). */
  baseUrl: string;
  /** Timeout of one HTTP request, body included (default 5000 ms). */
  timeoutMs?: number;
  /** Retries after the first attempt for network errors, 429 and 5xx (default 2, at most 5). */
  retries?: number;
  /** Base delay of the exponential backoff (default 200 ms; capped at 16 × base). */
  retryBaseMs?: number;
  /** PDQm pages followed at most (default 10). */
  maxPages?: number;
  /** Largest answer read (default 5 MiB). */
  maxResponseBytes?: number;
  /** Extra request headers, e.g. Authorization. */
  headers?: Readonly<Record<string, string>>;
}

const FHIR_JSON = 'application/fhir+json';
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

type Answer = { status: number; body: unknown };

class Retryable extends Error {}

export class SrirClient implements IdentityServer {
  private readonly base: URL;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly maxPages: number;
  private readonly maxResponseBytes: number;
  private readonly headers: Record<string, string>;
  /** Keeps connections open between requests (its idle sockets do not keep the process alive). */
  private readonly agent: HttpAgent;

  constructor(options: SrirClientOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl.replace(/\/+$/, ''));
    } catch {
      throw new PasserelleError('CONFIG_INVALID', 'srir.baseUrl is not an absolute URL.');
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new PasserelleError('CONFIG_INVALID', 'srir.baseUrl must be an http(s) URL.');
    this.base = base;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.retries = Math.min(5, Math.max(0, options.retries ?? 2));
    this.retryBaseMs = options.retryBaseMs ?? 200;
    this.maxPages = Math.max(1, options.maxPages ?? 10);
    this.maxResponseBytes = options.maxResponseBytes ?? 5 * 1024 * 1024;
    this.headers = { ...options.headers, accept: FHIR_JSON };
    this.agent = base.protocol === 'https:' ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  }

  async pix(sourceIdentifier: { system: string; value: string }, targetSystem?: string): Promise<PixResult> {
    const url = this.url('Patient/$ihe-pix');
    url.searchParams.set('sourceIdentifier', `${sourceIdentifier.system}|${sourceIdentifier.value}`);
    if (targetSystem) url.searchParams.set('targetSystem', targetSystem);
    const { status, body } = await this.get(url, 'PIXm');
    if (status === 404 && isOutcome(body)) return { targetIdentifiers: [], targetIds: [] };
    if (status === 400 && isOutcome(body) && body.issue.some((i) => i.code === 'code-invalid')) return { targetIdentifiers: [], targetIds: [] };
    if (status === 403) throw new PasserelleError('SRIR_UNAVAILABLE', 'SRIR PIXm: the configured targetSystem is not a domain of the SRIR (HTTP 403); check the regional identifier system.');
    expectOk(status, body, 'PIXm');
    if (!isResource<Parameters>(body, 'Parameters')) throw unexpected('PIXm', 'not a Parameters resource');
    const result: PixResult = { targetIdentifiers: [], targetIds: [] };
    for (const p of body.parameter ?? []) {
      if (p.name === 'targetIdentifier' && p.valueIdentifier) result.targetIdentifiers.push(p.valueIdentifier);
      else if (p.name === 'targetId') {
        const id = patientId(p.valueReference?.reference);
        if (!id) throw unexpected('PIXm', 'a targetId is not a Patient reference');
        result.targetIds.push(id);
      }
    }
    return result;
  }

  async pdq(query: PdqQuery): Promise<Patient[]> {
    let url: URL | undefined = this.url('Patient');
    for (const [name, value] of Object.entries(query) as [keyof PdqQuery, string | undefined][]) {
      if (value !== undefined && value !== '') url.searchParams.set(name, value);
    }
    const patients: Patient[] = [];
    const seen = new Set<string>();
    for (let page = 1; url; page++) {
      if (page > this.maxPages) throw new PasserelleError('SRIR_UNAVAILABLE', `SRIR PDQm: the answer has more than ${this.maxPages} pages; refused rather than read in part.`);
      const { status, body } = await this.get(url, 'PDQm');
      if (status === 404 && isOutcome(body)) return patients;
      expectOk(status, body, 'PDQm');
      if (!isResource<Bundle>(body, 'Bundle')) throw unexpected('PDQm', 'not a Bundle');
      for (const entry of body.entry ?? []) {
        const mode = entry.search?.mode;
        if (mode !== undefined && mode !== 'match') continue; // `include` and `outcome` entries are not results
        const r = entry.resource;
        if (r?.resourceType !== 'Patient') continue;
        const key = r.id ?? entry.fullUrl;
        if (key !== undefined && seen.has(key)) continue;
        if (key !== undefined) seen.add(key);
        patients.push(r);
      }
      url = this.nextPage(body);
    }
    return patients;
  }

  async read(id: string): Promise<Patient | undefined> {
    if (!FHIR_ID.test(id)) throw new PasserelleError('SRIR_UNAVAILABLE', 'SRIR read: the Patient id given by the SRIR is not a FHIR id.');
    const { status, body } = await this.get(this.url(`Patient/${id}`), 'read');
    if ((status === 404 || status === 410) && isOutcome(body)) return undefined;
    expectOk(status, body, 'read');
    if (!isResource<Patient>(body, 'Patient')) throw unexpected('read', 'not a Patient resource');
    return body;
  }

  private url(path: string): URL {
    const url = new URL(this.base.href);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/${path}`;
    return url;
  }

  private nextPage(bundle: Bundle): URL | undefined {
    const next = bundle.link?.find((l) => l.relation === 'next')?.url;
    if (!next) return undefined;
    let url: URL;
    try {
      url = new URL(next, this.base);
    } catch {
      throw unexpected('PDQm', 'the next link is not a URL');
    }
    if (url.origin !== this.base.origin) throw new PasserelleError('SRIR_UNAVAILABLE', 'SRIR PDQm: the next link leaves the SRIR origin; not followed.');
    return url;
  }

  /** One GET with retries; resolves with any non-retryable answer, JSON-parsed (undefined body when empty). */
  private async get(url: URL, what: string): Promise<Answer> {
    let last = '';
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(url, what);
      } catch (err) {
        if (!(err instanceof Retryable)) throw err;
        last = err.message;
      }
      if (attempt > this.retries) break;
      await delay(retryDelayMs(attempt, this.retryBaseMs, this.retryBaseMs * 16));
    }
    throw new PasserelleError('SRIR_UNAVAILABLE', `SRIR ${what}: ${last} (${this.retries + 1} attempt${this.retries ? 's' : ''}).`);
  }

  /** One GET: the status and the JSON body (undefined when empty); Retryable for the network, timeouts, 429 and 5xx. */
  private async once(url: URL, what: string): Promise<Answer> {
    const { status, bytes } = await this.exchange(url, what);
    if (bytes.length === 0) return { status, body: undefined };
    try {
      return { status, body: JSON.parse(bytes.toString('utf8')) as unknown };
    } catch {
      throw unexpected(what, `HTTP ${status} with a body that is not JSON`);
    }
  }

  private exchange(url: URL, what: string): Promise<{ status: number; bytes: Buffer }> {
    const max = this.maxResponseBytes;
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const tooLarge = (): void => {
        req.destroy();
        settle(() => reject(new PasserelleError('SRIR_UNAVAILABLE', `SRIR ${what}: the answer exceeds ${max} bytes.`)));
      };
      // Redirects are not followed: node:http never does, a 3xx is answered as such.
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { headers: this.headers, agent: this.agent }, (res) => {
        const status = res.statusCode ?? 0;
        if (status === 429 || status >= 500) {
          res.resume();
          settle(() => reject(new Retryable(`HTTP ${status}`)));
          return;
        }
        if (Number(res.headers['content-length']) > max) {
          tooLarge();
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > max) tooLarge();
          else chunks.push(chunk);
        });
        res.on('end', () => settle(() => resolve({ status, bytes: Buffer.concat(chunks) })));
        res.on('error', (err) => settle(() => reject(new Retryable(networkError(err)))));
      });
      const timer = setTimeout(() => {
        req.destroy();
        settle(() => reject(new Retryable(`no answer within ${this.timeoutMs} ms`)));
      }, this.timeoutMs);
      req.on('error', (err) => settle(() => reject(new Retryable(networkError(err)))));
      req.end();
    });
  }
}

/** The error's kind without its message (a message may quote the URL, hence patient data). */
function networkError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return `network error (${typeof code === 'string' ? code : err instanceof Error ? err.name : 'error'})`;
}

function expectOk(status: number, body: unknown, what: string): void {
  if (status >= 200 && status < 300) return;
  const issue = isOutcome(body) ? body.issue[0]?.code : undefined;
  throw new PasserelleError('SRIR_UNAVAILABLE', `SRIR ${what}: HTTP ${status}${issue ? ` (${issue})` : ''}.`);
}

const unexpected = (what: string, detail: string): PasserelleError => new PasserelleError('SRIR_UNAVAILABLE', `SRIR ${what}: unexpected answer: ${detail}.`);

function isResource<T extends { resourceType: string }>(body: unknown, type: T['resourceType']): body is T {
  return typeof body === 'object' && body !== null && (body as { resourceType?: unknown }).resourceType === type;
}

function isOutcome(body: unknown): body is OperationOutcome & { issue: NonNullable<OperationOutcome['issue']> } {
  return isResource<OperationOutcome>(body, 'OperationOutcome') && Array.isArray(body.issue);
}

/** `Patient/{id}`, absolute or relative, with or without `/_history/{v}`: the logical id. */
function patientId(reference: string | undefined): string | undefined {
  const m = reference ? /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/.exec(reference) : null;
  return m?.[1];
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
