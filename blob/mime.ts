// Content types of attachments: one lowercase `type/subtype` without parameters, so what the client
// declares, what the store's policy binds and what the store reports compare as plain strings.
const TOKEN = "[a-z0-9][a-z0-9!#$&^_.+-]{0,62}";
const MIME = new RegExp(`^${TOKEN}/${TOKEN}$`);
const PATTERN = new RegExp(`^${TOKEN}/(\\*|${TOKEN})$`);

export const DEFAULT_ATTACHMENT_TYPES = 'image/*,video/mp4,audio/*,application/pdf,text/plain,application/zip';

export const isMime = (v: unknown): v is string => typeof v === 'string' && MIME.test(v);

/** Parses an allow-list like `image/*,application/pdf`; throws naming the bad entry. */
export function parseTypeList(text: string): string[] {
  const list = text
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (list.length === 0) throw new Error('the list of attachment types is empty');
  const bad = list.find((t) => !PATTERN.test(t));
  if (bad !== undefined) throw new Error(`'${bad}' is not a content type (type/subtype or type/*)`);
  return list;
}

export function typeAllowed(mime: string, allowed: readonly string[]): boolean {
  if (!isMime(mime)) return false;
  const major = mime.slice(0, mime.indexOf('/'));
  return allowed.some((t) => t === mime || t === `${major}/*`);
}
