// Attachments through the whole messenger: upload with the returned form, send the key over MQTT, the
// recipient downloads the same bytes; a key that is not the sender's upload is refused with an error envelope.
import assert from './helpers/assert.ts';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { getBytes, postForm } from './contracts/blob-store.ts';
import { connectDevice, PASSWORD, registerUser, startTestParley, type Backend, type TestParley } from './helpers/parley.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

for (const backend of ['embedded', 'real'] as Backend[]) {
  describe(`attachments over MQTT, ${backend === 'real' ? 'MinIO' : 'embedded'} store`, () => {
    let p: TestParley;
    const origin = () => `http://127.0.0.1:${p.running.httpPort}`;
    before(async () => {
      p = await startTestParley(backend, {}, { s3: backend === 'real' });
    });
    after(async () => p.stop());

    it('delivers the key; the recipient downloads the same bytes and a stranger gets 404', async () => {
      const [ann, ben, eve] = [await registerUser(p), await registerUser(p), await registerUser(p)];
      const token = async (u: string) => (await p.http('/v1/auth/login', { body: { username: u, password: PASSWORD } })).body.token;
      const [annT, benT, eveT] = [await token(ann), await token(ben), await token(eve)];
      const bytes = randomBytes(300_000);
      const ticket = await p.http('/v1/attachments', { token: annT, body: { name: 'notes.pdf', mime: 'application/pdf', size: bytes.length } });
      assert.equal(ticket.status, 201);
      const stored = await postForm(origin(), ticket.body.upload, bytes);
      assert.ok(stored.status >= 200 && stored.status < 300, `upload answered ${stored.status}`);

      const a = await connectDevice(p, 'tcp', ann);
      const b = await connectDevice(p, 'ws', ben);
      const attachment = { key: ticket.body.key, name: 'notes.pdf', mime: 'application/pdf', size: bytes.length };
      const ack = await a.sendAndAck(ben, { kind: 'attachment', body: 'the notes', attachment });
      assert.equal(ack.kind, 'ack', JSON.stringify(ack));
      const [m] = await b.waitForInbox(1);
      assert.deepEqual(m.attachment, attachment);

      const res = await fetch(`${origin()}/v1/attachments/${ticket.body.key}`, { headers: { authorization: `Bearer ${benT}` }, redirect: 'manual' });
      assert.equal(res.status, 302);
      const download = await getBytes(origin(), res.headers.get('location')!);
      assert.equal(download.status, 200);
      assert.equal(sha256(download.body), sha256(bytes));
      const stranger = await fetch(`${origin()}/v1/attachments/${ticket.body.key}`, { headers: { authorization: `Bearer ${eveT}` }, redirect: 'manual' });
      assert.equal(stranger.status, 404);

      // Eve cannot send Ann's key, nor a key never uploaded, nor lie about the size.
      const e = await connectDevice(p, 'tcp', eve);
      for (const bad of [attachment, { ...attachment, key: `u/${eve}/AAAAAAAAAAAAAAAAAAAAAA` }, { ...attachment, key: '../../etc/passwd' }]) {
        const err = await e.sendAndAck(ben, { kind: 'attachment', attachment: bad });
        assert.equal(err.kind, 'error');
        assert.equal(err.code, 'bad_request');
      }
      const lie = await a.sendAndAck(ben, { kind: 'attachment', attachment: { ...attachment, size: bytes.length + 1 } });
      assert.equal(lie.kind, 'error');
      await Promise.all([a.close(), b.close(), e.close()]);
    });
  });
}
