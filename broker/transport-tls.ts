import fs from 'node:fs';
import tls from 'node:tls';
import type { ParleyBroker } from './broker.ts';

/** MQTT over TLS, when PARLEY_TLS_CERT and PARLEY_TLS_KEY name a certificate and its key. */
export function tlsServer(broker: ParleyBroker, certFile: string, keyFile: string): tls.Server {
  const server = tls.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), minVersion: 'TLSv1.2' }, (socket) => {
    socket.setNoDelay(true);
    broker.handle(socket, 'tls');
  });
  return server;
}
