/**
 * State of one conversion: the resources emitted so far (in Bundle order), deterministic ids, the
 * report, the deduplication index and the lookups the mappers share (narrative IDs, media).
 *
 * Determinism: every id is a UUID derived (SHA-256) from the document id, a per-patient salt and a
 * key naming what the resource is (the CDA place of its element, or the identity of a deduplicated
 * actor), so the same input always yields the same Bundle and two patients never share an id.
 */
import * as crypto from 'node:crypto';
import type { Reference, Resource } from '@medplum/fhirtypes';
import { Report } from './report.js';
import type { XElement, XNode } from './xml.js';

/** One-shot SHA-256 (crypto.hash, Node ≥ 20.12); a Hash object on earlier Node 20 releases. */
const sha256Hex: (data: string) => string = typeof crypto.hash === 'function'
  ? (data) => crypto.hash('sha256', data, 'hex')
  : (data) => crypto.createHash('sha256').update(data).digest('hex');

/**
 * A reference produced by the converter. `Reference<never>` is assignable to every `Reference<T>`
 * (the type parameter only types the optional embedded resource, which we never set).
 */
export type Ref = Reference<never>;

export interface KnownRole {
  fullUrl: string;
  org: string | undefined;
  codeKey: string;
}

export interface Emitted {
  fullUrl: string;
  resource: Resource;
}

/** The hex digit of a UUID variant-10 nibble, by its two low bits. */
const VARIANT_DIGITS = '89ab';

export class ConversionContext {
  readonly report = new Report();
  /** Resources in the order they will appear in the Bundle (Composition and Patient are placed first by the assembler). */
  readonly emitted: Emitted[] = [];
  /** Offset of the document's own effectiveTime (`+01:00`), used for times written without a zone. */
  documentZone: string | undefined;
  /** The Patient and Encounter every clinical resource points to. */
  patient: Ref | undefined;
  encounter: Ref | undefined;
  /** Binary references by the ID of the observationMedia they came from (for renderMultiMedia). */
  readonly media = new Map<string, { url: string; title?: string }>();

  /** Normalised names of deduplicated actors by `type|key`, to detect one identifier naming two people. */
  readonly actorNames = new Map<string, string>();
  /** PractitionerRoles made so far, by practitioner key, so that a mention adding nothing reuses one. */
  readonly actorRoles = new Map<string, KnownRole[]>();

  private readonly byKey = new Map<string, Emitted>();
  private readonly byUrl = new Map<string, Emitted>();
  private narrativeIds: Map<string, XElement> | undefined;
  /** What every id hashes first: document key and salt. */
  private readonly prefix: string;

  constructor(
    documentKey: string,
    patientSalt: string,
    /** The ClinicalDocument: its header says once what entries may leave out (a lab report's sampling, its date…). */
    readonly document: XElement,
  ) {
    this.prefix = `${documentKey}\u0000${patientSalt}`;
  }

  /**
   * A deterministic UUID for this document and patient: SHA-256 of document key, salt and key
   * parts, NUL-separated (the parts never hold a NUL, so the hash input is unambiguous). One-shot
   * `hash` of one string: a third of the cost of feeding a copied Hash part by part.
   */
  uuid(...key: string[]): string {
    const x = sha256Hex(key.length === 1 ? `${this.prefix}\u0000${key[0]}` : `${this.prefix}\u0000${key.join('\u0000')}`);
    // RFC 9562 §5.8 (version 8, custom): version nibble 8, variant bits 10.
    const variant = VARIANT_DIGITS[parseInt(x.charAt(16), 16) & 0x3] as string;
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-8${x.slice(13, 16)}-${variant}${x.slice(17, 20)}-${x.slice(20, 32)}`;
  }

  /** Emits a resource under a key; the key (with the type) determines its id. Returns its reference. */
  add<T extends Resource>(resource: T, key: string): Ref {
    const found = this.byKey.get(`${resource.resourceType}|${key}`);
    if (found) return { reference: found.fullUrl };
    const id = this.uuid(resource.resourceType, key);
    // The object itself is kept (not a copy) so that mappers may complete it after emitting it.
    resource.id = id;
    const entry: Emitted = { fullUrl: `urn:uuid:${id}`, resource };
    this.byKey.set(`${resource.resourceType}|${key}`, entry);
    this.byUrl.set(entry.fullUrl, entry);
    this.emitted.push(entry);
    return { reference: entry.fullUrl };
  }

  /** The resource a reference returned by add() points to (mappers complete resources they emitted earlier). */
  resolve(ref: Ref | undefined): Resource | undefined {
    return ref?.reference === undefined ? undefined : this.byUrl.get(ref.reference)?.resource;
  }

  /** The resource already emitted under this key, if any (deduplication of actors). */
  get(resourceType: string, key: string): Emitted | undefined {
    return this.byKey.get(`${resourceType}|${key}`);
  }

  /** Element with that narrative `ID` (for `reference value="#id"` in originalText and text). */
  byNarrativeId(id: string): XElement | undefined {
    if (!this.narrativeIds) {
      // For a duplicated ID the first element met wins, in this walk's order (last child first).
      const index = new Map<string, XElement>();
      const stack: XElement[] = [this.document];
      while (stack.length) {
        const el = stack.pop() as XElement;
        const v = el.attrs.ID;
        if (v !== undefined && !index.has(v)) index.set(v, el);
        const nodes = el.children;
        for (let i = 0; i < nodes.length; i++) {
          const c = nodes[i] as XNode;
          if (typeof c !== 'string') stack.push(c);
        }
      }
      this.narrativeIds = index;
    }
    return this.narrativeIds.get(id);
  }
}
