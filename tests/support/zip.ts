/**
 * A small zip writer for tests (PKWARE APPNOTE 6.3: local file headers, central directory, end of
 * central directory), able to write what real tools refuse to: lying sizes, symbolic links,
 * encrypted flags, traversal names. Data is deflated with Node's zlib (raw deflate, method 8).
 */
import { crc32, deflateRawSync, constants } from 'node:zlib';

export interface ZipEntryInput {
  name: string;
  /** The entry's bytes (deflated unless `store`). */
  data?: Buffer;
  /** Already compressed data with its real CRC-32 and size (to write a bomb without holding it). */
  precompressed?: { deflated: Buffer; crc: number; size: number };
  store?: boolean;
  /** Overrides of what the headers declare. */
  declaredSize?: number;
  crc?: number;
  /** General purpose flags (bit 0 = encrypted). */
  flags?: number;
  /** "Version made by" host (3 = Unix, 0 = MS-DOS) and the external attributes. */
  host?: number;
  externalAttributes?: number;
}

/** Writes a zip archive. */
export function buildZip(entries: ZipEntryInput[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    let method = 8;
    let payload: Buffer;
    let crc: number;
    let size: number;
    if (e.precompressed) {
      payload = e.precompressed.deflated;
      crc = e.precompressed.crc;
      size = e.precompressed.size;
    } else {
      const data = e.data ?? Buffer.alloc(0);
      crc = crc32(data);
      size = data.length;
      if (e.store) {
        method = 0;
        payload = data;
      } else {
        payload = deflateRawSync(data);
      }
    }
    crc = e.crc ?? crc;
    const declared = e.declaredSize ?? size;
    const flags = (e.flags ?? 0) | 0x800; // bit 11: names in UTF-8
    const host = e.host ?? 3;
    const attrs = e.externalAttributes ?? (host === 3 ? (0o100644 << 16) >>> 0 : 0);

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(payload.length, 18);
    local.writeUInt32LE(declared, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, payload);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((host << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc >>> 0, 16);
    central.writeUInt32LE(payload.length, 20);
    central.writeUInt32LE(declared, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(attrs >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += 30 + name.length + payload.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

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
