// The accept pipeline's steps for kind `attachment` (broker/accept.ts): check the key before anything is
// stored, and record the readers once the message is known not to be a resend. Typed by the fields they use,
// so they slot into `acceptSteps` as they are.
import { encodeEnvelope, type Envelope } from '../common/envelope.ts';
import type { AttachmentService } from './service.ts';

export interface AttachmentGate {
  attachments: Pick<AttachmentService, 'checkAttachment' | 'grant'>;
}

interface Accepting {
  message: Envelope;
  /** The envelope as stored and delivered; re-encoded when the check adds a thumbnail. */
  text: string;
  recipients: string[];
}

/** Refuses a key that is not the sender's upload of exactly this size and type; adds the thumbnail key. */
export function checkAttachment(a: Accepting, deps: AttachmentGate): void | Promise<void> {
  // Synchronous when there is nothing to check: a text message costs the pipeline no promise here.
  const attachment = a.message.kind === 'attachment' ? a.message.attachment : undefined;
  if (!attachment) return;
  return deps.attachments.checkAttachment(a.message.from, attachment).then((checked) => {
    a.message.attachment = checked;
    a.text = encodeEnvelope(a.message);
  });
}

/** Lets the message's recipients download the attachment; runs before the message is stored for them. */
export function grantAttachment(a: Accepting, deps: AttachmentGate): void | Promise<void> {
  const attachment = a.message.kind === 'attachment' ? a.message.attachment : undefined;
  if (!attachment) return;
  return deps.attachments.grant(attachment.key, a.recipients);
}
