/**
 * S/MIME on the message path (RFC 8551), with Node's native crypto and our own CMS reader.
 * The only module the rest of the gateway imports from this folder.
 */
export { decryptEnveloped, type Identity } from './decrypt.js';
export { verifySigned, type VerificationResult, type VerifiedSigner, type VerifyExpectation } from './verify.js';
export { TrustStore, type CrlEvent, type TrustOptions } from './trust.js';
export { signDetached, SIGN_MICALG } from './sign.js';
export { encryptEnveloped, type ContentEncryption, type EncryptOptions, type KeyTransportScheme } from './encrypt.js';
