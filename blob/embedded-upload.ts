// One upload to the embedded store in progress: the form's fields, then the file streamed to a temporary
// file, with every policy condition checked before the first byte of the file is written.
import fsp from 'node:fs/promises';
import { badRequest, tooLarge } from '../common/errors.ts';
import type { EmbeddedBlobStore, SignedPolicy } from './blob-store-embedded.ts';
import { MultipartError, MultipartParser, type PartHeaders } from './multipart.ts';

const MAX_FIELD_BYTES = 16 * 1024;
const MAX_FIELDS = 32;

export class Upload {
  private readonly parser: MultipartParser;
  private readonly fields = new Map<string, string>();
  private part: PartHeaders | null = null;
  private field: Buffer[] = [];
  private fieldBytes = 0;
  private policy: SignedPolicy | null = null;
  private tmp: string | null = null;
  private file: fsp.FileHandle | null = null;
  private size = 0;
  private fileDone = false;

  constructor(
    private readonly store: EmbeddedBlobStore,
    boundary: string,
  ) {
    this.parser = new MultipartParser(boundary);
  }

  async feed(chunk: Buffer): Promise<void> {
    if (this.fileDone) return; // S3 ignores what follows the file
    let events;
    try {
      events = this.parser.push(chunk);
    } catch (err) {
      throw err instanceof MultipartError ? badRequest(err.message) : err;
    }
    for (const ev of events) {
      if (this.fileDone) return;
      if (ev.type === 'part') await this.startPart(ev.headers);
      else if (ev.type === 'data') await this.data(ev.data);
      else if (ev.type === 'partEnd') await this.endPart();
    }
  }

  private async startPart(headers: PartHeaders): Promise<void> {
    this.part = headers;
    if (headers.name !== 'file') {
      if (this.fields.size >= MAX_FIELDS) throw badRequest('too many form fields');
      return;
    }
    // Every condition is checked before the first byte of the file is stored.
    this.policy = this.store.checkPolicy(this.fields);
    this.tmp = this.store.tmpFile();
    this.file = await fsp.open(this.tmp, 'wx', 0o600);
  }

  private async data(data: Buffer): Promise<void> {
    if (!this.part) return;
    if (this.part.name !== 'file') {
      this.fieldBytes += data.length;
      if (this.fieldBytes > MAX_FIELD_BYTES) throw badRequest(`a form field exceeds ${MAX_FIELD_BYTES} bytes`);
      this.field.push(data);
      return;
    }
    this.size += data.length;
    if (this.size > this.policy!.max) throw tooLarge('the upload exceeds the maximum allowed size');
    await this.file!.write(data);
  }

  private async endPart(): Promise<void> {
    const part = this.part;
    this.part = null;
    if (!part) return;
    if (part.name !== 'file') {
      // Field names compare as S3 does: case-insensitively.
      this.fields.set(part.name.toLowerCase(), Buffer.concat(this.field).toString('utf8'));
      this.field = [];
      this.fieldBytes = 0;
      return;
    }
    if (this.size < this.policy!.min) throw badRequest('the upload is smaller than the minimum allowed size');
    if (this.store.syncWrites) await this.file!.sync();
    await this.file!.close();
    this.file = null;
    this.fileDone = true;
  }

  async finish(): Promise<void> {
    if (!this.fileDone || !this.policy || !this.tmp) throw badRequest('the form has no complete file part');
    await this.store.commit(this.tmp, this.policy, this.size);
    this.tmp = null;
  }

  /** Removes what a failed upload left. */
  async discard(): Promise<void> {
    await this.file?.close().catch(() => undefined);
    this.file = null;
    if (this.tmp) await fsp.rm(this.tmp, { force: true });
    this.tmp = null;
  }
}

