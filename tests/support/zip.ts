/**
 * The zip writer for tests (bench/xdm-zip.ts, shared with the mail benchmark) and what only the
 * tests need: a deflate stream of zeros for bombs.
 */
import { crc32, deflateRawSync, constants } from 'node:zlib';

export { buildZip, type ZipEntryInput } from '../../bench/xdm-zip.js';

/**
 * The raw deflate stream of `megabytes` MB of zeros, built without ever holding them: one MB is
 * compressed with a full flush (the compressor's state is reset, so the block is self-contained and
 * the same every time), repeated, then closed by an empty final block. About 1 KB per MB.
 */
export function deflatedZeros(megabytes: number): { deflated: Buffer; crc: number; size: number } {
  const mb = Buffer.alloc(1024 * 1024);
  const block = deflateRawSync(mb, { finishFlush: constants.Z_FULL_FLUSH });
  const parts: Buffer[] = [];
  let crc = 0;
  for (let i = 0; i < megabytes; i++) {
    parts.push(block);
    crc = crc32(mb, crc);
  }
  // An empty final block with fixed Huffman codes: BFINAL=1, BTYPE=01, then end-of-block (code 256 = 7 zero bits).
  parts.push(Buffer.from([0x03, 0x00]));
  return { deflated: Buffer.concat(parts), crc, size: megabytes * 1024 * 1024 };
}
