// A streaming multipart/form-data reader (RFC 7578) for the embedded store's upload endpoint: fields are
// small, the file part streams through in chunks, so memory stays bounded whatever the upload's size.
// Written here because the project has no multipart dependency; it reads only what S3 POST forms send.

export class MultipartError extends Error {}

export interface PartHeaders {
  name: string;
  filename: string | null;
  contentType: string | null;
}

export type MultipartEvent =
  | { type: 'part'; headers: PartHeaders }
  | { type: 'data'; data: Buffer }
  | { type: 'partEnd' }
  | { type: 'end' };

const CRLF = Buffer.from('\r\n');
const HEADERS_END = Buffer.from('\r\n\r\n');
const MAX_HEADER_BYTES = 8 * 1024;
const MAX_PREAMBLE_BYTES = 64 * 1024;

/** The boundary of a `multipart/form-data; boundary=...` content type, or null. */
export function boundaryOf(contentType: string | undefined): string | null {
  if (!contentType || !/^multipart\/form-data\s*;/i.test(contentType)) return null;
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : null;
}

function parseHeaders(block: string): PartHeaders {
  let disposition = '';
  let contentType: string | null = null;
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MultipartError('malformed part header');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-disposition') disposition = value;
    else if (name === 'content-type') contentType = value;
  }
  if (!/^form-data\s*(;|$)/i.test(disposition)) throw new MultipartError('a part without Content-Disposition: form-data');
  const params = new Map<string, string>();
  for (const m of disposition.matchAll(/;\s*([A-Za-z0-9*_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g)) {
    params.set(m[1].toLowerCase(), m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]);
  }
  const name = params.get('name');
  if (name === undefined) throw new MultipartError('a part without a name');
  return { name, filename: params.get('filename') ?? null, contentType };
}

/** Feed it the body chunk by chunk; it returns what each chunk completed. Events reference the chunks. */
export class MultipartParser {
  private readonly delimiter: Buffer;
  // The leading CRLF lets a delimiter at the very start of the body match like every later one.
  private buf: Buffer = CRLF;
  private state: 'preamble' | 'afterDelimiter' | 'headers' | 'body' | 'done' = 'preamble';
  private preambleBytes = 0;

  constructor(boundary: string) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`);
  }

  get done(): boolean {
    return this.state === 'done';
  }

  push(chunk: Buffer): MultipartEvent[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: MultipartEvent[] = [];
    while (this.step(out));
    return out;
  }

  /** One transition; false when it needs more bytes. */
  private step(out: MultipartEvent[]): boolean {
    const buf = this.buf;
    switch (this.state) {
      case 'preamble': {
        const i = buf.indexOf(this.delimiter);
        if (i < 0) {
          this.preambleBytes += this.keepTail();
          if (this.preambleBytes > MAX_PREAMBLE_BYTES) throw new MultipartError('no multipart boundary found');
          return false;
        }
        this.buf = buf.subarray(i + this.delimiter.length);
        this.state = 'afterDelimiter';
        return true;
      }
      case 'afterDelimiter': {
        if (buf.length < 2) return false;
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          // `--boundary--`: whatever follows is epilogue.
          this.state = 'done';
          this.buf = Buffer.alloc(0);
          out.push({ type: 'end' });
          return false;
        }
        const nl = buf.indexOf(CRLF);
        if (nl < 0) {
          if (buf.length > 256) throw new MultipartError('malformed boundary line');
          return false;
        }
        if (!/^[ \t]*$/.test(buf.subarray(0, nl).toString('latin1'))) throw new MultipartError('malformed boundary line');
        this.buf = buf.subarray(nl + 2);
        this.state = 'headers';
        return true;
      }
      case 'headers': {
        if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) throw new MultipartError('a part without headers');
        const end = buf.indexOf(HEADERS_END);
        if (end < 0) {
          if (buf.length > MAX_HEADER_BYTES) throw new MultipartError('part headers too long');
          return false;
        }
        if (end > MAX_HEADER_BYTES) throw new MultipartError('part headers too long');
        out.push({ type: 'part', headers: parseHeaders(buf.subarray(0, end).toString('utf8')) });
        this.buf = buf.subarray(end + HEADERS_END.length);
        this.state = 'body';
        return true;
      }
      case 'body': {
        const i = buf.indexOf(this.delimiter);
        if (i < 0) {
          const keep = this.delimiter.length - 1;
          if (buf.length > keep) {
            out.push({ type: 'data', data: buf.subarray(0, buf.length - keep) });
            this.buf = buf.subarray(buf.length - keep);
          }
          return false;
        }
        if (i > 0) out.push({ type: 'data', data: buf.subarray(0, i) });
        out.push({ type: 'partEnd' });
        this.buf = buf.subarray(i + this.delimiter.length);
        this.state = 'afterDelimiter';
        return true;
      }
      case 'done':
        this.buf = Buffer.alloc(0);
        return false;
    }
  }

  /** Drops all but the bytes that could start a delimiter; returns how many were dropped. */
  private keepTail(): number {
    const keep = this.delimiter.length - 1;
    if (this.buf.length <= keep) return 0;
    const dropped = this.buf.length - keep;
    this.buf = this.buf.subarray(dropped);
    return dropped;
  }
}
