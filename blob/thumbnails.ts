// Small JPEG previews of images, so chat lists show a picture without downloading the original.
// sharp is loaded lazily: where its prebuilt binary cannot load, attachments work without thumbnails.
import type { Sharp, SharpOptions } from 'sharp';

/** Raster formats sharp's prebuilt binary reads; SVG is left out (a renderer, not a decoder). */
const THUMBNAIL_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/avif', 'image/tiff']);
export const THUMBNAIL_MIME = 'image/jpeg';
const BOX = 320;
/** Refuses decompression bombs: about an 8000×6000 photo. */
const MAX_PIXELS = 50_000_000;

type SharpFactory = (input: Buffer, options?: SharpOptions) => Sharp;
let loading: Promise<SharpFactory | null> | null = null;

function loadSharp(): Promise<SharpFactory | null> {
  loading ??= import('sharp').then(
    (m) => (m.default as unknown as SharpFactory) ?? null,
    () => null,
  );
  return loading;
}

export const canThumbnail = (mime: string): boolean => THUMBNAIL_TYPES.has(mime);

/** Whether this process can make thumbnails at all (for the start-up log). */
export async function thumbnailsAvailable(): Promise<boolean> {
  return (await loadSharp()) !== null;
}

/** A JPEG at most 320×320, upright, without metadata; null when sharp is not available. Throws on a bad image. */
export async function makeThumbnail(image: Buffer): Promise<Buffer | null> {
  const sharp = await loadSharp();
  if (!sharp) return null;
  return sharp(image, { limitInputPixels: MAX_PIXELS, failOn: 'error' })
    .autoOrient()
    .resize(BOX, BOX, { fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#ffffff' })
    .jpeg({ quality: 70, mozjpeg: true })
    .toBuffer();
}
