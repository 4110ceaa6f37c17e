/**
 * The stages of a mail entry before its documents join the document stages (ARCHITECTURE.md):
 * **unwrap** removes the S/MIME layers — decrypt (RFC 8551 §3.3), verify the signature over the
 * exact received bytes (§3.5 multipart/signed, §3.4 opaque signed-data) — and applies the S/MIME
 * policy; **extract** finds the documents: IHE XDM zips (their METADATA.XML checked), bare CDA
 * attachments, also inside forwarded messages (DOMAIN.md §2).
 */
import { PasserelleError } from '../errors.js';
import { describeSecurity, findAttachments, headerValue, parseMessage, canonicalCrlf, type MimePart } from '../mail/mime.js';
import { readMssHeaders } from '../mail/mss-headers.js';
import { readXdm } from '../mail/xdm.js';
import { decryptEnveloped, verifySigned, type Identity, type TrustStore } from '../smime/index.js';
import type { EntryWork, Stage } from './stages.js';

export interface SmimePolicy {
  requireSignature: boolean;
  requireEncryption: boolean;
  /** Sender domains whose plain mail is accepted (the MSSanté trust space: TLS between operators). */
  plainDomains: readonly string[];
}

export interface MailSecurity {
  identity: Identity | undefined;
  trust: TrustStore | undefined;
  policy: SmimePolicy;
}

/** What unwrap leaves for extract. */
export interface MailWork extends EntryWork {
  mail?: { content: MimePart; from: string };
}

/** S/MIME layers are nested at most this deep (signed then encrypted then signed…). */
const MAX_LAYERS = 4;

/** The bare address of a From header (RFC 5322 §3.4: `name <addr>` or `addr`). */
function bareAddress(from: string | undefined): string {
  const m = /<([^<>\s]+@[^<>\s]+)>/.exec(from ?? '') ?? /([^\s<>,;"]+@[^\s<>,;"]+)/.exec(from ?? '');
  return (m?.[1] ?? '').toLowerCase();
}

export function unwrapStage(security: MailSecurity): Stage {
  return {
    name: 'unwrap',
    reached: 'unwrapped',
    run(work: MailWork) {
      const root = parseMessage(work.raw);
      const from = bareAddress(headerValue(root, 'from'));
      const receivedAt = new Date();
      let current = root;
      let encrypted = false;
      let signer: string | undefined;
      for (let layer = 0; layer < MAX_LAYERS; layer++) {
        const outer = describeSecurity(current).find((l) => !l.forwarded);
        if (!outer) break;
        if (outer.kind === 'pkcs7-mime' && outer.smimeType !== 'signed-data') {
          if (!security.identity) throw new PasserelleError('SMIME_NOT_RECIPIENT', 'the gateway has no S/MIME identity configured (smime.certificate, smime.privateKey)');
          current = parseMessage(decryptEnveloped(outer.part.content, security.identity));
          encrypted = true;
          continue;
        }
        if (!security.trust) throw new PasserelleError('SMIME_SIGNER_NOT_TRUSTED', 'no trust anchors are configured (smime.trustAnchors)');
        if (outer.kind === 'multipart-signed') {
          if (outer.problem || !outer.content || !outer.signature) throw new PasserelleError('SMIME_MALFORMED', outer.problem ?? 'multipart/signed without its two parts');
          const verdict = verifySigned({ der: outer.signature.content, detachedContent: canonicalCrlf(outer.content.raw) }, security.trust, { from, at: receivedAt });
          if (!verdict.ok) throw new PasserelleError(verdict.code, verdict.detail);
          signer = verdict.signer.email;
          current = outer.content;
        } else {
          const verdict = verifySigned({ der: outer.part.content }, security.trust, { from, at: receivedAt });
          if (!verdict.ok) throw new PasserelleError(verdict.code, verdict.detail);
          signer = verdict.signer.email;
          current = parseMessage(verdict.content);
        }
      }
      const domain = from.split('@')[1] ?? '';
      const plainAllowed = security.policy.plainDomains.some((d) => d.toLowerCase() === domain);
      if (!plainAllowed && security.policy.requireSignature && !signer) throw new PasserelleError('SMIME_POLICY_VIOLATION', 'the message is not signed');
      if (!plainAllowed && security.policy.requireEncryption && !encrypted) throw new PasserelleError('SMIME_POLICY_VIOLATION', 'the message is not encrypted');
      work.mail = { content: current, from };
      return Promise.resolve({ mail: { signed: signer !== undefined, encrypted, signer: signer ?? null, messageId: headerValue(root, 'message-id') ?? null } });
    },
  };
}

export const extractStage: Stage = {
  name: 'extract',
  reached: 'extracted',
  async run(work: MailWork) {
    if (!work.mail) throw new Error('stage run out of order: nothing unwrapped');
    const attachments = findAttachments(work.mail.content);
    work.documents = [];
    for (const attachment of attachments) {
      if (attachment.kind === 'cda') {
        work.documents.push({ raw: attachment.content, source: attachment.filename ?? attachment.part.path, info: {} });
      } else if (attachment.kind === 'xdm') {
        const xdm = await readXdm(attachment.content);
        for (const doc of xdm.documents) {
          if (!/xml/i.test(doc.mimeType ?? '') && !/\.xml$/i.test(doc.path)) continue; // renderings (PDF) travel inside their CDA
          if (doc.masked && !work.overrides.has('DOCUMENT_MASKED')) throw new PasserelleError('DOCUMENT_MASKED', `${doc.path} is masked from professionals (MASQUE_PS)`);
          const patient = doc.patientId ?? xdm.submissionSet.patientId;
          work.documents.push({ raw: doc.bytes, source: doc.path, info: {}, ...(patient?.root ? { expectedPatient: { root: patient.root, id: patient.id } } : {}) });
        }
      }
    }
    if (!work.documents.length) throw new PasserelleError('MIME_NO_DOCUMENT');
    const mss = readMssHeaders(work.mail.content);
    return { attachments: attachments.map((a) => ({ kind: a.kind, forwarded: a.forwarded })), documents: work.documents.map((d) => ({ source: d.source })), mss: { codeCda: mss.codeCda, ins: mss.ins ?? null } };
  },
};
